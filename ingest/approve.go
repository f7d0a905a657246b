package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// ErrNotHeld is ApproveHolds' error for ids that are not held; it applies nothing then.
var ErrNotHeld = errors.New("not held")

// ApproveHolds releases held deletions, deactivations and mass member removals (a member edit
// of just the held ids) (invariant 5, docs/architecture.md): ids nil means
// every held change. It needs no connection to any source: source names the batch in the
// journal and audit (the watermark key of the source that approves). It returns what was
// applied.
func ApproveHolds(ctx context.Context, store Store, source string, ids []string) (cache.Result, error) {
	holds, err := store.Holds(ctx)
	if err != nil {
		return cache.Result{}, err
	}
	pass := "approve-" + time.Now().UTC().Format("20060102T150405.000Z")
	var deletes []string
	var deact []*scim.Resource
	var unknown []string
	overlays := map[string]*cache.Overlay{}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	edits := Edits{}
	approved := map[int]bool{}
	for i, h := range holds {
		if ids != nil && !want[h.ID] {
			continue
		}
		delete(want, h.ID)
		approved[i] = true
		if IsMemberHold(h) {
			// A held mass removal: a member edit of just the held ids.
			for _, m := range h.Members {
				edits.Remove(h.ID, m)
			}
			continue
		}
		if strings.HasPrefix(h.Reason, ReasonDeactivate) {
			r, err := store.Get(ctx, h.Type, h.ID)
			if err != nil {
				return cache.Result{}, fmt.Errorf("held deactivation of %s: %w", h.ID, err)
			}
			// A deactivation an enriching source held (an end date in an HR file): its overlay
			// takes the deactivation too, so that the directory's next pass of the user keeps it.
			ovs, err := store.Overlays(ctx, []string{h.ID})
			if err != nil {
				return cache.Result{}, err
			}
			if o := ovs[h.ID]; o != nil && o.Source == h.Source {
				o.Set = maps.Clone(o.Set)
				o.Set["active"] = false
				o.Under = maps.Clone(o.Under)
				if o.Under == nil {
					o.Under = map[string]any{}
				}
				if v, ok := r.Attributes["active"]; ok {
					o.Under["active"] = v
				} else {
					delete(o.Under, "active")
				}
				overlays[h.ID] = o
			}
			r.Attributes["active"] = false
			deact = append(deact, r)
			continue
		}
		deletes = append(deletes, h.ID)
	}
	for id := range want {
		unknown = append(unknown, id)
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return cache.Result{}, fmt.Errorf("%w: %s", ErrNotHeld, strings.Join(unknown, ", "))
	}
	var remaining []cache.Hold
	for i, h := range holds {
		if !approved[i] {
			remaining = append(remaining, h)
		}
	}
	if remaining == nil {
		remaining = []cache.Hold{}
	}
	if err := PruneMembers(ctx, store, deact, deletes, edits); err != nil {
		return cache.Result{}, err
	}
	b := cache.Batch{Source: source, Pass: pass, Upserts: deact, Deletes: deletes, Holds: &remaining, Overlays: overlays}
	if err := dropHeldManagers(ctx, store, &b); err != nil {
		return cache.Result{}, err
	}
	b.MemberEdits = edits.List()
	return store.Apply(ctx, b)
}

// dropHeldManagers removes, from the reports of the users b deletes, the manager that a pass
// kept while the deletion was held (invariant 5, docs/architecture.md), and from their source records, so the
// next full pass does not see them as stale. Reports are found with the manager index.
func dropHeldManagers(ctx context.Context, store Store, b *cache.Batch) error {
	deleted := make(map[string]bool, len(b.Deletes))
	for _, id := range b.Deletes {
		deleted[id] = true
	}
	queued := make(map[string]*scim.Resource, len(b.Upserts))
	for _, r := range b.Upserts {
		queued[r.ID] = r
	}
	var ids []string
	managerOf := map[string]string{}
	for _, m := range b.Deletes {
		reports, err := store.Lookup(ctx, cache.IndexManager, m)
		if err != nil {
			return err
		}
		for _, id := range reports {
			if !deleted[id] {
				if _, seen := managerOf[id]; !seen {
					ids = append(ids, id)
				}
				managerOf[id] = m
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	srcs, err := store.SourceHashes(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		r, inBatch := queued[id], true
		if r == nil {
			inBatch = false
			var err error
			r, err = store.Get(ctx, scim.UserType, id)
			if errors.Is(err, cache.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
		}
		ext, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
		mgr, _ := ext["manager"].(map[string]any)
		if mgr == nil || mgr["value"] != managerOf[id] {
			continue
		}
		ext = maps.Clone(ext)
		delete(ext, "manager")
		if len(ext) == 0 {
			delete(r.Attributes, scim.SchemaEnterpriseUser)
		} else {
			r.Attributes[scim.SchemaEnterpriseUser] = ext
		}
		if !inBatch {
			queued[id] = r
			b.Upserts = append(b.Upserts, r)
		}
		if enc, ok := WithManager(srcs[id], cache.Ref{}); ok {
			if b.SourceHashes == nil {
				b.SourceHashes = map[string][]byte{}
			}
			b.SourceHashes[id] = enc
		}
	}
	return nil
}

// Reason prefixes of held changes.
const (
	ReasonDelete     = "delete"
	ReasonDeactivate = "deactivate"
	ReasonMembers    = "remove members"
)

// IsMemberHold reports whether h holds a removal of members.
func IsMemberHold(h cache.Hold) bool {
	return h.Kind == cache.HoldMembers
}
