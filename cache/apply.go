package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// Batch is a set of changes from one sync source. Upserts are applied first, then
// MemberEdits, then Deletes.
type Batch struct {
	Source  string           // watermark owner, e.g. "ldap"
	Pass    string           // id of the sync pass, recorded in journal and audit
	Upserts []*scim.Resource // Meta is ignored on input; the store sets it
	// MemberEdits change some members of existing groups without restating the others, at a
	// cost proportional to the edit (a deleted user leaving the groups that list it).
	MemberEdits []MemberEdit
	Deletes     []string // ids; unknown ids are ignored
	// Watermark, if non-nil, is stored for Source in the same transaction as the last chunk.
	Watermark []byte
	// Holds, if non-nil, replaces the whole held-deletion set in the same transaction as the
	// last chunk.
	Holds *[]Hold
	// SourceHashes, optional, maps an upserted id to a digest of the directory entry it came
	// from. It is stored with the resource (also when the content is unchanged) and read back
	// with SourceHashes, so a sync source can skip entries that did not change.
	SourceHashes map[string][]byte
	// SourceTimes, optional, maps an upserted id to the source's own time of its change (the
	// directory entry's modifyTimestamp). Only a store with Options.ReplicaLag uses it, to
	// derive meta.lastModified from it (writer.modified); a group's member edits and an id
	// without a time are dated by the write's time plus the lag.
	SourceTimes map[string]time.Time
	// KeepMembers names upserted groups whose Members are not restated: their stored members
	// stay as they are (MemberEdits change them), and only the other attributes are written.
	// Such a group must be stored already.
	KeepMembers map[string]bool
	// Own makes Source the owner of every user the batch upserts (ForEachOwned). A source
	// beside the directory (an HR file) owns its users, so that neither it nor the directory's
	// passes ever take the other's users for deleted. Groups are never owned: the virtual
	// groups of [[rules]] take members from every source. The directory owns nothing: its
	// resources are those no source owns.
	Own bool
	// Overlays, optional, stores (nil: deletes) the overlay of a user (Overlay): in the same
	// transaction as that user's upsert, or with the last transaction when the batch does not
	// upsert it. An overlay of a user that is not stored is not written.
	Overlays map[string]*Overlay
}

// MemberEdit changes some members of group Group. Removing an id that is not a member, and
// setting a member that is already stored as given, change nothing; an edit of a group that
// does not exist is ignored.
type MemberEdit struct {
	Group  string
	Remove []string      // member ids
	Set    []scim.Member // members to add, or whose type or display changed
}

// Result counts what an Apply did.
type Result struct {
	Created, Updated, Deactivated, Deleted, Unchanged int
	// MembersAdded and MembersRemoved count group memberships written, in any group.
	MembersAdded, MembersRemoved int
}

func (r *Result) add(o Result) {
	r.Created += o.Created
	r.Updated += o.Updated
	r.Deactivated += o.Deactivated
	r.Deleted += o.Deleted
	r.Unchanged += o.Unchanged
	r.MembersAdded += o.MembersAdded
	r.MembersRemoved += o.MembersRemoved
}

