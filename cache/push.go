package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// The push package keeps its durable state here, per target (a SCIM target or a webhook, by
// name): the journal cursor it delivered up to, what the target holds of each resource, dead
// letters, deletions waiting for their grace period, and an audit record of every attempt.

// PushState is what a target holds of one resource, as far as ldapscim knows: the target's id
// for it and the document last sent, so an unchanged resource is not sent again and an update
// can be sent as a minimal PATCH. A group's Sent holds its own attributes only; its members
// are keys of their own (SentMembers). An empty Hash on a group means its membership at the
// target is uncertain (a membership change was under way): the next delivery re-reads it.
type PushState struct {
	Type     scim.ResourceType `json:"type"`
	TargetID string            `json:"targetId"`
	// Hash is a digest of Sent, compared before sending.
	Hash string          `json:"hash,omitempty"`
	Sent json.RawMessage `json:"sent,omitempty"`
	// Active is false when ldapscim deactivated the resource at the target.
	Active bool `json:"active"`
	// DeleteAt, when set, is when the deactivated resource is to be deleted at the target.
	DeleteAt time.Time `json:"deleteAt,omitzero"`
	Updated  time.Time `json:"updated"`
}

// DeadLetter is a change that could not be delivered after its attempts ran out, or that the
// target refused. It keeps the target's answer.
type DeadLetter struct {
	ID       string            `json:"id"`
	Type     scim.ResourceType `json:"type"`
	Seq      uint64            `json:"seq"` // the journal record that triggered the change
	Op       string            `json:"op"`
	Status   int               `json:"status,omitempty"` // HTTP status; 0 for network errors
	Error    string            `json:"error"`
	Body     string            `json:"body,omitempty"` // the target's error body, truncated
	Attempts int               `json:"attempts"`
	Time     time.Time         `json:"time"`
}

