package cache

import (
	"bytes"
	"context"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// sourceHashes returns every stored source hash, by scanning their keys.
func sourceHashes(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ctx := context.Background()
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{kindSource}, nil, false, func(k []byte, item *badger.Item) error {
			return item.Value(func(v []byte) error {
				out[string(k[1:])] = bytes.Clone(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
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