// Apply writes b into the store in transactions of up to about a thousand resources each. A
// resource whose content hash is unchanged is not written at all (Result.Unchanged). Every
// other change writes the resource, its index keys, one journal record and one audit record in
// one transaction.
//
// A group whose member changes do not fit into one transaction (more than memberSlice) is
// written in slices, each a transaction with its own journal and audit record naming the
// members it added or removed: the first slice carries the group's own attributes, the
// following ones only members. Every committed slice leaves a consistent group whose version
// reflects the members it has, so a crash between slices is recovered by applying the batch
// again, which writes only the members still missing. A big group is deleted the same way:
// slices of member removals, then the group.
//
// The watermark and the hold set are written with the last transaction, so they become visible
// only when the whole batch is. If Apply fails midway (error, cancelled ctx, crash), the
// committed transactions stay and the returned Result counts them; re-applying the batch is
// harmless.
//
// Errors: ErrInvalid (nil resource, unknown type, empty id or an id with a NUL byte, an id
// stored under another type, a member with an invalid id or type, a Watermark without Source),
// ErrTooBig, ErrConflict, ErrClosed, ctx.Err() (checked between transactions). Safe for
// concurrent use; concurrent Applies run one at a time.
func (s *Store) Apply(ctx context.Context, b Batch) (Result, error) {
	if err := validate(&b); err != nil {
		return Result{}, err
	}
	if len(b.Upserts)+len(b.Deletes)+len(b.MemberEdits) == 0 && b.Watermark == nil && b.Holds == nil && len(b.Overlays) == 0 {
		return Result{}, ctx.Err()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := &applier{s: s, b: &b, ids: map[string]bool{}, upserted: map[string]bool{}}
	err := a.run(ctx)
	return a.total, err
}

// applier gathers the writes of one Apply into transactions.
type applier struct {
	s       *Store
	b       *Batch
	total   Result
	pending []item
	ids     map[string]bool // ids in pending
	ops     int             // member changes in pending
	// upserted are the users whose overlay (Batch.Overlays) their upsert writes.
	upserted map[string]bool
	order    readOrder
}

// item is one resource's share of a transaction. write runs again from scratch on a conflict
// retry, so it must only read what the transaction sees.
type item struct {
	id    string
	ops   int
	write func(w *writer) error
}

func (a *applier) run(ctx context.Context) error {
	for _, r := range a.b.Upserts {
		e, err := encode(r)
		if err != nil {
			return err
		}
		e.src = a.b.SourceTimes[r.ID]
		if e.tb == 'G' {
			err = a.addGroup(ctx, e)
		} else {
			if _, ok := a.b.Overlays[r.ID]; ok {
				a.upserted[r.ID] = true
			}
			err = a.add(ctx, item{id: r.ID, write: func(w *writer) error {
				if err := w.upsert(e); err != nil {
					return fmt.Errorf("%s %s: %w", r.Type, r.ID, err)
				}
				return w.setSourceHash(a.b, r.ID)
			}})
		}
		if err != nil {
			return err
		}
	}
	for _, ed := range a.b.MemberEdits {
		if err := a.addEdit(ctx, ed); err != nil {
			return err
		}
	}
	for _, id := range a.b.Deletes {
		if err := a.addDelete(ctx, id); err != nil {
			return err
		}
	}
	return a.flush(ctx, true)
}

// add queues it for the current transaction, committing first when it names an id already
// queued (its plan was made before that one's writes) and afterwards when the transaction is
// full.
func (a *applier) add(ctx context.Context, it item) error {
	if a.ids[it.id] {
		if err := a.flush(ctx, false); err != nil {
			return err
		}
	}
	a.pending = append(a.pending, it)
	a.ids[it.id] = true
	a.ops += it.ops
	if len(a.pending) >= a.s.chunk || a.ops >= a.s.memberSlice {
		return a.flush(ctx, false)
	}
	return nil
}

// flush commits the queued items; with last it also writes the watermark and the holds, in a
// transaction of their own if nothing is queued.
func (a *applier) flush(ctx context.Context, last bool) error {
	if len(a.pending) == 0 && !last {
		return nil
	}
	items := a.pending
	a.pending, a.ops = nil, 0
	clear(a.ids)
	return a.commit(ctx, items, last)
}

// commit writes items in one transaction, halving the list while Badger finds it too big.
func (a *applier) commit(ctx context.Context, items []item, last bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := a.s.write(func(w *writer) error {
		w.pass, w.order = a.b.Pass, &a.order
		for _, it := range items {
			if err := it.write(w); err != nil {
				return err
			}
		}
		if last {
			return w.finishBatch(a.b, a.upserted)
		}
		return nil
	})
	if errors.Is(err, ErrTooBig) && len(items) > 1 {
		half := len(items) / 2
		if err := a.commit(ctx, items[:half], false); err != nil {
			return err
		}
		return a.commit(ctx, items[half:], last)
	}
	if err != nil {
		return err
	}
	a.total.add(w.res)
	if a.s.afterCommit != nil {
		a.s.afterCommit(chunkInfo{writes: w.writes, reads: w.reads, last: last, res: w.res})
	}
	return nil
}

// finishBatch writes the batch's watermark and hold set, and the overlays of users the batch
// does not upsert, with its last transaction.
func (w *writer) finishBatch(b *Batch, upserted map[string]bool) error {
	for _, id := range slices.Sorted(maps.Keys(b.Overlays)) {
		if upserted[id] {
			continue
		}
		o := b.Overlays[id]
		if o != nil {
			if _, found, err := w.loadRef(id); err != nil || !found {
				return err
			}
		}
		if err := w.writeOverlay(id, o); err != nil {
			return err
		}
	}
	if b.Watermark != nil {
		if err := w.set(watermarkKey(b.Source), b.Watermark); err != nil {
			return err
		}
	}
	if b.Holds != nil {
		return w.replaceHolds(*b.Holds)
	}
	return nil
}

// setSourceHash writes what the batch's source keeps beside a resource: its source hash, and
// its owner when the source owns what it writes.
func (w *writer) setSourceHash(b *Batch, id string) error {
	if h, ok := b.SourceHashes[id]; ok {
		if err := w.set(sourceKey(id), h); err != nil {
			return err
		}
	}
	if o, ok := b.Overlays[id]; ok {
		if err := w.writeOverlay(id, o); err != nil {
			return err
		}
	}
	if b.Own {
		ref, found, err := w.loadRef(id)
		if err != nil || !found || ref.tb != 'U' {
			return err
		}
		return w.set(ownerKey(id), append([]byte{ref.tb}, b.Source...))
	}
	return nil
}

// addGroup queues a group upsert: as one item when its member changes fit into a transaction,
// else as slices of its own.
func (a *applier) addGroup(ctx context.Context, e *encoded) error {
	if a.ids[e.res.ID] {
		if err := a.flush(ctx, false); err != nil {
			return err
		}
	}
	var plan memberPlan
	var err error
	if a.b.KeepMembers[e.res.ID] {
		err = a.s.keepMembers(ctx, e)
	} else {
		plan, err = a.s.planGroup(ctx, e)
	}
	if err != nil {
		return fmt.Errorf("group %s: %w", e.res.ID, err)
	}
	id := e.res.ID
	if plan.size() <= a.s.memberSlice {
		return a.add(ctx, item{id: id, ops: plan.size(), write: func(w *writer) error {
			if err := w.writeGroup(id, e, plan, true); err != nil {
				return fmt.Errorf("group %s: %w", id, err)
			}
			return w.setSourceHash(a.b, id)
		}})
	}
	return a.slices(ctx, id, &plan, func(w *writer, part memberPlan, first, last bool) error {
		var withContent *encoded
		if first {
			withContent = e
		}
		if err := w.writeGroup(id, withContent, part, first); err != nil {
			return fmt.Errorf("group %s: %w", id, err)
		}
		if last {
			return w.setSourceHash(a.b, id)
		}
		return nil
	})
}

// slices commits plan in transactions of memberSlice changes each, after what is queued.
func (a *applier) slices(ctx context.Context, id string, plan *memberPlan, write func(w *writer, part memberPlan, first, last bool) error) error {
	if err := a.flush(ctx, false); err != nil {
		return err
	}
	for first := true; first || plan.size() > 0; first = false {
		part := plan.take(a.s.memberSlice)
		last, f := plan.size() == 0, first
		err := a.commit(ctx, []item{{id: id, write: func(w *writer) error { return write(w, part, f, last) }}}, false)
		if err != nil {
			return err
		}
	}
	return nil
}

// planGroup compares e with the stored group, from a snapshot: nothing to do for members when
// the version or the member summary is unchanged, else the member changes.
func (s *Store) planGroup(ctx context.Context, e *encoded) (memberPlan, error) {
	var plan memberPlan
	err := s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(resourceKey('G', e.res.ID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			plan.added = e.members
			return nil
		}
		if err != nil {
			return err
		}
		var h header
		err = item.Value(func(v []byte) (err error) {
			h, _, err = splitHeader(v)
			return err
		})
		if err != nil || h.hash == e.hash || h.summary == e.summary {
			return err
		}
		plan, err = planMembers(ctx, txn, e.res.ID, e.members)
		return err
	})
	return plan, err
}

