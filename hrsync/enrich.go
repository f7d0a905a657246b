package hrsync

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Enrich mode: each row adds attributes to the directory user it joins (cache.Overlay). The
// row's values override the directory's for every mapped column it has a value for; a start
// date in the future or an end date reached makes the user inactive, a deactivation that
// counts against the threshold like the directory's. The source never creates, deletes or
// owns users: a row that disappears gives the user back the directory's values.

// maxKeys bounds the keys a summary lists of unjoined and ambiguous rows.
const maxKeys = 20

// joinIndex is the cache index of a join attribute.
func joinIndex(join string) (cache.Index, bool) {
	switch join {
	case "externalId":
		return cache.IndexExternalID, true
	case "userName":
		return cache.IndexUserName, true
	}
	return "", false
}

// enrichRow is a joined row waiting for its user's stored overlay.
type enrichRow struct {
	row hrcsv.Row
	id  string
	set map[string]any
}

// asideOverlays are the two overlays a user whose deactivation Queue set aside may get: which
// one is stored depends on whether Last applies the deactivation or holds it.
type asideOverlays struct{ applied, held *cache.Overlay }

func (p *pass) runEnrich(ctx context.Context, r io.Reader, wm watermark) error {
	idx, _ := joinIndex(p.s.cfg.Join)
	today := p.s.today()
	if err := p.beginEnrich(ctx); err != nil {
		return err
	}
	p.joined = map[string]bool{}
	q := overlayQueue{p: p}
	err := hrcsv.Scan(ctx, r, p.s.cfg, p.rep, func(row hrcsv.Row) error {
		ids, err := p.directoryUsers(ctx, idx, row.Key)
		if err != nil {
			return err
		}
		switch {
		case len(ids) == 0:
			p.sum.Unjoined++
			if len(p.sum.UnjoinedKeys) < maxKeys {
				p.sum.UnjoinedKeys = append(p.sum.UnjoinedKeys, row.Key)
			}
			return nil
		case len(ids) > 1 || p.joined[ids[0]]:
			// Several users, or a user another row joined already (userName is case-folded).
			p.sum.Ambiguous++
			if len(p.sum.AmbiguousKeys) < maxKeys {
				p.sum.AmbiguousKeys = append(p.sum.AmbiguousKeys, row.Key)
			}
			return nil
		}
		f, err := p.resolve(ctx, row, today)
		if err != nil {
			return err
		}
		p.joined[ids[0]] = true
		return q.add(ctx, enrichRow{row: row, id: ids[0], set: p.s.enrichSet(row, f.active)})
	})
	if err == nil {
		err = q.flush(ctx)
	}
	if err != nil {
		return err // an incomplete read reverts nothing (invariant 4)
	}
	// The file is complete: a user this source enriched that no row joins gets the directory's
	// values back.
	var gone []string
	enriched := 0
	err = p.s.store.ForEachOverlay(ctx, p.s.Name(), func(id string, _ *cache.Overlay) error {
		enriched++
		if !p.joined[id] {
			gone = append(gone, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return p.endEnrich(ctx, gone, enriched, wm)
}

// beginEnrich makes the maps an enrich pass fills, and notes the users this source holds
// changes of: the only ones whose being queued matters at the end (endEnrich), so that the pass
// remembers no more than them of the users it queues (a first import queues every user).
func (p *pass) beginEnrich(ctx context.Context) error {
	p.queued = map[string]bool{}
	p.ovBatch = map[string]*cache.Overlay{}
	p.aside = map[string]asideOverlays{}
	holds, err := p.s.store.Holds(ctx)
	if err != nil {
		return err
	}
	p.held = map[string]bool{}
	for _, h := range holds {
		if h.Source == p.s.Name() {
			p.held[h.ID] = true
		}
	}
	return nil
}

// noteQueued notes that the pass queued the user id: whether it did decides, for a user this
// source holds a change of, whether the hold stays (endEnrich).
func (p *pass) noteQueued(id string) {
	if p.held[id] {
		p.queued[id] = true
	}
}

// today is the day a pass judges start and end dates on: UTC midnight.
func (s *Source) today() time.Time {
	now := s.o.Now().UTC()
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

// endEnrich ends an enrich pass whose rows are compared and queued: it reverts the users of
// gone (this source's overlays that no row joins any more, of the enriched it stores) unless
// they are more than the threshold allows, decides the reactivations, and writes the last
// batch with the watermark.
func (p *pass) endEnrich(ctx context.Context, gone []string, enriched int, wm watermark) error {
	if p.sum.Unjoined > 0 {
		p.s.o.Log.Info("rows that join no directory user", "rows", p.sum.Unjoined, "first", p.sum.UnjoinedKeys)
	}
	if p.sum.Ambiguous > 0 {
		p.s.o.Log.Warn("rows that join several directory users: skipped", "rows", p.sum.Ambiguous, "first", p.sum.AmbiguousKeys)
	}
	if n := len(gone); p.s.th.Over(n, enriched) {
		// A truncated or wrong export would give many users the directory's department, cost
		// center or title back at once, and the rules their roles with them: refused, as
		// mass reactivations are. The users keep this source's values until a file lists them
		// again, or the limits are raised for one pass.
		p.sum.KeptOverlays = n
		p.warn(fmt.Sprintf("%d of the %d users this file enriched are in no row any more, more than [safety] allows in one pass (max_deletes %d, max_delete_percent %g): all keep the file's values; check the export, or raise the limits for one pass",
			n, enriched, p.s.th.MaxDeletes, p.s.th.MaxDeletePercent))
		gone = nil
	}
	for i := 0; i < len(gone); i += chunk {
		if err := p.revertGone(ctx, gone[i:min(i+chunk, len(gone))]); err != nil {
			return err
		}
	}
	if err := p.decideReactivations(ctx); err != nil {
		return err
	}
	old, err := p.s.store.Holds(ctx)
	if err != nil {
		return err
	}
	others := map[string]bool{} // users another source holds: this pass must not drop their holds
	for _, h := range old {
		if h.Source != p.s.Name() {
			others[h.ID] = true
		}
	}
	// Only this source's passes, which run one at a time, hold changes for it: its holds are
	// those beginEnrich noted, and queued knows every one of them the pass queued.
	read := func(id string) bool { return p.queued[id] && !others[id] }
	b, held, _, err := p.core.Last(ctx, ingest.Tail{Upserts: p.batch, Overlays: p.ovBatch, Read: read})
	if err != nil {
		return err
	}
	p.batch, p.sum.Held = nil, held
	p.decideAside(&b)
	return p.finish(ctx, b, wm)
}

// directoryUsers returns the directory's users whose join attribute is key: users another
// source owns (an HR file's own users, whose externalId is their row's key) are never joined.
func (p *pass) directoryUsers(ctx context.Context, idx cache.Index, key string) ([]string, error) {
	ids, err := p.s.store.Lookup(ctx, idx, key)
	if err != nil {
		return nil, err
	}
	out := ids[:0]
	for _, id := range ids {
		dir, err := p.isDirectorys(ctx, id)
		if err != nil {
			return nil, err
		}
		if dir {
			out = append(out, id)
		}
	}
	return out, nil
}

// isDirectorys reports whether no source owns the user id: a directory user. After the walks
// of runEnrichRows only an id whose hash is one of an owned user's is looked up.
func (p *pass) isDirectorys(ctx context.Context, id string) (bool, error) {
	if p.walked {
		if _, ok := slices.BinarySearch(p.owned, maphash.String(p.seed, id)); !ok {
			return true, nil
		}
	}
	owner, err := p.s.store.Owner(ctx, id)
	return owner == "", err
}

// overlays returns the stored overlays of ids (cache.Store.Overlays). After the walks of
// runEnrichRows only the ids whose hash is one of a stored overlay's are read: a first import
// reads none. The walks' overlays are all there are until this pass writes its own: every
// pass of the cache's sources holds one lock (Options.PassLock), and a directory pass keeps
// overlays but makes none.
func (p *pass) overlays(ctx context.Context, ids []string) (map[string]*cache.Overlay, error) {
	if p.walked {
		ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
			_, ok := slices.BinarySearch(p.withOverlay, maphash.String(p.seed, id))
			return !ok
		})
		if len(ids) == 0 {
			return map[string]*cache.Overlay{}, nil
		}
	}
	return p.s.store.Overlays(ctx, ids)
}

// enrichSet is what a row sets on the user it joins: its mapped cells (an empty cell sets
// nothing), and "active": false when the row's dates (or its active column) say inactive.
func (s *Source) enrichSet(row hrcsv.Row, active bool) map[string]any {
	set := make(map[string]any, len(row.Values)+1)
	for _, m := range s.paths {
		if m.path.Schema == "" && m.path.Attr == "active" {
			continue // in f.active
		}
		if v, ok := row.Values[m.path.Raw]; ok {
			set[m.path.Raw] = v
		}
	}
	if !active {
		set["active"] = false
	}
	return set
}

// overlayQueue hands joined rows to compareOverlays chunk rows at a time.
type overlayQueue struct {
	p       *pass
	pending []enrichRow
}

func (q *overlayQueue) add(ctx context.Context, r enrichRow) error {
	if q.pending = append(q.pending, r); len(q.pending) < chunk {
		return nil
	}
	return q.flush(ctx)
}

func (q *overlayQueue) flush(ctx context.Context) error {
	err := q.p.compareOverlays(ctx, q.pending)
	q.pending = q.pending[:0]
	return err
}

// compareOverlays compares rows with their users' stored overlays: an unchanged row writes
// nothing; a changed one takes the old overlay off its user, puts the new one on and queues
// the user.
func (p *pass) compareOverlays(ctx context.Context, rows []enrichRow) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]string, len(rows))
	for i, er := range rows {
		ids[i] = er.id
	}
	stored, err := p.overlays(ctx, ids)
	if err != nil {
		return err
	}
	for _, er := range rows {
		old := stored[er.id]
		if old != nil && old.Source != p.s.Name() {
			p.warn(fmt.Sprintf("key %q joins a user that source %s enriches already: row skipped", er.row.Key, old.Source))
			continue
		}
		if (old == nil && len(er.set) == 0) || (old != nil && old.Key == er.row.Key && sameSet(old.Set, er.set)) {
			p.sum.Unchanged++
			continue
		}
		u, err := p.s.store.Get(ctx, scim.UserType, er.id)
		if errors.Is(err, cache.ErrNotFound) {
			continue // deleted since the join
		}
		if err != nil {
			return err
		}
		if old != nil {
			ingest.RevertOverlay(u, old)
		}
		ov := &cache.Overlay{Source: p.s.Name(), Key: er.row.Key, Set: er.set, Under: ingest.Under(u, er.set)}
		wasInactive := !u.Active() || deactivates(old)
		ingest.ApplySet(u, er.set)
		if len(er.set) == 0 {
			ov = nil
		}
		if deactivates(old) && wasInactive && u.Active() {
			// The row no longer deactivates the user: a reactivation, decided at the end of
			// the pass against the threshold (a bad export must not re-enable leavers).
			p.reactivations = append(p.reactivations, reactivation{u: u, ov: ov, old: old})
			p.noteQueued(er.id)
			continue
		}
		aside, err := p.core.Queue(ctx, u)
		if err != nil {
			return err
		}
		p.noteQueued(er.id)
		if aside {
			p.aside[er.id] = asideOverlays{applied: ov, held: heldOverlay(ov, old)}
			continue
		}
		if err := p.put(ctx, u, ov); err != nil {
			return err
		}
	}
	return nil
}

