package cache

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// sourceHashes returns every stored source hash (ForEachSourceRecord), checking their order.
func sourceHashes(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	last := ""
	err := s.ForEachSourceRecord(context.Background(), func(id, rec []byte) error {
		if string(id) <= last {
			t.Fatalf("source records out of id order: %q after %q", id, last)
		}
		last = string(id)
		out[string(id)] = bytes.Clone(rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestForEachSourceRecordStopsAtAnError(t *testing.T) {
	s := openMem(t)
	hashes := map[string][]byte{}
	var rs []*scim.Resource
	for i := range 5 {
		u := user(i)
		rs = append(rs, u)
		hashes[u.ID] = []byte{byte(i)}
	}
	mustApply(t, s, Batch{Source: "ldap", Pass: "p1", Upserts: rs, SourceHashes: hashes})
	if got := sourceHashes(t, s); len(got) != 5 {
		t.Fatalf("%d records, want 5", len(got))
	}
	stop := errors.New("stop")
	calls := 0
	err := s.ForEachSourceRecord(context.Background(), func(id, rec []byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d calls, want stop after 1", err, calls)
	}
}

func TestSourceHashesFollowTheirResources(t *testing.T) {
	s := openMem(t)
	u1, u2 := user(1), user(2)
	mustApply(t, s, Batch{Source: "ldap", Pass: "p1", Upserts: []*scim.Resource{u1, u2},
		SourceHashes: map[string][]byte{u1.ID: []byte("h1"), "not-upserted": []byte("x")}})
	got := sourceHashes(t, s)
	if len(got) != 1 || string(got[u1.ID]) != "h1" {
		t.Fatalf("after create: %q; want only %s=h1 (hashes of ids not upserted are ignored)", got, u1.ID)
	}
	// Unchanged content with a new source hash: the hash is stored, nothing else is written.
	head := len(mustJournal(t, s, 0))
	res := mustApply(t, s, Batch{Source: "ldap", Pass: "p2", Upserts: []*scim.Resource{user(1)},
		SourceHashes: map[string][]byte{u1.ID: []byte("h1b")}})
	if res.Unchanged != 1 || len(mustJournal(t, s, 0)) != head {
		t.Fatalf("unchanged resource: %+v, journal grew", res)
	}
	if got := sourceHashes(t, s); string(got[u1.ID]) != "h1b" {
		t.Fatalf("hash not updated: %q", got)
	}
	mustApply(t, s, Batch{Source: "ldap", Pass: "p3", Deletes: []string{u1.ID}})
	if got := sourceHashes(t, s); len(got) != 0 {
		t.Fatalf("hash survived its resource: %q", got)
	}
}