// keepMembers gives e the stored group's members summary, so that e writes the group's other
// attributes and leaves its members alone (Batch.KeepMembers).
func (s *Store) keepMembers(ctx context.Context, e *encoded) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		h, err := groupHeader(txn, e.res.ID)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: members kept of a group that is not stored", ErrInvalid)
		}
		if err != nil {
			return err
		}
		e.members, e.summary = nil, h.summary
		e.hash = versionHash(e.contentHash, e.summary)
		return nil
	})
}

// addEdit queues a member edit: the changes it makes, from a snapshot, as one item or in
// slices. An edit that changes nothing counts its group as unchanged.
func (a *applier) addEdit(ctx context.Context, ed MemberEdit) error {
	if a.ids[ed.Group] { // the plan must see the queued writes of the same group
		if err := a.flush(ctx, false); err != nil {
			return err
		}
	}
	var plan memberPlan
	err := a.s.view(ctx, func(txn *badger.Txn) error {
		if _, err := txn.Get(resourceKey('G', ed.Group)); err != nil {
			return err
		}
		var err error
		plan, err = planEdit(txn, ed)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("group %s: %w", ed.Group, err)
	case plan.size() == 0:
		a.total.Unchanged++
		return nil
	}
	write := func(w *writer, part memberPlan, first bool) error {
		if err := w.writeGroup(ed.Group, nil, part, first); err != nil {
			return fmt.Errorf("group %s: %w", ed.Group, err)
		}
		return nil
	}
	if plan.size() <= a.s.memberSlice {
		return a.add(ctx, item{id: ed.Group, ops: plan.size(), write: func(w *writer) error { return write(w, plan, true) }})
	}
	return a.slices(ctx, ed.Group, &plan, func(w *writer, part memberPlan, first, _ bool) error {
		return write(w, part, first)
	})
}

// planEdit turns an edit into member changes against the stored members.
func planEdit(txn *badger.Txn, ed MemberEdit) (memberPlan, error) {
	var plan memberPlan
	stored := func(id string) (scim.Member, bool, error) {
		v, err := getValue(txn, groupMemberKey(ed.Group, id))
		if errors.Is(err, ErrNotFound) {
			return scim.Member{}, false, nil
		}
		if err != nil {
			return scim.Member{}, false, err
		}
		m, err := decodeMember(id, v)
		return m, err == nil, err
	}
	removed := map[string]bool{}
	for _, id := range ed.Remove {
		old, ok, err := stored(id)
		if err != nil {
			return plan, err
		}
		if ok && !removed[id] {
			removed[id] = true
			plan.removed = append(plan.removed, old)
		}
	}
	set, err := sortedMembers(ed.Set)
	if err != nil {
		return plan, err
	}
	for _, m := range set {
		if removed[m.Value] {
			continue
		}
		old, ok, err := stored(m.Value)
		switch {
		case err != nil:
			return plan, err
		case !ok:
			plan.added = append(plan.added, m)
		case old != m:
			plan.changed = append(plan.changed, [2]scim.Member{old, m})
		}
	}
	return plan, nil
}

// addDelete queues a deletion. A group with more members than a transaction takes first loses
// them in slices of their own (each journaled as a member removal), then goes.
func (a *applier) addDelete(ctx context.Context, id string) error {
	n, err := a.memberCount(ctx, id)
	if err != nil {
		return err
	}
	if n > a.s.memberSlice {
		if err := a.flush(ctx, false); err != nil {
			return err
		}
		for ; n > a.s.memberSlice; n -= a.s.memberSlice {
			err := a.commit(ctx, []item{{id: id, write: func(w *writer) error {
				return w.shrinkGroup(id, a.s.memberSlice)
			}}}, false)
			if err != nil {
				return fmt.Errorf("delete %s: %w", id, err)
			}
		}
	}
	return a.add(ctx, item{id: id, write: func(w *writer) error {
		if err := w.remove(id); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
		return nil
	}})
}

// memberCount returns the member count of group id from a snapshot; 0 for anything else.
func (a *applier) memberCount(ctx context.Context, id string) (int, error) {
	if a.ids[id] {
		if err := a.flush(ctx, false); err != nil {
			return 0, err
		}
	}
	n, err := a.s.MemberCount(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return n, err
}

func validate(b *Batch) error {
	for i, r := range b.Upserts {
		if r == nil {
			return fmt.Errorf("%w: upsert %d is nil", ErrInvalid, i)
		}
		if typeByte(r.Type) == 0 {
			return fmt.Errorf("%w: resource %q: unknown type %q", ErrInvalid, r.ID, r.Type)
		}
		if err := validID(r.ID); err != nil {
			return err
		}
	}
	for _, id := range b.Deletes {
		if err := validID(id); err != nil {
			return err
		}
	}
	for id := range b.Overlays {
		if err := validID(id); err != nil {
			return err
		}
	}
	if b.Watermark != nil && b.Source == "" {
		return fmt.Errorf("%w: watermark without source", ErrInvalid)
	}
	for _, ed := range b.MemberEdits {
		if err := validID(ed.Group); err != nil {
			return err
		}
		for _, id := range ed.Remove {
			if err := validID(id); err != nil {
				return err
			}
		}
	}
	if b.Holds != nil {
		for _, h := range *b.Holds {
			if err := validID(h.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func validID(id string) error {
	if id == "" || strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("%w: id %q", ErrInvalid, id)
	}
	return nil
}

// loadRef returns the ref record of id, or ok == false.
func (w *writer) loadRef(id string) (ref refRecord, ok bool, err error) {
	v, err := w.get(refKey(id))
	if errors.Is(err, ErrNotFound) {
		return ref, false, nil
	}
	if err != nil {
		return ref, false, err
	}
	ref, err = decodeRef(v)
	return ref, err == nil, err
}

func (w *writer) loadStored(tb byte, id string) (*stored, error) {
	v, err := w.get(resourceKey(tb, id))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: ref without resource", ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	return decodeStored(v)
}

// upsert writes one user unless its content hash is unchanged. It reads the stored user
// first: for a user that is stored, the only read, since the stored version carries the
// content hash and the names the ref's display repeats; the ref is read only for an id with
// no stored user, to tell a new user from an id stored as a group. (Each point read consults
// every level-0 table, which grow with a command's writes: a pass that rewrites every user
// pays for each read it makes of each.)
func (w *writer) upsert(e *encoded) error {
	r := e.res
	old, unchanged, err := w.storedUser(e)
	if err != nil || unchanged {
		return err
	}
	oldDisplay := ""
	if old != nil {
		oldDisplay = storedDisplay(old)
	}
	var prev time.Time
	if old != nil {
		prev = old.modified
	}
	mod := w.modified(e.src, prev)
	created := mod
	if old != nil {
		created = old.created
	}
	if err := w.set(resourceKey(e.tb, r.ID), resourceValue(e, created, mod)); err != nil {
		return err
	}
	if err := w.set(refKey(r.ID), refValue(e.tb, e.hash, display(r))); err != nil {
		return err
	}
	if err := w.writeIndexes(e, old, oldDisplay, mod); err != nil {
		return err
	}
	var changed []string
	var diff []AttrChange
	if old == nil {
		changed, diff = createdChanges(e)
	} else {
		changed, diff = diffSides(sideOfStored(old), sideOfEncoded(e))
	}
	return w.record(w.countChange(e.tb, old, r.Active(), true), r.Type, r.ID, changed, diff)
}

// storedUser returns the stored version of user e (nil: none, a create), or unchanged when
// it has e's content hash (counted in the result), without decoding it. It reads the stored
// user first, the one read an update needs, unless the batch's last user was new
// (w.order.creates): then the ref first, the one read a create needs.
func (w *writer) storedUser(e *encoded) (old *stored, unchanged bool, err error) {
	id := e.res.ID
	if w.order != nil && w.order.creates {
		ref, found, err := w.loadRef(id)
		switch {
		case err != nil || !found:
			return nil, false, err
		case ref.tb != e.tb:
			return nil, false, fmt.Errorf("%w: id already stored as a %s", ErrInvalid, typeOf(ref.tb))
		}
		w.order.creates = false
		if ref.hash == e.hash {
			w.res.Unchanged++
			return nil, true, nil
		}
		old, err = w.loadStored(e.tb, id)
		return old, false, err
	}
	v, err := w.get(resourceKey(e.tb, id))
	if errors.Is(err, ErrNotFound) {
		ref, found, err := w.loadRef(id)
		switch {
		case err != nil:
			return nil, false, err
		case !found:
			if w.order != nil {
				w.order.creates = true
			}
			return nil, false, nil
		case ref.tb != e.tb:
			return nil, false, fmt.Errorf("%w: id already stored as a %s", ErrInvalid, typeOf(ref.tb))
		}
		return nil, false, fmt.Errorf("%w: ref without resource", ErrCorrupt)
	}
	if err != nil {
		return nil, false, err
	}
	h, _, err := splitHeader(v)
	if err != nil {
		return nil, false, err
	}
	if h.hash == e.hash {
		w.res.Unchanged++
		return nil, true, nil
	}
	old, err = decodeStored(v)
	return old, false, err
}

// readOrder is which read an Apply's upserts of users make first (writer.storedUser): the ref
// after a new user, since the next is likely new too, else the stored user.
type readOrder struct{ creates bool }

// storedDisplay is the display name of a stored user (display): what its ref holds.
func storedDisplay(st *stored) string {
	var d string
	if raw, ok := st.Attributes["displayName"]; ok && json.Unmarshal(raw, &d) == nil && d != "" {
		return d
	}
	var u string
	if raw, ok := st.Attributes["userName"]; ok && json.Unmarshal(raw, &u) != nil {
		u = ""
	}
	return u
}

// countChange counts a create, deactivation or update in the result (when count is set) and
// returns its journal operation.
func (w *writer) countChange(tb byte, old *stored, active, count bool) Op {
	switch {
	case old == nil:
		w.count(tb, 1)
		if count {
			w.res.Created++
		}
		return OpCreated
	case sideOfStored(old).active() && !active:
		if count {
			w.res.Deactivated++
		}
		return OpDeactivated
	}
	if count {
		w.res.Updated++
	}
	return OpUpdated
}

// writeGroup writes one transaction's share of a change of group id: its own content when e is
// non-nil, and part of its member changes. first says whether this is the group's first
// transaction in the batch, which the result counts. An unchanged group writes nothing.
func (w *writer) writeGroup(id string, e *encoded, part memberPlan, first bool) error {
	ref, found, err := w.loadRef(id)
	if err != nil {
		return err
	}
	if found && ref.tb != 'G' {
		return fmt.Errorf("%w: id already stored as a %s", ErrInvalid, typeOf(ref.tb))
	}
	if found && e != nil && ref.hash == e.hash && part.size() == 0 {
		if first {
			w.res.Unchanged++
		}
		return nil
	}
	var old *stored
	if found {
		if old, err = w.loadStored('G', id); err != nil {
			return err
		}
		if old.format != formatGroup {
			return fmt.Errorf("%w: group in an old format", ErrCorrupt)
		}
	} else if e == nil {
		return nil // a member edit of a group that is gone
	}
	sum := memberSummary{}
	if old != nil {
		sum = old.summary
	}
	if err := w.writeMembers(id, part, &sum); err != nil {
		return err
	}
	w.res.MembersAdded += len(part.added)
	w.res.MembersRemoved += len(part.removed)
	var changed []string
	var diff []AttrChange
	var contentHash [hashLen]byte
	var body []byte
	disp := ref.display
	var src, prev time.Time
	if e != nil {
		contentHash, body = e.contentHash, e.content
		src = e.src
	}
	if old != nil {
		prev = old.modified
	}
	mod := w.modified(src, prev)
	switch {
	case e == nil:
		contentHash, body = old.contentHash, old.body
		err = w.touchModified('G', id, old.modified, mod)
	case old == nil:
		disp = display(e.res)
		changed, diff = createdChanges(e)
		err = w.writeIndexes(e, nil, "", mod)
	default:
		disp = display(e.res)
		changed, diff = diffSides(sideOfStored(old), sideOfEncoded(e))
		err = w.writeIndexes(e, old, ref.display, mod)
	}
	if err != nil {
		return err
	}
	if old != nil || e == nil { // a create names its members without values, as every attribute
		if md := memberDiff(part); len(md) > 0 {
			if !slices.Contains(changed, "members") {
				changed = append(changed, "members")
				slices.Sort(changed)
			}
			diff = append(diff, md...)
			slices.SortFunc(diff, func(x, y AttrChange) int { return strings.Compare(x.Path, y.Path) })
		}
	}
	created := mod
	if old != nil {
		created = old.created
	}
	vh := versionHash(contentHash, sum)
	if err := w.set(resourceKey('G', id), groupValue(contentHash, sum, created, mod, body)); err != nil {
		return err
	}
	if err := w.set(refKey(id), refValue('G', vh, disp)); err != nil {
		return err
	}
	return w.record(w.countChange('G', old, true, first), scim.GroupType, id, changed, diff)
}

// touchModified moves the lastModified index entry of an id from old to mod.
func (w *writer) touchModified(tb byte, id string, old, mod time.Time) error {
	if err := w.del(modifiedKey(tb, old, id)); err != nil {
		return err
	}
	return w.set(modifiedKey(tb, mod, id), nil)
}

// shrinkGroup removes up to n members of group id, as one journaled member change.
func (w *writer) shrinkGroup(id string, n int) error {
	var part memberPlan
	prefix := groupMemberPrefix(id)
	err := scan(context.Background(), w.txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
		return item.Value(func(v []byte) error {
			m, err := decodeMember(string(k[len(prefix):]), v)
			part.removed = append(part.removed, m)
			if err == nil && len(part.removed) >= n {
				return errStop
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	return w.writeGroup(id, nil, part, false)
}

// remove deletes one resource with its index keys (a group also with its member keys); an
// unknown id is ignored.
func (w *writer) remove(id string) error {
	ref, found, err := w.loadRef(id)
	if err != nil || !found {
		return err
	}
	old, err := w.loadStored(ref.tb, id)
	if err != nil {
		return err
	}
	for _, k := range [][]byte{resourceKey(ref.tb, id), refKey(id), modifiedKey(ref.tb, old.modified, id), sourceKey(id), ownerKey(id), overlayKey(id)} {
		if err := w.del(k); err != nil {
			return err
		}
	}
	for _, k := range indexKeys(ref.tb, id, valuesOfStored(old)) {
		if err := w.del([]byte(k)); err != nil {
			return err
		}
	}
	if err := w.releaseDN(old.DN, id); err != nil {
		return err
	}
	_, diff := diffSides(sideOfStored(old), side{})
	if ref.tb == 'G' {
		part, err := allMembers(context.Background(), w.txn, id)
		if err != nil {
			return err
		}
		var sum memberSummary
		if err := w.writeMembers(id, part, &sum); err != nil {
			return err
		}
		diff = append(diff, memberDiff(part)...)
		slices.SortFunc(diff, func(x, y AttrChange) int { return strings.Compare(x.Path, y.Path) })
	}
	w.count(ref.tb, -1)
	w.res.Deleted++
	return w.record(OpDeleted, typeOf(ref.tb), id, nil, diff)
}

// writeIndexes brings every index of e up to date: stale keys of old are removed, missing keys
// added. oldDisplay is the display name stored with the old version; mod is the new
// lastModified.
func (w *writer) writeIndexes(e *encoded, old *stored, oldDisplay string, mod time.Time) error {
	id := e.res.ID
	newKeys := indexKeys(e.tb, id, valuesOf(e.res))
	var oldKeys []string
	oldDN := ""
	if old != nil {
		oldKeys = indexKeys(e.tb, id, valuesOfStored(old))
		oldDN = old.DN
		if err := w.touchModified(e.tb, id, old.modified, mod); err != nil {
			return err
		}
	} else if err := w.set(modifiedKey(e.tb, mod, id), nil); err != nil {
		return err
	}
	for _, k := range oldKeys {
		if !contains(newKeys, k) {
			if err := w.del([]byte(k)); err != nil {
				return err
			}
		}
	}
	for _, k := range newKeys {
		if !contains(oldKeys, k) {
			if err := w.set([]byte(k), nil); err != nil {
				return err
			}
		}
	}
	return w.writeDN(e, old != nil, oldDN, oldDisplay)
}

// writeDN moves the DN index entry of e from its old DN to its new one, and rewrites it when
// the display name it carries changed.
func (w *writer) writeDN(e *encoded, existed bool, oldDN, oldDisplay string) error {
	r := e.res
	oldNorm, newNorm := normalizeDN(oldDN), normalizeDN(r.DN)
	if oldNorm != newNorm {
		if err := w.releaseDN(oldDN, r.ID); err != nil {
			return err
		}
	}
	disp := display(r)
	if newNorm == "" || (existed && oldNorm == newNorm && oldDisplay == disp) {
		return nil
	}
	return w.set(dnKey(newNorm), dnValue(Ref{ID: r.ID, Type: r.Type, Display: disp}))
}

// releaseDN deletes the DN index entry of rawDN if it still points to id: within a batch another
// resource may already have taken over the DN (a rename chain), and its entry must stay.
func (w *writer) releaseDN(rawDN, id string) error {
	norm := normalizeDN(rawDN)
	if norm == "" {
		return nil
	}
	v, err := w.get(dnKey(norm))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ref, err := decodeDNValue(v)
	if err != nil || ref.ID != id {
		return err
	}
	return w.del(dnKey(norm))
}

func normalizeDN(s string) string {
	if s == "" {
		return ""
	}
	return dn.Normalize(s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
