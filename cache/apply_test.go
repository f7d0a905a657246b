package cache

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// fakeClock returns a clock that advances one second per call, so every txn has its own time.
func fakeClock() func() time.Time {
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestApplyLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	s.now = fakeClock()

	// create
	res := mustApply(t, s, Batch{Pass: "p1", Upserts: []*scim.Resource{user(1), user(2)}})
	if want := (Result{Created: 2}); res != want {
		t.Fatalf("create: %+v, want %+v", res, want)
	}
	got, err := s.Get(ctx, scim.UserType, userID(1))
	if err != nil {
		t.Fatal(err)
	}
	created := got.Meta.Created
	if got.Meta.LastModified != created || got.Meta.Version == "" || got.UserName() != "user000001" {
		t.Fatalf("created resource: %+v", got)
	}
	recs := mustJournal(t, s, 0)
	if len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 2 || recs[0].Op != OpCreated || recs[0].Pass != "p1" {
		t.Fatalf("journal after create: %+v", recs)
	}
	wantChanged := []string{"active", "displayName", "dn", "emails", "externalId", "locale", "name", "nickName",
		"phoneNumbers", "preferredLanguage", "timezone", "title", scim.SchemaEnterpriseUser, "userName", "userType"}
	slices.Sort(wantChanged)
	if !reflect.DeepEqual(recs[0].Changed, wantChanged) {
		t.Fatalf("create Changed = %v, want %v", recs[0].Changed, wantChanged)
	}

	// unchanged: nothing written, not even meta
	res = mustApply(t, s, Batch{Pass: "p2", Upserts: []*scim.Resource{user(1), user(2)}})
	if want := (Result{Unchanged: 2}); res != want {
		t.Fatalf("re-apply: %+v, want %+v", res, want)
	}
	if head, _ := s.JournalHead(ctx); head != 2 {
		t.Fatalf("journal head after unchanged = %d", head)
	}
	again, _ := s.Get(ctx, scim.UserType, userID(1))
	if !reflect.DeepEqual(again, got) {
		t.Fatalf("unchanged apply modified the resource:\n%+v\n%+v", again, got)
	}

	// update
	u := user(1)
	u.Attributes["title"] = "Manager"
	res = mustApply(t, s, Batch{Pass: "p3", Upserts: []*scim.Resource{u}})
	if want := (Result{Updated: 1}); res != want {
		t.Fatalf("update: %+v", res)
	}
	upd, _ := s.Get(ctx, scim.UserType, userID(1))
	if upd.Meta.Created != created || !upd.Meta.LastModified.After(created) || upd.Meta.Version == got.Meta.Version {
		t.Fatalf("update meta: %+v (was %+v)", upd.Meta, got.Meta)
	}
	recs = mustJournal(t, s, 2)
	if len(recs) != 1 || recs[0].Seq != 3 || recs[0].Op != OpUpdated || !reflect.DeepEqual(recs[0].Changed, []string{"title"}) {
		t.Fatalf("journal after update: %+v", recs)
	}
	if !recs[0].Time.Equal(upd.Meta.LastModified) {
		t.Fatalf("journal time %v != lastModified %v", recs[0].Time, upd.Meta.LastModified)
	}

	// deactivate, then reactivate
	u.Attributes["active"] = false
	res = mustApply(t, s, Batch{Pass: "p4", Upserts: []*scim.Resource{u}})
	if want := (Result{Deactivated: 1}); res != want {
		t.Fatalf("deactivate: %+v", res)
	}
	u.Attributes["active"] = true
	res = mustApply(t, s, Batch{Pass: "p5", Upserts: []*scim.Resource{u}})
	if want := (Result{Updated: 1}); res != want {
		t.Fatalf("reactivate: %+v", res)
	}

	// delete (and an unknown id, ignored)
	res = mustApply(t, s, Batch{Pass: "p6", Deletes: []string{userID(1), "no-such-id"}})
	if want := (Result{Deleted: 1}); res != want {
		t.Fatalf("delete: %+v", res)
	}
	if _, err := s.Get(ctx, scim.UserType, userID(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}
	recs = mustJournal(t, s, 3)
	ops := []Op{}
	for i, r := range recs {
		ops = append(ops, r.Op)
		if r.Seq != uint64(4+i) || r.ID != userID(1) || r.Type != scim.UserType {
			t.Fatalf("journal record %d: %+v", i, r)
		}
	}
	if want := []Op{OpDeactivated, OpUpdated, OpDeleted}; !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops = %v, want %v", ops, want)
	}
	if !reflect.DeepEqual(recs[1].Changed, []string{"active"}) {
		t.Fatalf("reactivation Changed = %v", recs[1].Changed)
	}

	// audit trail: one record per journal record, oldest first
	audit, err := s.Audit(ctx, userID(1))
	if err != nil {
		t.Fatal(err)
	}
	var aops []Op
	for _, a := range audit {
		aops = append(aops, a.Op)
	}
	if want := []Op{OpCreated, OpUpdated, OpDeactivated, OpUpdated, OpDeleted}; !reflect.DeepEqual(aops, want) {
		t.Fatalf("audit ops = %v, want %v", aops, want)
	}
	titleChange := audit[1].Diff
	if len(titleChange) != 1 || titleChange[0].Path != "title" || titleChange[0].Old != "Engineer" || titleChange[0].New != "Manager" {
		t.Fatalf("update diff = %+v", titleChange)
	}
	if audit[1].Pass != "p3" || audit[1].Seq != 3 {
		t.Fatalf("update audit = %+v", audit[1])
	}
	del := audit[4].Diff
	if i := slices.IndexFunc(del, func(c AttrChange) bool { return c.Path == "userName" }); i < 0 || del[i].Old != "user000001" {
		t.Fatalf("delete diff lacks the old userName: %+v", del)
	}

	if n, _ := s.Count(ctx, scim.UserType); n != 1 {
		t.Fatalf("Count = %d, want 1", n)
	}
	st, err := s.Stats(ctx)
	if err != nil || st != (Stats{Users: 1, JournalHead: 6}) {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}

func TestApplyInvalid(t *testing.T) {
	s := openMem(t)
	ctx := context.Background()
	bad := []Batch{
		{Upserts: []*scim.Resource{nil}},
		{Upserts: []*scim.Resource{{Type: "Printer", ID: "x"}}},
		{Upserts: []*scim.Resource{{Type: scim.UserType}}},
		{Deletes: []string{"a\x00b"}},
		{Watermark: []byte("w")},
		{Holds: &[]Hold{{}}},
	}
	for i, b := range bad {
		if _, err := s.Apply(ctx, b); !errors.Is(err, ErrInvalid) {
			t.Errorf("batch %d: err = %v, want ErrInvalid", i, err)
		}
	}
	mustApply(t, s, Batch{Upserts: []*scim.Resource{user(1)}})
	g := group(1)
	g.ID = userID(1)
	if _, err := s.Apply(ctx, Batch{Upserts: []*scim.Resource{g}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("type change: err = %v, want ErrInvalid", err)
	}
	if head, _ := s.JournalHead(ctx); head != 1 {
		t.Errorf("journal head = %d after invalid batches, want 1", head)
	}
}

func TestSeqMonotonicAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	mustApply(t, s, Batch{Upserts: users(0, 10)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, scim.UserType, userID(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Apply(ctx, Batch{Upserts: users(0, 1)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}

	s = openDir(t, dir)
	defer s.Close()
	mustApply(t, s, Batch{Upserts: users(10, 15), Deletes: []string{userID(0)}})
	recs := mustJournal(t, s, 0)
	if len(recs) != 16 {
		t.Fatalf("%d journal records, want 16", len(recs))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	if head, _ := s.JournalHead(ctx); head != 16 {
		t.Fatalf("head = %d", head)
	}
	page, _ := s.Journal(ctx, 5, 3)
	if len(page) != 3 || page[0].Seq != 6 || page[2].Seq != 8 {
		t.Fatalf("Journal(5, 3) = %+v", page)
	}
	if n, _ := s.Count(ctx, scim.UserType); n != 14 {
		t.Fatalf("Count = %d, want 14", n)
	}
}

// TestUpdateReadsAStoredUserOnce: Apply reads a stored user it updates once (its stored
// version, which has the content hash and the names the ref repeats), not its ref as well: a
// command that rewrites every user pays for each read it makes of each, and each grows with the
// level-0 tables the command writes. A new user costs one read (its ref, missing) after
// another new user of the batch, else two; an id stored as a group is refused, and a ref
// without its resource is reported, whichever is read first.
func TestUpdateReadsAStoredUserOnce(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	var reads int
	s.afterCommit = func(c chunkInfo) { reads += c.reads }
	mustApply(t, s, Batch{Source: "ldap", Upserts: users(0, 10)})
	if reads != 11 {
		t.Fatalf("%d reads to create 10 users, want 11 (2 for the first, then its ref for each)", reads)
	}
	changed := users(0, 10)
	for _, u := range changed {
		u.Attributes["title"] = "Changed"
	}
	reads = 0
	if res := mustApply(t, s, Batch{Source: "ldap", Upserts: changed}); res.Updated != 10 {
		t.Fatalf("update: %+v", res)
	}
	if reads != 10 {
		t.Fatalf("%d reads to update 10 users, want 10", reads)
	}
	reads = 0
	if res := mustApply(t, s, Batch{Source: "ldap", Upserts: changed}); res.Unchanged != 10 || reads != 10 {
		t.Fatalf("the same users again: %+v, %d reads; want 10 unchanged, 10 reads", res, reads)
	}
	// The display name the DN index carries follows a rename that keeps the DN.
	u := user(3)
	u.Attributes["displayName"] = "Renamed"
	mustApply(t, s, Batch{Source: "ldap", Upserts: []*scim.Resource{u}})
	if ref, ok, err := s.ResolveDN(ctx, u.DN); err != nil || !ok || ref.Display != "Renamed" {
		t.Fatalf("ResolveDN after a rename: %+v %v %v", ref, ok, err)
	}
	// After a new user, an update reads the ref and the stored user, then again the stored
	// user first.
	u.Attributes["displayName"] = "Renamed again"
	reads = 0
	if res := mustApply(t, s, Batch{Source: "ldap", Upserts: []*scim.Resource{user(10), u, changed[4]}}); res.Created != 1 || res.Updated != 1 || res.Unchanged != 1 || reads != 2+2+1 {
		t.Fatalf("a new user, an update, an unchanged user: %+v, %d reads, want 5", res, reads)
	}
	// A user whose id is a group's is refused, and a ref whose user is gone is a corrupt
	// cache, not a new user: after a new user of the batch (the ref read first) or not.
	mustApply(t, s, Batch{Source: "ldap", Upserts: []*scim.Resource{{Type: scim.GroupType, ID: "g1", Attributes: map[string]any{"displayName": "G"}}}})
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(resourceKey('U', userID(5))) }); err != nil {
		t.Fatal(err)
	}
	gu := &scim.Resource{Type: scim.UserType, ID: "g1", Attributes: map[string]any{"userName": "g"}}
	for _, first := range [][]*scim.Resource{nil, {user(11)}} {
		if _, err := s.Apply(ctx, Batch{Source: "ldap", Upserts: append(first, gu)}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a user with a group's id after %d new: %v, want ErrInvalid", len(first), err)
		}
		if _, err := s.Apply(ctx, Batch{Source: "ldap", Upserts: append(first, user(5))}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a ref without its user after %d new: %v, want ErrCorrupt", len(first), err)
		}
	}
}
