package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// Op is the kind of a change recorded in the journal.
type Op string

// The journal's operations. A reactivation is an OpUpdated whose Changed includes "active".
const (
	OpCreated     Op = "created"
	OpUpdated     Op = "updated"
	OpDeactivated Op = "deactivated"
	OpDeleted     Op = "deleted"
)

// JournalRecord is one change of one resource. Seq starts at 1 and increases by one per
// record, without gaps, across restarts.
type JournalRecord struct {
	Seq uint64 `json:"seq"`
	// Time is the cache's clock at the write; it equals the resource's meta.lastModified
	// unless Options.ReplicaLag is set.
	Time time.Time         `json:"time"`
	Op   Op                `json:"op"`
	Type scim.ResourceType `json:"type"`
	ID   string            `json:"id"`
	Pass string            `json:"pass,omitempty"`
	// Changed lists the changed top-level attribute names, sorted ("userName", "emails",
	// "members", "externalId", "dn", an extension schema URN, ...). For a create: every set
	// attribute; for a delete: nil.
	Changed []string `json:"changed,omitempty"`
}

// AuditRecord is the audit trail entry of one change; it shares Seq with the journal record.
// An update's Diff holds old and new values of each changed attribute; a delete's holds every
// old value; a create's names the set attributes without values (the resource holds them, and
// later diffs keep every value they replace, so each past version can be rebuilt).
type AuditRecord struct {
	Seq  uint64       `json:"seq"`
	Time time.Time    `json:"time"`
	Pass string       `json:"pass,omitempty"`
	Op   Op           `json:"op"`
	Diff []AttrChange `json:"diff,omitempty"`
}

// AttrChange is the change of one top-level attribute. Old and New are JSON values (nil when
// absent). For Path "members" they are the removed and the added member ids ([]string); Path
// "members.display" lists the ids of members whose type or display changed.
type AttrChange struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// writer is one read-write transaction of a store method, with the state that method's
// helpers share: the transaction's clock, the journal sequence and per-type count deltas.
type writer struct {
	txn       *badger.Txn
	now       time.Time
	lag       time.Duration // Options.ReplicaLag
	pass      string
	seq       uint64 // last sequence number used (valid when seqLoaded)
	seqLoaded bool
	seqDirty  bool
	counts    map[byte]int64
	res       Result
	writes    int
	reads     int        // point reads through get, for tests (chunkInfo)
	order     *readOrder // of an Apply's upserts (nil: the stored user first)
	maxValue  int        // in memory: the largest value Badger takes (it has no value log); 0 = any
	// sink, if set, receives the writes instead of txn: a bulk load (load.go), which only
	// creates resources in a store without them, so every read finds nothing.
	sink *kvSorter
}

// modified returns the meta.lastModified of a resource this transaction writes: src is the
// source's own time of the change (zero: unknown) and old the resource's stored lastModified
// (zero: a create). Without a replica lag it is the transaction's time, as on one instance.
//
// With lag L (replicas behind a load balancer) it is min(src, now)+2L, but at least now+L,
// and later than old. Every replica applies a change within L of the others (the lag's
// definition), so "at least now+L" makes each replica's lastModified of a change later than
// the moment any replica applied it: a client that polled a replica which did not have the
// change yet used a time before that moment as its next "gt" (scimapi shows no lastModified
// later than the clock), and the change matches it on every replica. When src is the true
// time of the change and the replicas apply it within L of it, min(src, now)+2L is at least
// now+L on each of them, so they all store the same lastModified; a change whose source time
// is unknown or stale (a rename that rewrites the copies in other resources, a rule, an HR
// file) gets each replica's own now+L: later than needed, never too early. A src ahead of
// the clock counts as now, so a directory clock ahead of ours cannot push lastModified out
// by more than 2L.
func (w *writer) modified(src, old time.Time) time.Time {
	if w.lag <= 0 {
		return w.now
	}
	m := w.now.Add(w.lag)
	if !src.IsZero() {
		if src.After(w.now) {
			src = w.now
		}
		if d := src.UTC().Add(2 * w.lag); d.After(m) {
			m = d
		}
	}
	if !m.After(old) {
		m = old.Add(time.Nanosecond)
	}
	return m
}

func (w *writer) set(k, v []byte) error {
	if w.maxValue > 0 && len(v) > w.maxValue {
		return ErrTooBig
	}
	w.writes++
	if w.sink != nil {
		return w.sink.add(k, v)
	}
	return w.txn.Set(k, v)
}

func (w *writer) del(k []byte) error {
	w.writes++
	if w.sink != nil {
		return fmt.Errorf("%w: a bulk load deletes nothing", ErrInvalid)
	}
	return w.txn.Delete(k)
}

// get returns a copy of k's value, or ErrNotFound.
func (w *writer) get(k []byte) ([]byte, error) {
	w.reads++
	if w.sink != nil {
		return nil, ErrNotFound
	}
	return getValue(w.txn, k)
}

func getValue(txn *badger.Txn, k []byte) ([]byte, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// getCounter reads a counter key; a missing counter is 0.
func getCounter(txn *badger.Txn, k []byte) (uint64, error) {
	v, err := getValue(txn, k)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: counter %q", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(v), nil
}

func (w *writer) count(tb byte, delta int64) {
	if w.counts == nil {
		w.counts = make(map[byte]int64, 2)
	}
	w.counts[tb] += delta
}

// nextSeq returns the next journal sequence number of this transaction.
func (w *writer) nextSeq() (uint64, error) {
	if !w.seqLoaded {
		seq, err := getCounter(w.txn, seqKey)
		if err != nil {
			return 0, err
		}
		w.seq, w.seqLoaded = seq, true
	}
	w.seq++
	w.seqDirty = true
	return w.seq, nil
}

// finish writes the counters the transaction changed; the caller commits next.
func (w *writer) finish() error {
	if w.seqDirty {
		if err := w.set(seqKey, binary.BigEndian.AppendUint64(nil, w.seq)); err != nil {
			return err
		}
	}
	for tb, d := range w.counts {
		if d == 0 {
			continue
		}
		n, err := getCounter(w.txn, countKey(tb))
		if err != nil {
			return err
		}
		if err := w.set(countKey(tb), binary.BigEndian.AppendUint64(nil, uint64(int64(n)+d))); err != nil {
			return err
		}
	}
	return nil
}

// record appends the journal and audit records of one change.
func (w *writer) record(op Op, typ scim.ResourceType, id string, changed []string, diff []AttrChange) error {
	seq, err := w.nextSeq()
	if err != nil {
		return err
	}
	j := appendJournal(make([]byte, 0, 160+20*len(changed)),
		&JournalRecord{Seq: seq, Time: w.now, Op: op, Type: typ, ID: id, Pass: w.pass, Changed: changed})
	a, err := appendAudit(make([]byte, 0, 512), &AuditRecord{Seq: seq, Time: w.now, Pass: w.pass, Op: op, Diff: diff})
	if err != nil {
		return err
	}
	if err := w.set(journalKey(seq), j); err != nil {
		return err
	}
	return w.set(auditKey(id, seq), a)
}