// heldOverlay is the overlay stored for a user whose deactivation by ov is held: ov without
// its "active" (the old overlay's, if it had one), so that no later directory pass of the user
// applies the held deactivation through the overlay.
func heldOverlay(ov, old *cache.Overlay) *cache.Overlay {
	if ov == nil {
		return nil
	}
	h := &cache.Overlay{Source: ov.Source, Key: ov.Key, Set: maps.Clone(ov.Set), Under: maps.Clone(ov.Under)}
	delete(h.Set, "active")
	if a, ok := activeSet(old); ok {
		h.Set["active"] = a
	} else {
		delete(h.Under, "active")
	}
	if len(h.Set) == 0 {
		return nil
	}
	return h
}

// decideAside stores, for each user whose deactivation Queue set aside, the overlay that
// matches what Last decided: the deactivation applied (the user is upserted inactive) or held.
func (p *pass) decideAside(b *cache.Batch) {
	if len(p.aside) == 0 {
		return
	}
	if b.Overlays == nil {
		b.Overlays = map[string]*cache.Overlay{}
	}
	inactive := map[string]bool{}
	for _, r := range b.Upserts {
		if _, ok := p.aside[r.ID]; ok && r.Type == scim.UserType {
			inactive[r.ID] = !r.Active()
		}
	}
	for id, a := range p.aside {
		if inactive[id] {
			b.Overlays[id] = a.applied
		} else {
			b.Overlays[id] = a.held
		}
	}
}

