package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// Batch is a set of changes from one sync source. Upserts are applied first, then Deletes.
type Batch struct {
	Source  string           // watermark owner, e.g. "ldap"
	Pass    string           // id of the sync pass, recorded in journal and audit
	Upserts []*scim.Resource // Meta is ignored on input; the store sets it
	Deletes []string         // ids; unknown ids are ignored
	// Watermark, if non-nil, is stored for Source in the same transaction as the last chunk.
	Watermark []byte
	// Holds, if non-nil, replaces the whole held-deletion set in the same transaction as the
	// last chunk.
	Holds *[]Hold
	// SourceHashes, optional, maps an upserted id to a digest of the directory entry it came
	// from. It is stored with the resource (also when the content is unchanged) and read back
	// with ForEachSourceHash, so a sync source can skip entries that did not change.
	SourceHashes map[string][]byte
}

// Result counts what an Apply did.
type Result struct{ Created, Updated, Deactivated, Deleted, Unchanged int }

func (r *Result) add(o Result) {
	r.Created += o.Created
	r.Updated += o.Updated
	r.Deactivated += o.Deactivated
	r.Deleted += o.Deleted
	r.Unchanged += o.Unchanged
}

// Apply writes b into the store in chunks of up to about a thousand resources, one transaction
// each. A resource whose content hash is unchanged is not written at all (Result.Unchanged).
// Every other change writes the resource, its index keys, one journal record and one audit
// record in one transaction; a resource is never split across transactions.
//
// The watermark and the hold set are written with the last chunk, so they become visible only
// when the whole batch is. If Apply fails midway (error, cancelled ctx, crash), the committed
// chunks stay and the returned Result counts them; re-applying the batch is harmless.
//
// Errors: ErrInvalid (nil resource, unknown type, empty id or an id with a NUL byte, an id
// stored under another type, a Watermark without Source), ErrTooBig, ErrConflict, ErrClosed,
// ctx.Err() (checked between chunks). Safe for concurrent use; concurrent Applies run one at a
// time.
func (s *Store) Apply(ctx context.Context, b Batch) (Result, error) {
	if err := validate(&b); err != nil {
		return Result{}, err
	}
	n := len(b.Upserts) + len(b.Deletes)
	if n == 0 && b.Watermark == nil && b.Holds == nil {
		return Result{}, ctx.Err()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeChunks(ctx, n, func(start, end int) (func(*writer) error, error) {
		c, err := newChunk(&b, start, end)
		if err != nil {
			return nil, err
		}
		return func(w *writer) error { return w.applyChunk(&b, c) }, nil
	})
}

// writeChunks writes items [0, n) in transactions of up to s.chunk items each (one transaction
// when n == 0). prepare builds the function that writes items [start, end); it runs outside the
// transaction, so a conflict retry reuses its work. A chunk that hits ErrTooBig is halved and
// retried in a fresh transaction; a single item that is too big fails. ctx is checked between
// chunks. The caller holds s.wmu.
func (s *Store) writeChunks(ctx context.Context, n int, prepare func(start, end int) (func(*writer) error, error)) (Result, error) {
	var total Result
	size := s.chunk
	for start := 0; ; {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		end := min(start+size, n)
		fn, err := prepare(start, end)
		if err != nil {
			return total, err
		}
		w, err := s.write(fn)
		if errors.Is(err, ErrTooBig) && end-start > 1 {
			size = (end - start + 1) / 2
			continue
		}
		if err != nil {
			return total, err
		}
		total.add(w.res)
		if s.afterCommit != nil {
			s.afterCommit(chunkInfo{writes: w.writes, last: end == n, res: w.res})
		}
		if end == n {
			return total, nil
		}
		start = end
	}
}

// chunk is the part of a batch one transaction applies; upserts are encoded once, before the
// transaction, so a conflict retry does not encode again.
type chunk struct {
	upserts []*encoded
	deletes []string
	last    bool
}

func newChunk(b *Batch, start, end int) (chunk, error) {
	nu := len(b.Upserts)
	c := chunk{last: end == nu+len(b.Deletes)}
	for i := start; i < min(end, nu); i++ {
		e, err := encode(b.Upserts[i])
		if err != nil {
			return c, err
		}
		c.upserts = append(c.upserts, e)
	}
	if end > nu {
		c.deletes = b.Deletes[max(start, nu)-nu : end-nu]
	}
	return c, nil
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
	if b.Watermark != nil && b.Source == "" {
		return fmt.Errorf("%w: watermark without source", ErrInvalid)
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

func (w *writer) applyChunk(b *Batch, c chunk) error {
	w.pass = b.Pass
	for _, e := range c.upserts {
		if err := w.upsert(e); err != nil {
			return fmt.Errorf("%s %s: %w", e.res.Type, e.res.ID, err)
		}
		if h, ok := b.SourceHashes[e.res.ID]; ok {
			if err := w.set(sourceKey(e.res.ID), h); err != nil {
				return err
			}
		}
	}
	for _, id := range c.deletes {
		if err := w.remove(id); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
	}
	if !c.last {
		return nil
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

// upsert writes one resource unless its content hash is unchanged.
func (w *writer) upsert(e *encoded) error {
	r := e.res
	ref, found, err := w.loadRef(r.ID)
	if err != nil {
		return err
	}
	var old *stored
	if found {
		if ref.tb != e.tb {
			return fmt.Errorf("%w: id already stored as a %s", ErrInvalid, typeOf(ref.tb))
		}
		if ref.hash == e.hash {
			w.res.Unchanged++
			return nil
		}
		if old, err = w.loadStored(e.tb, r.ID); err != nil {
			return err
		}
	}
	created := w.now
	if old != nil {
		created = old.created
	}
	disp := display(r)
	if err := w.set(resourceKey(e.tb, r.ID), resourceValue(e, created, w.now)); err != nil {
		return err
	}
	if err := w.set(refKey(r.ID), refValue(e.tb, e.hash, disp)); err != nil {
		return err
	}
	var before side
	if old != nil {
		before = sideOfStored(old)
	}
	mc := diffMembers(before.members, r.Members)
	if err := w.writeIndexes(e, old, ref.display, mc); err != nil {
		return err
	}
	var changed []string
	var diff []AttrChange
	if old == nil {
		changed, diff = createdChanges(e)
	} else {
		changed, diff = diffSides(before, sideOfEncoded(e), mc)
	}
	op := OpUpdated
	switch {
	case old == nil:
		op = OpCreated
		w.count(e.tb, 1)
		w.res.Created++
	case before.active() && !r.Active():
		op = OpDeactivated
		w.res.Deactivated++
	default:
		w.res.Updated++
	}
	return w.record(op, r.Type, r.ID, changed, diff)
}

// remove deletes one resource with its index keys; an unknown id is ignored.
func (w *writer) remove(id string) error {
	ref, found, err := w.loadRef(id)
	if err != nil || !found {
		return err
	}
	old, err := w.loadStored(ref.tb, id)
	if err != nil {
		return err
	}
	for _, k := range [][]byte{resourceKey(ref.tb, id), refKey(id), modifiedKey(ref.tb, old.modified, id), sourceKey(id)} {
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
	for _, m := range old.Members {
		if err := w.del(memberKey(m.Value, id)); err != nil {
			return err
		}
	}
	mc := diffMembers(old.Members, nil)
	_, diff := diffSides(sideOfStored(old), side{}, mc)
	w.count(ref.tb, -1)
	w.res.Deleted++
	return w.record(OpDeleted, typeOf(ref.tb), id, nil, diff)
}

// writeIndexes brings every index of e up to date: stale keys of old are removed, missing keys
// added. oldDisplay is the display name stored with the old version.
func (w *writer) writeIndexes(e *encoded, old *stored, oldDisplay string, mc memberChanges) error {
	id := e.res.ID
	newKeys := indexKeys(e.tb, id, valuesOf(e.res))
	var oldKeys []string
	oldDN := ""
	if old != nil {
		oldKeys = indexKeys(e.tb, id, valuesOfStored(old))
		oldDN = old.DN
		if err := w.del(modifiedKey(e.tb, old.modified, id)); err != nil {
			return err
		}
	}
	if err := w.set(modifiedKey(e.tb, w.now, id), nil); err != nil {
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
	if err := w.writeDN(e, old != nil, oldDN, oldDisplay); err != nil {
		return err
	}
	for _, m := range mc.removed {
		if err := w.del(memberKey(m, id)); err != nil {
			return err
		}
	}
	for _, m := range mc.added {
		if err := w.set(memberKey(m, id), nil); err != nil {
			return err
		}
	}
	return nil
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
