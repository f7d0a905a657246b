package ldapsync

import (
	"context"
	"errors"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// resolver turns the references a pass reads (manager and member DNs, posixGroup memberUids)
// into ids: first among the entries the pass has read, then in the cache, then, in a delta
// pass, in the directory (a DN an OU rename changed without the entry changing). In a full
// pass, the cache's answer for a DN is tentative until the read is over: the entry may have
// gone, or its DN may now name another entry. The resolver records every tentative answer and
// the resources that used one, and says at the end which of them must be resolved again.
// One per pass, used by the pass's goroutine.
type resolver struct {
	ents  *entries // entries read in this pass
	store Store
	full  bool
	// complete reports whether the pass's read is complete so far: a complete full pass at its
	// end does not ask the cache, since a DN it did not read names no entry.
	complete func() bool
	// server resolves a DN in the directory, in a delta pass; nil: never.
	server func(ctx context.Context, dn string) (cache.Ref, bool, error)

	tentative map[key12]cache.Ref // DN key → what the cache gave before the read confirmed it
	used      bool                // the resource being resolved used a tentative reference
	rechecks  []recheck           // resources that used tentative references
}

func newResolver(ents *entries, store Store, full bool, complete func() bool,
	server func(context.Context, string) (cache.Ref, bool, error)) *resolver {
	return &resolver{ents: ents, store: store, full: full, complete: complete, server: server,
		tentative: map[key12]cache.Ref{}}
}

// recheck names a resource resolved with tentative references, and its references.
type recheck struct {
	id     string
	typ    scim.ResourceType
	rf     refs
	digest [16]byte
	mgr    *cache.Ref // set instead of rf for a skipped user: what its manager DN resolves to now
}

// begin starts resolving one resource.
func (rv *resolver) begin() { rv.used = false }

// usedTentative reports whether the resource being resolved used a tentative reference.
func (rv *resolver) usedTentative() bool { return rv.used }

// recheckLater records a resource that used a tentative reference.
func (rv *resolver) recheckLater(rc recheck) { rv.rechecks = append(rv.rechecks, rc) }

// readSaysAll reports whether the read alone answers a lookup: final in a full pass whose
// read was complete, where a DN or uid the pass did not read names no entry.
func (rv *resolver) readSaysAll(final bool) bool { return rv.full && final && rv.complete() }

// resolveChunk is how many member DNs of a group are resolved against the cache in one
// snapshot: a group of a million members costs a thousand reads, not a million, and the
// answers held at once stay small.
const resolveChunk = 1024

// preResolved holds the cache's answers for a chunk of DNs; nil when the cache was not asked.
type preResolved struct {
	refs []cache.Ref
	ok   []bool
}

// at returns the answer for the i-th DN of the chunk, or nil.
func (pr *preResolved) at(i int) *cachedDN {
	if pr == nil {
		return nil
	}
	return &cachedDN{ref: pr.refs[i], ok: pr.ok[i]}
}

// cachedDN is the cache's answer for one DN.
type cachedDN struct {
	ref cache.Ref
	ok  bool
}

// prefetch asks the cache, in one snapshot, for the DNs of chunk that dn would ask it for:
// those not read in this pass, unless the pass is a complete full pass at its end (which never
// asks). It returns nil when there are none.
func (rv *resolver) prefetch(ctx context.Context, chunk []string, final bool) (*preResolved, error) {
	if rv.readSaysAll(final) {
		return nil, nil
	}
	ask := make([]string, len(chunk))
	n := 0
	for i, d := range chunk {
		if _, ok := rv.ents.byDNKey(dnKey(d)); !ok {
			ask[i] = d
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	refs, ok, err := rv.store.ResolveDNs(ctx, ask)
	if err != nil {
		return nil, err
	}
	return &preResolved{refs: refs, ok: ok}, nil
}

// dn finds the entry a DN names: first among entries read in this pass, then in the cache
// (pre, when prefetch has read the answer already; nil to ask), then in a delta pass in the
// directory. In a full pass before its end (final false) the cache's answer is tentative; a
// complete full pass at its end does not ask the cache.
func (rv *resolver) dn(ctx context.Context, d string, final bool, pre *cachedDN) (cache.Ref, bool, error) {
	key := dnKey(d)
	if ref, ok := rv.ents.byDNKey(key); ok {
		return ref, true, nil
	}
	if rv.readSaysAll(final) {
		return cache.Ref{}, false, nil
	}
	var ref cache.Ref
	var ok bool
	var err error
	if pre != nil {
		ref, ok = pre.ref, pre.ok
	} else {
		ref, ok, err = rv.store.ResolveDN(ctx, d)
	}
	if err == nil && !ok && !rv.full && rv.server != nil {
		ref, ok, err = rv.server(ctx, d)
	}
	if err != nil || !ok || !rv.full || final {
		return ref, ok, err
	}
	rv.tentative[key] = ref
	rv.used = true
	return ref, true, nil
}

// uid finds the user a memberUid names: among the users read in this pass, else (a delta pass,
// or a partial full pass at its end) the one cached user with that userName.
func (rv *resolver) uid(ctx context.Context, uid string, final bool) (cache.Ref, bool, error) {
	if ref, ok := rv.ents.byUIDValue(uid); ok {
		return ref, true, nil
	}
	if rv.full && (!final || rv.complete()) {
		return cache.Ref{}, false, nil
	}
	ids, err := rv.store.Lookup(ctx, cache.IndexUserName, uid)
	if err != nil || len(ids) != 1 {
		return cache.Ref{}, false, err
	}
	u, err := rv.store.Get(ctx, scim.UserType, ids[0])
	if errors.Is(err, cache.ErrNotFound) {
		return cache.Ref{}, false, nil
	} else if err != nil {
		return cache.Ref{}, false, err
	}
	return cache.Ref{ID: u.ID, Type: scim.UserType, Display: u.DisplayName()}, true, nil
}

// stale returns, once the read is complete, the resources that used a tentative reference the
// read did not confirm (the DN now names another entry, or none), and forgets every tentative
// reference.
func (rv *resolver) stale() []recheck {
	var out []recheck
	for _, rc := range rv.rechecks {
		for _, d := range append([]string{rc.rf.manager}, rc.rf.memberDNs...) {
			if d == "" {
				continue
			}
			k := dnKey(d)
			if t, ok := rv.tentative[k]; ok {
				if now, _ := rv.ents.byDNKey(k); now != t {
					out = append(out, rc)
					break
				}
			}
		}
	}
	rv.rechecks, rv.tentative = nil, nil
	return out
}