// PushAudit is one push attempt of one resource to one target.
type PushAudit struct {
	Time     time.Time     `json:"time"`
	Target   string        `json:"target"`
	ID       string        `json:"id"`
	Seq      uint64        `json:"seq,omitempty"`
	Op       string        `json:"op"` // create, update, deactivate, delete, lookup, adopt, event
	Method   string        `json:"method,omitempty"`
	Status   int           `json:"status,omitempty"`
	Latency  time.Duration `json:"latency"`
	TargetID string        `json:"targetId,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// PushOutcome is the result of delivering one resource to a target. RecordPush writes it in one
// transaction.
type PushOutcome struct {
	ID string
	// State, if non-nil, replaces what the target holds of ID; DropState removes it, and the
	// member keys of ID with it.
	State     *PushState
	DropState bool
	// Group membership as the target holds it, one key per member (SentMembers): DropSent
	// removes every member key of ID first, SentRemoved removes those of some member ids,
	// SentAdded sets some (member id → target id). An outcome with more member keys than one
	// transaction takes is written in slices before the rest (see RecordPush).
	DropSent    bool
	SentRemoved []string
	SentAdded   []SentMember
	// DeadLetter, if non-nil, is stored; otherwise a dead letter of ID is removed (a later
	// delivery supersedes it) unless KeepDeadLetter is set.
	DeadLetter     *DeadLetter
	KeepDeadLetter bool
	// EventSeq, if non-zero, makes the dead letter stored or removed the one of that journal
	// record rather than the resource's only one. Webhook events are edges: a later event does
	// not stand for an earlier one, so each failed event keeps its own dead letter.
	EventSeq uint64
	Audit    []PushAudit
}

// PushSummary describes one target's durable push state.
type PushSummary struct {
	Cursor      uint64
	Resources   int // resources the target holds, as far as ldapscim knows
	DeadLetters int
	DueDeletes  int
}

var auditCounter atomic.Uint32

func pushKey(sub byte, target string, rest ...string) []byte {
	k := key(kindPush, string(sub), target, "\x00")
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

// deadEventKey is the key of the dead letter of one event (journal record seq) of id.
func deadEventKey(target, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(pushKey('l', target, id), 0), seq)
}

// dropOldDeadEvent removes id's one-per-resource dead letter if it is the one of event seq.
func (w *writer) dropOldDeadEvent(target, id string, seq uint64) error {
	v, err := w.get(pushKey('l', target, id))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var dl DeadLetter
	if json.Unmarshal(v, &dl) == nil && dl.Seq == seq {
		return w.del(pushKey('l', target, id))
	}
	return nil
}

func dueKey(target string, t time.Time, id string) []byte {
	k := binary.BigEndian.AppendUint64(pushKey('e', target), nanos(t))
	return append(k, id...)
}

func pushAuditPrefix(id string) []byte { return key(kindPushAudit, id, "\x00") }

func pushAuditKey(a *PushAudit) []byte {
	k := append(pushAuditPrefix(a.ID), a.Target...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, nanos(a.Time))
	return binary.BigEndian.AppendUint32(k, auditCounter.Add(1))
}

// PushCursor returns the journal sequence number target has consumed up to, 0 when none.
// Errors: ErrClosed. Safe for concurrent use.
func (s *Store) PushCursor(ctx context.Context, target string) (uint64, error) {
	var seq uint64
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		seq, err = getCounter(txn, pushKey('c', target))
		return err
	})
	return seq, err
}

// SetPushCursor stores target's cursor. Errors: ErrInvalid (empty target), ErrClosed. Safe for
// concurrent use.
func (s *Store) SetPushCursor(ctx context.Context, target string, seq uint64) error {
	if target == "" {
		return fmt.Errorf("%w: empty target name", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.write(func(w *writer) error {
		return w.set(pushKey('c', target), binary.BigEndian.AppendUint64(nil, seq))
	})
	return err
}

// PushStates returns what target holds of each of ids that it holds, from one snapshot.
// Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) PushStates(ctx context.Context, target string, ids []string) (map[string]PushState, error) {
	out := make(map[string]PushState, len(ids))
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, id := range ids {
			v, err := getValue(txn, pushKey('i', target, id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var ps PushState
			if err := json.Unmarshal(v, &ps); err != nil {
				return fmt.Errorf("%w: push state %s/%s: %v", ErrCorrupt, target, id, err)
			}
			out[id] = ps
		}
		return nil
	})
	return out, err
}

// RecordPush writes the outcomes of deliveries to target (states, member keys, dead letters,
// due deletions, audit records) in one transaction. When their member keys are more than one
// transaction takes (the store's member slice, 5000), the outcomes with member keys first get
// their states marked uncertain (Hash cleared), then their member keys are written in slices of
// their own transactions, and everything else in a last one: a crash in between leaves an
// uncertain state, which the next delivery re-reads from the target. Errors: ErrInvalid,
// ErrTooBig, ErrConflict, ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) RecordPush(ctx context.Context, target string, outs []PushOutcome) error {
	if target == "" {
		return fmt.Errorf("%w: empty target name", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	slice := max(1, s.memberSlice)
	work := 0
	for i := range outs {
		o := &outs[i]
		if o.ID == "" {
			return fmt.Errorf("%w: push outcome without id", ErrInvalid)
		}
		work += o.memberWork()
		if o.dropsSent() && work <= slice {
			n, err := s.countSent(ctx, target, o.ID, slice+1)
			if err != nil {
				return err
			}
			work += n
		}
	}
	inline := work <= slice
	if !inline {
		for i := range outs {
			if o := &outs[i]; o.memberWork() > 0 || o.dropsSent() {
				if err := s.recordSentSlices(ctx, target, o, slice); err != nil {
					return err
				}
			}
		}
	}
	_, err := s.write(func(w *writer) error {
		for i := range outs {
			if err := w.recordPush(ctx, target, &outs[i], inline, slice); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// recordPush writes o in w; with members it writes its member keys too (at most slice of
// them, which RecordPush checked).
func (w *writer) recordPush(ctx context.Context, target string, o *PushOutcome, members bool, slice int) error {
	if members {
		if o.dropsSent() {
			all, err := w.dropSent(ctx, target, o.ID, slice)
			if err != nil {
				return err
			}
			if !all {
				return fmt.Errorf("%w: member keys of %s changed while recorded", ErrConflict, o.ID)
			}
		}
		if err := w.writeSent(target, o, o.SentRemoved, o.SentAdded); err != nil {
			return err
		}
	}
	if o.State != nil || o.DropState {
		if err := w.replacePushState(target, o.ID, o.State); err != nil {
			return err
		}
	}
	if err := w.recordDeadLetter(target, o); err != nil {
		return err
	}
	for i := range o.Audit {
		a := o.Audit[i]
		a.Target, a.ID = target, o.ID
		if a.Time.IsZero() {
			a.Time = w.now
		}
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := w.set(pushAuditKey(&a), v); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) recordDeadLetter(target string, o *PushOutcome) error {
	k := pushKey('l', target, o.ID)
	if o.EventSeq != 0 {
		k = deadEventKey(target, o.ID, o.EventSeq)
	}
	if o.DeadLetter == nil {
		if o.KeepDeadLetter {
			return nil
		}
		if o.EventSeq != 0 {
			// A dead letter of this event stored before dead letters were kept per event.
			if err := w.dropOldDeadEvent(target, o.ID, o.EventSeq); err != nil {
				return err
			}
		}
		return w.del(k)
	}
	dl := *o.DeadLetter
	dl.ID = o.ID
	if dl.Time.IsZero() {
		dl.Time = w.now
	}
	v, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	return w.set(k, v)
}

// replacePushState sets (ps non-nil) or removes id's state and keeps the due-deletion index
// in step with DeleteAt.
func (w *writer) replacePushState(target, id string, ps *PushState) error {
	k := pushKey('i', target, id)
	old, err := w.get(k)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if old != nil {
		var prev PushState
		if json.Unmarshal(old, &prev) == nil && !prev.DeleteAt.IsZero() {
			if err := w.del(dueKey(target, prev.DeleteAt, id)); err != nil {
				return err
			}
		}
	}
	if ps == nil {
		return w.del(k)
	}
	st := *ps
	st.Updated = w.now
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if !st.DeleteAt.IsZero() {
		if err := w.set(dueKey(target, st.DeleteAt, id), nil); err != nil {
			return err
		}
	}
	return w.set(k, v)
}

// DueDeletes returns up to limit ids of target whose deletion is due at or before now, oldest
// first. Errors: ErrClosed. Safe for concurrent use.
func (s *Store) DueDeletes(ctx context.Context, target string, now time.Time, limit int) ([]string, error) {
	prefix := pushKey('e', target)
	var ids []string
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			rest := k[len(prefix):]
			if len(rest) < 8 || binary.BigEndian.Uint64(rest) > nanos(now) || len(ids) >= limit {
				return errStop
			}
			ids = append(ids, string(rest[8:]))
			return nil
		})
	})
	return ids, err
}

// DeadLetters returns target's dead letters, sorted by resource id (a webhook's several of one
// resource by journal seq). Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) DeadLetters(ctx context.Context, target string) ([]DeadLetter, error) {
	return listJSON[DeadLetter](ctx, s, pushKey('l', target), "dead letter")
}

// DropDeadLetters removes target's dead letters of ids (nil: all of them) and returns how many
// it removed. Errors: ErrClosed, ErrConflict. Safe for concurrent use.
func (s *Store) DropDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	w, err := s.write(func(w *writer) error {
		// dropPrefix removes every dead letter whose key starts with prefix.
		dropPrefix := func(prefix []byte) error {
			var keys [][]byte
			err := scan(ctx, w.txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
				keys = append(keys, append([]byte(nil), k...))
				return nil
			})
			for _, k := range keys {
				if err == nil {
					err = w.del(k)
				}
			}
			return err
		}
		if ids == nil {
			return dropPrefix(pushKey('l', target))
		}
		for _, id := range ids {
			if _, err := w.get(pushKey('l', target, id)); err == nil {
				if err := w.del(pushKey('l', target, id)); err != nil {
					return err
				}
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
			if err := dropPrefix(append(pushKey('l', target, id), 0)); err != nil { // per-event ones
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return w.writes, nil
}

// PushAudit returns every push attempt recorded for id, per target in time order. Errors:
// ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) PushAudit(ctx context.Context, id string) ([]PushAudit, error) {
	return listJSON[PushAudit](ctx, s, pushAuditPrefix(id), "push audit")
}

// SourceMembers returns the members of scope source group groupID that target saw last.
// Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) SourceMembers(ctx context.Context, target, groupID string) ([]string, error) {
	var ids []string
	err := s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, pushKey('s', target, groupID))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(v, &ids); err != nil {
			return fmt.Errorf("%w: source members: %v", ErrCorrupt, err)
		}
		return nil
	})
	return ids, err
}

// SetSourceMembers stores the members of scope source group groupID for target. Errors:
// ErrClosed, ErrTooBig. Safe for concurrent use.
func (s *Store) SetSourceMembers(ctx context.Context, target, groupID string, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = s.write(func(w *writer) error { return w.set(pushKey('s', target, groupID), v) })
	return err
}

// PushSummary returns target's cursor and counts, from one snapshot. Errors: ErrClosed. Safe
// for concurrent use.
func (s *Store) PushSummary(ctx context.Context, target string) (PushSummary, error) {
	var sum PushSummary
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		if sum.Cursor, err = getCounter(txn, pushKey('c', target)); err != nil {
			return err
		}
		count := func(sub byte, n *int) error {
			return scan(ctx, txn, pushKey(sub, target), nil, true, func([]byte, *badger.Item) error {
				*n++
				return nil
			})
		}
		if err := count('i', &sum.Resources); err != nil {
			return err
		}
		if err := count('l', &sum.DeadLetters); err != nil {
			return err
		}
		return count('e', &sum.DueDeletes)
	})
	return sum, err
}
