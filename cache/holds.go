package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// Hold is a deletion that a sync pass held back because it crossed the deletion threshold
// (DESIGN invariant 5). It waits for ApproveHolds or for the next pass to replace the set.
type Hold struct {
	ID     string            `json:"id"`
	Type   scim.ResourceType `json:"type"`
	DN     string            `json:"dn,omitempty"`
	Name   string            `json:"name,omitempty"`
	Pass   string            `json:"pass,omitempty"`
	Reason string            `json:"reason,omitempty"`
	HeldAt time.Time         `json:"heldAt"`
}

// Holds returns the held deletions, sorted by id. Errors: ErrClosed, ErrCorrupt. Safe for
// concurrent use.
func (s *Store) Holds(ctx context.Context) ([]Hold, error) {
	holds := []Hold{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{kindHold}, nil, false, func(_ []byte, item *badger.Item) error {
			var h Hold
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &h) }); err != nil {
				return fmt.Errorf("%w: hold: %v", ErrCorrupt, err)
			}
			holds = append(holds, h)
			return nil
		})
	})
	return holds, err
}

// ApproveHolds carries out held deletions: ids nil approves all of them. Each approved resource
// is deleted (journal and audit as usual, recorded under pass) and its hold removed, in the
// same transaction, chunk by chunk. A hold that disappeared meanwhile (a newer pass replaced
// the set) is skipped. Errors: ErrNotFound (an id in ids is not held; nothing is deleted),
// ErrConflict, ErrClosed, ctx.Err() between chunks. Safe for concurrent use.
func (s *Store) ApproveHolds(ctx context.Context, pass string, ids []string) (Result, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ids, err := s.heldIDs(ctx, ids)
	if err != nil {
		return Result{}, err
	}
	if len(ids) == 0 {
		return Result{}, nil
	}
	return s.writeChunks(ctx, len(ids), func(start, end int) (func(*writer) error, error) {
		return func(w *writer) error {
			w.pass = pass
			return w.approve(ids[start:end])
		}, nil
	})
}

// heldIDs returns ids, or every held id when ids is nil, after checking each is held.
func (s *Store) heldIDs(ctx context.Context, ids []string) ([]string, error) {
	holds, err := s.Holds(ctx)
	if err != nil {
		return nil, err
	}
	held := make(map[string]bool, len(holds))
	for _, h := range holds {
		held[h.ID] = true
	}
	if ids == nil {
		ids = make([]string, 0, len(holds))
		for _, h := range holds {
			ids = append(ids, h.ID)
		}
		return ids, nil
	}
	for _, id := range ids {
		if !held[id] {
			return nil, fmt.Errorf("%w: no held deletion for %q", ErrNotFound, id)
		}
	}
	return ids, nil
}

func (w *writer) approve(ids []string) error {
	for _, id := range ids {
		_, err := w.get(holdKey(id))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := w.remove(id); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
		if err := w.del(holdKey(id)); err != nil {
			return err
		}
	}
	return nil
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
		if err := w.set(holdKey(h.ID), v); err != nil {
			return err
		}
	}
	return nil
}
