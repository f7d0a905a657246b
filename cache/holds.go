package cache

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// Hold is a deletion that a sync pass held back because it crossed the deletion threshold
// (invariant 5, docs/architecture.md). It waits for an admin to approve it (ldapsync.ApproveHolds, which
// deletes through Apply and prunes group members) or for the next pass to replace the set.
type Hold struct {
	ID   string            `json:"id"`
	Type scim.ResourceType `json:"type"`
	DN   string            `json:"dn,omitempty"`
	Name string            `json:"name,omitempty"`
	Pass string            `json:"pass,omitempty"`
	// Source is the source whose pass held the change ("" in holds stored before sources were
	// recorded: the directory's).
	Source string    `json:"source,omitempty"`
	Reason string    `json:"reason,omitempty"`
	HeldAt time.Time `json:"heldAt"`
	// Kind is "" for a held deletion or deactivation of the resource, or HoldMembers for a
	// held removal of Members (ids) from group ID (invariant 5, docs/architecture.md: mass membership
	// removals are held like deletions). The two kinds are stored under distinct keys, so a
	// group can have both.
	Kind    string   `json:"kind,omitempty"`
	Members []string `json:"members,omitempty"`
}

// HoldMembers is the Kind of a held mass removal of a group's members.
const HoldMembers = "members"

// key returns the hold's key: a members hold's key has a NUL after the kind byte, which no
// resource id contains, so it cannot collide with a deletion hold.
func (h Hold) key() []byte {
	if h.Kind == HoldMembers {
		return key(kindHold, "\x00m", h.ID)
	}
	return holdKey(h.ID)
}

// Holds returns the held deletions and member removals, sorted by id (a deletion hold before
// a members hold of the same id). Errors: ErrClosed, ErrCorrupt. Safe for
// concurrent use.
func (s *Store) Holds(ctx context.Context) ([]Hold, error) {
	holds, err := listJSON[Hold](ctx, s, []byte{kindHold}, "hold")
	slices.SortStableFunc(holds, func(a, b Hold) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return holds, err
}

// replaceHolds makes holds the whole held-deletion set.
func (w *writer) replaceHolds(holds []Hold) error {
	var stale [][]byte
	err := scan(context.Background(), w.txn, []byte{kindHold}, nil, true, func(k []byte, _ *badger.Item) error {
		stale = append(stale, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := w.del(k); err != nil {
			return err
		}
	}
	for _, h := range holds {
		v, err := json.Marshal(h)
		if err != nil {
			return err
		}
		if err := w.set(h.key(), v); err != nil {
			return err
		}
	}
	return nil
}
