package cache

import (
	"context"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// replicaStore is a store on disk (a bulk load needs one) with Options.ReplicaLag and a clock the test sets.
func replicaStore(t *testing.T, lag time.Duration, now *time.Time) *Store {
	t.Helper()
	s, err := Open(Options{Dir: t.TempDir(), ReplicaLag: lag})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.now = func() time.Time { return *now }
	return s
}

func meta(t *testing.T, s *Store, typ scim.ResourceType, id string) scim.Meta {
	t.Helper()
	r, err := s.Get(context.Background(), typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return r.Meta
}

// TestReplicaLastModified: with a replica lag L, lastModified is the source's time plus 2L
// when that is at least the write's time plus L, so two replicas that apply a change within L
// of it store the same lastModified and created; a stale, missing or future source time
// gives a time between now+L and now+2L; lastModified never goes back; the lastModified
// index follows the stored time. Without a lag it is the write's time, whatever the source
// says.
func TestReplicaLastModified(t *testing.T) {
	ctx := context.Background()
	const lag = 10 * time.Second
	t0 := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	changed := t0.Add(-3 * time.Second)     // the directory's modifyTimestamp
	nowA, nowB := t0, t0.Add(5*time.Second) // B applies the change 8 s after it, A 3 s
	a, b := replicaStore(t, lag, &nowA), replicaStore(t, lag, &nowB)
	batch := Batch{Source: "ldap", Upserts: []*scim.Resource{user(1), group(1, 1)},
		SourceTimes: map[string]time.Time{userID(1): changed, groupID(1): changed}}
	for _, s := range []*Store{a, b} {
		mustApply(t, s, batch)
	}
	want := changed.Add(2 * lag)
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		id := userID(1)
		if typ == scim.GroupType {
			id = groupID(1)
		}
		ma, mb := meta(t, a, typ, id), meta(t, b, typ, id)
		if !ma.LastModified.Equal(want) || !mb.LastModified.Equal(want) || !ma.Created.Equal(want) || !mb.Created.Equal(want) {
			t.Errorf("%s: A %v/%v, B %v/%v, want both %v", typ, ma.Created, ma.LastModified, mb.Created, mb.LastModified, want)
		}
	}

	// Without a lag, the write's time.
	plain := replicaStore(t, 0, &nowA)
	mustApply(t, plain, batch)
	if m := meta(t, plain, scim.UserType, userID(1)); !m.LastModified.Equal(nowA) || !m.Created.Equal(nowA) {
		t.Errorf("no lag: %v/%v, want %v", m.Created, m.LastModified, nowA)
	}

	u := user(1)
	u.Attributes["title"] = "Stale"
	for _, c := range []struct {
		name string
		src  time.Time
		want func(now time.Time) time.Time
	}{
		// A rename's copies, a rule: the entry's own time is older than the change.
		{"stale", t0.Add(-time.Hour), func(now time.Time) time.Time { return now.Add(lag) }},
		{"none", time.Time{}, func(now time.Time) time.Time { return now.Add(lag) }},
		// A directory clock ahead of ours counts as ours.
		{"future", t0.Add(time.Hour), func(now time.Time) time.Time { return now.Add(2 * lag) }},
	} {
		nowA = nowA.Add(time.Minute)
		u.Attributes["title"] = c.name
		b := Batch{Upserts: []*scim.Resource{u}}
		if !c.src.IsZero() {
			b.SourceTimes = map[string]time.Time{u.ID: c.src}
		}
		before := meta(t, a, scim.UserType, u.ID)
		mustApply(t, a, b)
		m := meta(t, a, scim.UserType, u.ID)
		if !m.LastModified.Equal(c.want(nowA)) || !m.Created.Equal(before.Created) {
			t.Errorf("%s: %v/%v, want lastModified %v and created %v", c.name, m.Created, m.LastModified, c.want(nowA), before.Created)
		}
	}
	// lastModified never goes back: a later change whose time would give an earlier one
	// (here the clock went back) is one nanosecond after the stored one.
	before := meta(t, a, scim.UserType, u.ID).LastModified
	nowA = nowA.Add(-time.Hour)
	u.Attributes["title"] = "back"
	mustApply(t, a, Batch{Upserts: []*scim.Resource{u}})
	if m := meta(t, a, scim.UserType, u.ID); !m.LastModified.Equal(before.Add(time.Nanosecond)) {
		t.Errorf("clock back: %v, want %v", m.LastModified, before.Add(time.Nanosecond))
	}
	// A member edit has no source time: now+L, and the index follows.
	nowA = nowA.Add(2 * time.Hour)
	mustApply(t, a, Batch{MemberEdits: []MemberEdit{{Group: groupID(1), Remove: []string{userID(1)}}}})
	if m := meta(t, a, scim.GroupType, groupID(1)); !m.LastModified.Equal(nowA.Add(lag)) {
		t.Errorf("member edit: %v, want %v", m.LastModified, nowA.Add(lag))
	}
	var ids []string
	if err := a.ModifiedSince(ctx, scim.GroupType, nowA.Add(lag-time.Nanosecond), func(id string) error {
		ids = append(ids, id)
		return nil
	}); err != nil || len(ids) != 1 || ids[0] != groupID(1) {
		t.Errorf("ModifiedSince just before the stored time: %v %v", ids, err)
	}
	ids = nil
	if err := a.ModifiedSince(ctx, scim.GroupType, nowA.Add(lag), func(id string) error {
		ids = append(ids, id)
		return nil
	}); err != nil || len(ids) != 0 {
		t.Errorf("ModifiedSince at the stored time: %v %v", ids, err)
	}
}

// TestReplicaLastModifiedBulkLoad: a first sync's bulk load stores the times Apply would.
func TestReplicaLastModifiedBulkLoad(t *testing.T) {
	ctx := context.Background()
	const lag = 10 * time.Second
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	changed := now.Add(-2 * time.Second)
	a, b := replicaStore(t, lag, &now), replicaStore(t, lag, &now)
	batch := Batch{Source: "ldap", Upserts: []*scim.Resource{user(1), user(2), group(1, 1, 2)},
		SourceTimes: map[string]time.Time{userID(1): changed, groupID(1): changed}}
	mustApply(t, a, batch)
	l, err := b.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ  scim.ResourceType
		id   string
		want time.Time
	}{{scim.UserType, userID(1), changed.Add(2 * lag)}, {scim.UserType, userID(2), now.Add(lag)}, {scim.GroupType, groupID(1), changed.Add(2 * lag)}} {
		ma, mb := meta(t, a, c.typ, c.id), meta(t, b, c.typ, c.id)
		if !ma.LastModified.Equal(c.want) || !mb.LastModified.Equal(c.want) || !mb.Created.Equal(c.want) {
			t.Errorf("%s: Apply %v, load %v/%v, want %v", c.id, ma.LastModified, mb.Created, mb.LastModified, c.want)
		}
	}
}