// revertGone gives the users of ids, whose overlays of this source no row joins any more, the
// directory's values back and deletes the overlays.
func (p *pass) revertGone(ctx context.Context, ids []string) error {
	stored, err := p.overlays(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		o := stored[id]
		if o == nil {
			continue
		}
		u, err := p.s.store.Get(ctx, scim.UserType, id)
		if errors.Is(err, cache.ErrNotFound) {
			continue // the overlay went with its user
		}
		if err != nil {
			return err
		}
		ingest.RevertOverlay(u, o)
		var keep *cache.Overlay
		if deactivates(o) {
			// A leaver whose row left the export stays deprovisioned: the deactivation is
			// kept (only a row that says the user is active again reactivates, under the
			// threshold); the other values go back to the directory's.
			keep = &cache.Overlay{Source: o.Source, Key: o.Key, Set: map[string]any{"active": false}}
			if v, ok := o.Under["active"]; ok {
				keep.Under = map[string]any{"active": v}
			}
			ingest.ApplySet(u, keep.Set)
		}
		aside, err := p.core.Queue(ctx, u)
		if err != nil {
			return err
		}
		p.noteQueued(id)
		if aside {
			// Only the directory's own "active": false comes back inactive: a deactivation
			// like any other, decided by Last; the overlay goes either way.
			p.aside[id] = asideOverlays{}
			continue
		}
		if err := p.put(ctx, u, keep); err != nil {
			return err
		}
	}
	return nil
}

