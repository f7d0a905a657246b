package cache

// What a target holds of a group's membership: one key per member,
//
//	'p' 'm' target NUL groupID NUL memberID → the member's id at the target
//
// so that a change of k members reads and writes O(k) keys, and no push value grows with the
// group (PushState.Sent of a group holds its own attributes only). RecordPush writes these
// keys with the rest of an outcome; an outcome with more member changes than one transaction
// takes is written in slices (see RecordPush).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// SentMember is one member of a group as a target holds it: the member's local id and its id
// at the target.
type SentMember struct {
	ID       string `json:"id"`
	TargetID string `json:"targetId"`
}

func sentPrefix(target, gid string) []byte { return pushKey('m', target, gid, "\x00") }

func sentKey(target, gid, mid string) []byte { return pushKey('m', target, gid, "\x00", mid) }

// SentMembers returns up to limit members of group gid that target holds, as far as ldapscim
// knows, whose ids sort after after ("": from the first), in id order (limit <= 0: all).
// Errors: ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) SentMembers(ctx context.Context, target, gid, after string, limit int) ([]SentMember, error) {
	out := []SentMember{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		prefix := sentPrefix(target, gid)
		var seek []byte
		if after != "" {
			seek = append(sentKey(target, gid, after), 0)
		}
		return scan(ctx, txn, prefix, seek, false, func(k []byte, item *badger.Item) error {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, SentMember{ID: string(k[len(prefix):]), TargetID: string(v)})
			if limit > 0 && len(out) >= limit {
				return errStop
			}
			return nil
		})
	})
	return out, err
}

// ForEachSentMember calls fn with every member of group gid that target holds, in id order,
// from one snapshot, and stops at fn's first error, which it returns. Memory stays constant.
// Errors: ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) ForEachSentMember(ctx context.Context, target, gid string, fn func(SentMember) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		prefix := sentPrefix(target, gid)
		return scan(ctx, txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
			return item.Value(func(v []byte) error {
				if err := fn(SentMember{ID: string(k[len(prefix):]), TargetID: string(v)}); err != nil {
					return callbackError{err}
				}
				return nil
			})
		})
	})
}

// SentMemberIDs returns, of memberIDs, those that target holds as members of group gid, with
// their target ids, from one snapshot (one key read each). Errors: ErrClosed. Safe for
// concurrent use.
func (s *Store) SentMemberIDs(ctx context.Context, target, gid string, memberIDs []string) (map[string]string, error) {
	out := make(map[string]string)
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, id := range memberIDs {
			v, err := getValue(txn, sentKey(target, gid, id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[id] = string(v)
		}
		return nil
	})
	return out, err
}

// AuditAt returns the audit record of journal record seq of id, with one key read.
// Errors: ErrNotFound, ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) AuditAt(ctx context.Context, id string, seq uint64) (AuditRecord, error) {
	var rec AuditRecord
	err := s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, auditKey(id, seq))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("%w: audit %s/%d: %v", ErrCorrupt, id, seq, err)
		}
		return nil
	})
	return rec, err
}

// PushValueSizes reports target's push keys: how many there are and the size of the largest
// value, with its key (for tests and diagnostics: no push value grows with a group).
// Errors: ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) PushValueSizes(ctx context.Context, target string) (keys, largest int, largestKey string, err error) {
	err = s.view(ctx, func(txn *badger.Txn) error {
		for _, sub := range []byte{'c', 'i', 'l', 'e', 's', 'm'} {
			err := scan(ctx, txn, pushKey(sub, target), nil, true, func(k []byte, item *badger.Item) error {
				keys++
				if n := int(item.ValueSize()); n > largest {
					largest, largestKey = n, string(k)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return keys, largest, largestKey, err
}

// memberWork is how many member keys an outcome writes, not counting a drop.
func (o *PushOutcome) memberWork() int { return len(o.SentRemoved) + len(o.SentAdded) }

// dropsSent reports whether the outcome removes every member key of its id.
func (o *PushOutcome) dropsSent() bool { return o.DropSent || o.DropState }

// countSent counts target's member keys of gid, up to limit.
func (s *Store) countSent(ctx context.Context, target, gid string, limit int) (int, error) {
	n := 0
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, sentPrefix(target, gid), nil, true, func([]byte, *badger.Item) error {
			if n++; n >= limit {
				return errStop
			}
			return nil
		})
	})
	return n, err
}

// dropSent removes up to limit member keys of gid in w and reports whether it removed them all.
func (w *writer) dropSent(ctx context.Context, target, gid string, limit int) (bool, error) {
	var keys [][]byte
	more := false
	err := scan(ctx, w.txn, sentPrefix(target, gid), nil, true, func(k []byte, _ *badger.Item) error {
		if len(keys) >= limit {
			more = true
			return errStop
		}
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if err := w.del(k); err != nil {
			return false, err
		}
	}
	return !more, nil
}

// writeSent writes o's member keys (removals, then additions) in w.
func (w *writer) writeSent(target string, o *PushOutcome, removed []string, added []SentMember) error {
	for _, id := range removed {
		if err := w.del(sentKey(target, o.ID, id)); err != nil {
			return err
		}
	}
	for _, m := range added {
		if m.ID == "" || m.TargetID == "" {
			return fmt.Errorf("%w: sent member of %s without id", ErrInvalid, o.ID)
		}
		if err := w.set(sentKey(target, o.ID, m.ID), []byte(m.TargetID)); err != nil {
			return err
		}
	}
	return nil
}

// markUncertain clears the hash of id's state, if it has one, so that the next delivery
// re-reads the group from the target instead of trusting member keys half written.
func (w *writer) markUncertain(target, id string) error {
	k := pushKey('i', target, id)
	v, err := w.get(k)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var ps PushState
	if err := json.Unmarshal(v, &ps); err != nil {
		return fmt.Errorf("%w: push state %s/%s: %v", ErrCorrupt, target, id, err)
	}
	if ps.Hash == "" {
		return nil
	}
	ps.Hash = ""
	ps.Updated = w.now
	nv, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	return w.set(k, nv)
}

// recordSentSlices writes the member keys of a big outcome in transactions of at most slice
// keys each, after marking id's state uncertain; the caller then writes the rest of the
// outcome (its state) last. A crash in between leaves an uncertain state (or none), never a
// trusted one with half its member keys.
func (s *Store) recordSentSlices(ctx context.Context, target string, o *PushOutcome, slice int) error {
	if _, err := s.write(func(w *writer) error { return w.markUncertain(target, o.ID) }); err != nil {
		return err
	}
	if o.dropsSent() {
		for done := false; !done; {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := s.write(func(w *writer) (err error) {
				done, err = w.dropSent(ctx, target, o.ID, slice)
				return err
			}); err != nil {
				return err
			}
		}
	}
	removed, added := o.SentRemoved, o.SentAdded
	for len(removed)+len(added) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := removed[:min(slice, len(removed))]
		a := added[:min(slice-len(r), len(added))]
		if _, err := s.write(func(w *writer) error { return w.writeSent(target, o, r, a) }); err != nil {
			return err
		}
		removed, added = removed[len(r):], added[len(a):]
	}
	return nil
}

// MemberSet returns which of memberIDs are direct members of group gid, from one snapshot (one
// key read each). Errors: ErrClosed. Safe for concurrent use.
func (s *Store) MemberSet(ctx context.Context, gid string, memberIDs []string) (map[string]bool, error) {
	out := make(map[string]bool)
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, id := range memberIDs {
			_, err := txn.Get(groupMemberKey(gid, id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[id] = true
		}
		return nil
	})
	return out, err
}
