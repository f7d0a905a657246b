package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Plan actions.
const (
	PlanCreate     = "create"
	PlanUpdate     = "update"
	PlanDeactivate = "deactivate"
	PlanDelete     = "delete"
	PlanHold       = "hold"
)

// PlanEntry is one change a pass would make to the cache.
type PlanEntry struct {
	Action string            `json:"action"`
	Type   scim.ResourceType `json:"type"`
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	DN     string            `json:"dn,omitempty"`
	Why    string            `json:"why"`
	Diff   []AttrDiff        `json:"diff,omitempty"`
}

// AttrDiff is one top-level attribute a pass would change: its old and new value (nil: absent).
// For members, Old lists the member ids removed and New those added.
type AttrDiff struct {
	Attr string `json:"attr"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// PlanReport is what a dry-run pass would do.
type PlanReport struct {
	Summary Summary     `json:"summary"`
	Changes []PlanEntry `json:"changes"`
}

// Plan runs the pass that SyncOnce (or, with full, SyncFull) would run — reading the directory
// as that pass would and comparing with the cache — but writes nothing: no resource, journal
// record, watermark or hold. It reports every change the pass would make and why.
func Plan(ctx context.Context, cfg Config, safety SafetyConfig, store Store, log *slog.Logger, full bool, opts ...Option) (*PlanReport, error) {
	dry := &dryStore{Store: store, overlay: map[string]*scim.Resource{}, gone: map[string]bool{}}
	s, err := New(cfg, safety, dry, log, opts...)
	if err != nil {
		return nil, err
	}
	run := s.SyncOnce
	if full {
		run = s.SyncFull
	}
	sum, err := run(ctx)
	dry.mu.Lock()
	defer dry.mu.Unlock()
	slices.SortStableFunc(dry.changes, func(a, b PlanEntry) int {
		if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
			return -c // users first
		}
		return strings.Compare(a.Name, b.Name)
	})
	return &PlanReport{Summary: sum, Changes: dry.changes}, err
}

// dryStore is a Store that records what Apply would do instead of doing it. Reads see the
// cache as the pass would have changed it so far.
type dryStore struct {
	Store
	mu      sync.Mutex
	overlay map[string]*scim.Resource // id → resource as this plan would have written it
	gone    map[string]bool           // ids this plan would have deleted
	changes []PlanEntry
}

func (d *dryStore) Get(ctx context.Context, typ scim.ResourceType, id string) (*scim.Resource, error) {
	d.mu.Lock()
	r, ok := d.overlay[id]
	gone := d.gone[id]
	d.mu.Unlock()
	switch {
	case gone:
		return nil, cache.ErrNotFound
	case ok && r.Type == typ:
		c := *r
		c.Attributes = maps.Clone(r.Attributes)
		return &c, nil
	}
	return d.Store.Get(ctx, typ, id)
}

func (d *dryStore) Apply(ctx context.Context, b cache.Batch) (cache.Result, error) {
	var res cache.Result
	for _, r := range b.Upserts {
		old, err := d.Get(ctx, r.Type, r.ID)
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return res, err
		}
		e := PlanEntry{Type: r.Type, ID: r.ID, Name: displayOf(r), DN: r.DN}
		switch {
		case old == nil:
			e.Action, e.Why = PlanCreate, "new in the directory"
			res.Created++
		default:
			e.Diff = diffResources(old, r)
			if len(e.Diff) == 0 {
				res.Unchanged++
				continue
			}
			e.Action, e.Why = PlanUpdate, "changed in the directory"
			res.Updated++
			if old.Active() && !r.Active() {
				e.Action, e.Why = PlanDeactivate, "disabled in the directory"
				res.Updated--
				res.Deactivated++
			}
		}
		d.record(e, r)
	}
	for _, id := range b.Deletes {
		r, err := d.getAny(ctx, id)
		if err != nil {
			continue // not cached: nothing to delete
		}
		d.record(PlanEntry{Action: PlanDelete, Type: r.Type, ID: id, Name: displayOf(r), DN: r.DN,
			Why: "no longer in the directory"}, nil)
		res.Deleted++
	}
	if b.Holds != nil {
		held, err := d.Store.Holds(ctx)
		if err != nil {
			return res, err
		}
		for _, h := range *b.Holds {
			if slices.ContainsFunc(held, func(o cache.Hold) bool { return o.ID == h.ID }) {
				continue
			}
			d.record(PlanEntry{Action: PlanHold, Type: h.Type, ID: h.ID, Name: h.Name, DN: h.DN, Why: h.Reason}, nil)
		}
	}
	return res, ctx.Err()
}

func (d *dryStore) getAny(ctx context.Context, id string) (*scim.Resource, error) {
	r, err := d.Get(ctx, scim.UserType, id)
	if errors.Is(err, cache.ErrNotFound) {
		r, err = d.Get(ctx, scim.GroupType, id)
	}
	return r, err
}

func (d *dryStore) record(e PlanEntry, r *scim.Resource) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r != nil {
		d.overlay[r.ID] = r
	} else if e.Action == PlanDelete {
		d.gone[e.ID] = true
	}
	d.changes = append(d.changes, e)
}

// diffResources lists the top-level attributes that differ between two versions.
func diffResources(old, cur *scim.Resource) []AttrDiff {
	var out []AttrDiff
	if old.ExternalID != cur.ExternalID {
		out = append(out, AttrDiff{"externalId", nilIfEmpty(old.ExternalID), nilIfEmpty(cur.ExternalID)})
	}
	if old.DN != cur.DN {
		out = append(out, AttrDiff{"dn", old.DN, cur.DN})
	}
	keys := slices.Sorted(maps.Keys(old.Attributes))
	for k := range cur.Attributes {
		if _, ok := old.Attributes[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		a, b := old.Attributes[k], cur.Attributes[k]
		if !sameJSON(a, b) {
			out = append(out, AttrDiff{k, a, b})
		}
	}
	if removed, added := memberDiff(old.Members, cur.Members); len(removed)+len(added) > 0 {
		out = append(out, AttrDiff{"members", removed, added})
	}
	if ids := memberRelabels(old.Members, cur.Members); len(ids) > 0 {
		out = append(out, AttrDiff{"members.display", nil, ids})
	}
	return out
}

// memberRelabels returns the ids of the members in both lists whose type or display changed,
// as the cache's audit records them.
func memberRelabels(old, cur []scim.Member) []string {
	o := make(map[string]scim.Member, len(old))
	for _, m := range old {
		o[m.Value] = m
	}
	var ids []string
	for _, m := range cur {
		if p, ok := o[m.Value]; ok && p != m {
			ids = append(ids, m.Value)
		}
	}
	return ids
}

func memberDiff(old, cur []scim.Member) (removed, added []string) {
	o := map[string]bool{}
	for _, m := range old {
		o[m.Value] = true
	}
	for _, m := range cur {
		if !o[m.Value] {
			added = append(added, m.Value)
		}
		delete(o, m.Value)
	}
	removed = append([]string{}, slices.Sorted(maps.Keys(o))...)
	if added == nil {
		added = []string{}
	}
	return removed, added
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