// put queues u with its overlay (nil: delete it), writing a full chunk.
func (p *pass) put(ctx context.Context, u *scim.Resource, ov *cache.Overlay) error {
	p.batch = append(p.batch, u)
	p.ovBatch[u.ID] = ov
	if len(p.batch) < chunk {
		return nil
	}
	err := p.apply(ctx, cache.Batch{Source: p.s.Name(), Pass: p.id, Upserts: p.batch, Overlays: p.ovBatch})
	p.batch, p.ovBatch = p.batch[:0], map[string]*cache.Overlay{}
	return err
}

func (p *pass) warn(w string) {
	p.s.o.Log.Warn(w)
	if len(p.sum.Warnings) < maxChanges {
		p.sum.Warnings = append(p.sum.Warnings, w)
	}
}

// reactivation is a user a row makes active again, with its new overlay and its old one.
type reactivation struct {
	u       *scim.Resource
	ov, old *cache.Overlay
}

// deactivates reports whether an overlay (nil: none) sets active to false.
func deactivates(o *cache.Overlay) bool {
	a, ok := activeSet(o)
	return ok && a == false
}

// decideReactivations applies the pass's reactivations when they are within the deletion
// threshold (counted like deactivations: users of the cache); above it, every one of them is
// refused: the users keep the overlay's deactivation (their other values change), and a
// warning says why. A truncated or wrong export must not re-enable leavers in every app.
func (p *pass) decideReactivations(ctx context.Context) error {
	n := len(p.reactivations)
	if n == 0 {
		return nil
	}
	total, err := p.s.store.Count(ctx, scim.UserType)
	if err != nil {
		return err
	}
	refuse := p.s.th.Over(n, total)
	if refuse {
		p.sum.RefusedReactivations = n
		p.warn(fmt.Sprintf("%d users would be active again (their rows no longer deactivate them), more than [safety] allows in one pass (max_deletes %d, max_delete_percent %g): all are kept inactive; check the export, or raise the limits for one pass",
			n, p.s.th.MaxDeletes, p.s.th.MaxDeletePercent))
	} else {
		p.sum.Reactivations = n
	}
	for _, r := range p.reactivations {
		ov := r.ov
		if refuse {
			if ov == nil {
				ov = &cache.Overlay{Source: p.s.Name(), Key: r.old.Key, Set: map[string]any{}}
			} else {
				ov = &cache.Overlay{Source: ov.Source, Key: ov.Key, Set: maps.Clone(ov.Set), Under: maps.Clone(ov.Under)}
			}
			if v, ok := r.old.Under["active"]; ok {
				if ov.Under == nil {
					ov.Under = map[string]any{}
				}
				ov.Under["active"] = v
			}
			ov.Set["active"] = false
			ingest.ApplySet(r.u, map[string]any{"active": false})
		}
		if _, err := p.core.Queue(ctx, r.u); err != nil {
			return err
		}
		if err := p.put(ctx, r.u, ov); err != nil {
			return err
		}
	}
	p.reactivations = nil
	return nil
}

// activeSet returns the "active" an overlay (nil: none) sets, if it sets one.
func activeSet(o *cache.Overlay) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.Set["active"]
	return v, ok
}

// sameSet reports whether two overlays set the same values.
func sameSet(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
