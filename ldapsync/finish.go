package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// finish decides deactivations and deletions against the threshold and applies the rest of the
// pass together with the watermark (nil: keep the old one) and the held-deletion set in one
// cache batch, so the watermark never runs ahead of the data (invariant 2, docs/architecture.md).
func (p *pass) finish(ctx context.Context, wm *watermark, replaceHolds bool) error {
	if err := p.drain(); err != nil {
		return err
	}
	// Users and groups are counted separately (invariant 5, docs/architecture.md): a few
	// groups deleted next to many users are still all the groups.
	dec, err := p.dels.Decide(ctx, p.s.store, p.s.threshold(), p.id, p.held.Any(), p.s.log)
	if err != nil {
		return err
	}
	p.sum.Held += dec.HeldCount
	for _, id := range dec.KeptActive {
		delete(p.batchSrc, id) // the next full pass must see the deactivation again
	}
	old, err := p.s.store.Holds(ctx)
	if err != nil {
		return err
	}
	var holds []cache.Hold
	if !replaceHolds {
		// A delta pass keeps earlier holds, except for entries it has just read again.
		holds = p.dels.KeptHolds(old, p.wasRead)
	}
	holds = append(holds, dec.Holds...)
	b := cache.Batch{Source: Source, Pass: p.id, Deletes: dec.Deletes}
	b.Upserts = append(slices.Clone(dec.Upserts), p.batch...)
	if dec.Held[scim.GroupType] {
		// A held group stays a member of the groups that list it (nested groups).
		if err := p.dels.KeepHeldGroups(ctx, p.s.store, b.Upserts); err != nil {
			return err
		}
	}
	b.SourceHashes, b.KeepMembers = p.batchSrc, p.keptMembers()
	edits := ingest.Edits{}
	p.addLoggedEdits(edits)
	vgs, err := p.virtual.Build(ctx, p.s.store, edits)
	if err != nil {
		return err
	}
	b.Upserts = append(b.Upserts, vgs...)
	p.batch = nil
	restated := slices.DeleteFunc(slices.Clone(b.Upserts), func(r *scim.Resource) bool { return p.keepMembers[r.ID] })
	if err := ingest.PruneMembers(ctx, p.s.store, restated, b.Deletes, edits); err != nil {
		return err
	}
	if err := p.refreshCopies(ctx, &b, edits); err != nil {
		return err
	}
	b.MemberEdits = edits.List()
	for _, h := range p.memberHolds.List() {
		holds = append(holds, h)
		p.sum.HeldMembers += len(h.Members)
	}
	b.Holds = ingest.HoldSet(holds, old, replaceHolds)
	if wm != nil {
		wm.LastPass = time.Now().UTC()
		raw, err := json.Marshal(wm)
		if err != nil {
			return err
		}
		b.Watermark = raw
	}
	if p.s.progress != nil {
		p.s.progress("apply", p.sum.Read)
	}
	res, err := p.s.store.Apply(ctx, b)
	p.sum.add(res)
	if err == nil {
		err = p.dups.check(ctx, p.s.store, b.Upserts)
	}
	p.sum.DuplicateUserNames = p.dups.count
	return err
}

// noteRename records, in a delta pass, an entry whose display name differs from the cached one.
func (p *pass) noteRename(ctx context.Context, r *scim.Resource) error {
	old, err := p.s.store.Ref(ctx, r.ID)
	if errors.Is(err, cache.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d := displayOf(r); d != old.Display {
		p.renamed[r.ID] = scim.Member{Value: r.ID, Type: r.Type, Display: d}
	}
	return nil
}

// refreshCopies updates what other resources copy from the entries this delta pass renamed or
// deletes: a group member's display, and a report's manager (its displayName, or the whole
// manager when the manager is deleted). A delta reads only the entries that changed, so without
// it the copies would stay stale until the next full pass: with refint, slapd's rewrite of the
// reports is invisible to syncrepl; without it, their manager DN names nothing. (Deleted
// members are pruned from groups by pruneMembers.) The groups come from the member index, the
// reports from the manager index. A refreshed report's source record gets the new manager too,
// so the next full pass does not see it as stale again. A group the batch does not upsert gets a
// member edit naming only the renamed member, whatever the group's size.
func (p *pass) refreshCopies(ctx context.Context, b *cache.Batch, edits ingest.Edits) error {
	if p.full || len(p.renamed)+len(b.Deletes) == 0 {
		return nil
	}
	queued := make(map[string]*scim.Resource, len(b.Upserts))
	for _, r := range b.Upserts {
		queued[r.ID] = r
	}
	deleted := make(map[string]bool, len(b.Deletes))
	for _, id := range b.Deletes {
		deleted[id] = true
	}
	// load returns the resource to change: the one this batch writes, else the cached one
	// (nil if gone), which it adds to the batch.
	load := func(typ scim.ResourceType, id string) (*scim.Resource, bool, error) {
		if r := queued[id]; r != nil {
			return r, true, nil
		}
		r, err := p.s.store.Get(ctx, typ, id)
		if errors.Is(err, cache.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		queued[id] = r
		b.Upserts = append(b.Upserts, r)
		return r, false, nil
	}
	for _, id := range slices.Sorted(maps.Keys(p.renamed)) {
		m := p.renamed[id]
		groups, err := p.s.store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if deleted[g.ID] {
				continue
			}
			r := queued[g.ID]
			if r == nil || r.Type != scim.GroupType || p.keepMembers[g.ID] {
				edits.Set(g.ID, m)
				continue
			}
			// The batch restates the group: change its list. A copy: a resource from a plan's
			// dry-run store shares its members with the plan.
			if i := slices.IndexFunc(r.Members, func(x scim.Member) bool { return x.Value == id }); i >= 0 && r.Members[i].Display != m.Display {
				r.Members = slices.Clone(r.Members)
				r.Members[i].Display = m.Display
			}
		}
	}
	// The reports of the renamed and the deleted, from the manager index.
	managerOf := map[string]string{} // report id → the manager id it names
	var ids []string
	for _, m := range append(slices.Collect(maps.Keys(p.renamed)), b.Deletes...) {
		reports, err := p.s.store.Lookup(ctx, cache.IndexManager, m)
		if err != nil {
			return err
		}
		for _, id := range reports {
			if !deleted[id] {
				managerOf[id] = m
				ids = append(ids, id)
			}
		}
	}
	srcs, err := p.s.store.SourceHashes(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m := managerOf[id]
		r, inBatch, err := load(scim.UserType, id)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		ext, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
		mgr, _ := ext["manager"].(map[string]any)
		if mgr == nil || mgr["value"] != m {
			continue // this batch gave it another manager
		}
		// Copies, as for the members above.
		ext = maps.Clone(ext)
		now := cache.Ref{} // what the manager DN resolves to now: nothing, if she is deleted
		if deleted[m] {
			delete(ext, "manager")
		} else {
			now = cache.Ref{ID: m, Display: p.renamed[m].Display}
			mgr = maps.Clone(mgr)
			mgr["displayName"] = now.Display
			ext["manager"] = mgr
		}
		if len(ext) == 0 {
			delete(r.Attributes, scim.SchemaEnterpriseUser)
		} else {
			r.Attributes[scim.SchemaEnterpriseUser] = ext
		}
		// The source record names the manager too (a report read in this pass has its own).
		if enc, ok := ingest.WithManager(srcs[id], now); ok && !inBatch {
			if b.SourceHashes == nil {
				b.SourceHashes = map[string][]byte{}
			}
			b.SourceHashes[id] = enc
		}
	}
	return nil
}
