package ldapsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// ApproveHolds releases held deletions and deactivations (DESIGN invariant 5): ids nil means
// every held change. It needs no directory connection. It returns what was applied.
func ApproveHolds(ctx context.Context, store Store, ids []string) (cache.Result, error) {
	holds, err := store.Holds(ctx)
	if err != nil {
		return cache.Result{}, err
	}
	pass := "approve-" + time.Now().UTC().Format("20060102T150405.000Z")
	var deletes []string
	var deact []*scim.Resource
	var unknown []string
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, h := range holds {
		if ids != nil && !want[h.ID] {
			continue
		}
		delete(want, h.ID)
		if strings.HasPrefix(h.Reason, holdDeactivate) {
			r, err := store.Get(ctx, h.Type, h.ID)
			if err != nil {
				return cache.Result{}, fmt.Errorf("held deactivation of %s: %w", h.ID, err)
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
		return cache.Result{}, fmt.Errorf("not held: %s", strings.Join(unknown, ", "))
	}
	remaining := slices.DeleteFunc(slices.Clone(holds), func(h cache.Hold) bool {
		return slices.Contains(deletes, h.ID) || slices.ContainsFunc(deact, func(r *scim.Resource) bool { return r.ID == h.ID })
	})
	edits := memberEdits{}
	if err := pruneMembers(ctx, store, deact, deletes, edits); err != nil {
		return cache.Result{}, err
	}
	return store.Apply(ctx, cache.Batch{Source: Source, Pass: pass, Upserts: deact, MemberEdits: edits.list(), Deletes: deletes, Holds: &remaining})
}
