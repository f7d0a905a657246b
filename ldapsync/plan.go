package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
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
func Plan(ctx context.Context, cfg Config, safety SafetyConfig, store Store, full bool, opts Options) (*PlanReport, error) {
	dry := &dryStore{Store: store, overlay: map[string]*scim.Resource{}, gone: map[string]bool{}}
	s, err := New(cfg, safety, dry, opts)
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
	r, ok, gone := d.overlaid(id)
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

// overlaid returns what this plan would have written to id so far: the resource, or gone.
func (d *dryStore) overlaid(id string) (r *scim.Resource, ok, gone bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok = d.overlay[id]
	return r, ok, d.gone[id]
}

func (d *dryStore) GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error) {
	out := make([]*scim.Resource, 0, len(ids))
	for _, id := range ids {
		r, ok, gone := d.overlaid(id)
		switch {
		case gone:
			continue
		case ok && r.Type == typ:
			c := *r
			c.Attributes = maps.Clone(r.Attributes)
			if !withMembers {
				c.Members = nil
			}
			out = append(out, &c)
			continue
		}
		rs, err := d.Store.GetMany(ctx, typ, []string{id}, withMembers)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func (d *dryStore) Ref(ctx context.Context, id string) (cache.Ref, error) {
	r, ok, gone := d.overlaid(id)
	switch {
	case gone:
		return cache.Ref{}, cache.ErrNotFound
	case ok:
		return cache.Ref{ID: id, Type: r.Type, Display: displayOf(r)}, nil
	}
	return d.Store.Ref(ctx, id)
}

// MemberCount counts what ForEachMember streams for a group this plan has written or deleted.
func (d *dryStore) MemberCount(ctx context.Context, gid string) (int, error) {
	_, ok, gone := d.overlaid(gid)
	if !ok && !gone {
		return d.Store.MemberCount(ctx, gid)
	}
	if gone {
		return 0, cache.ErrNotFound
	}
	n := 0
	err := d.ForEachMember(ctx, gid, "", func(scim.Member) error { n++; return nil })
	return n, err
}

func (d *dryStore) ForEachMember(ctx context.Context, gid, after string, fn func(scim.Member) error) error {
	r, ok, gone := d.overlaid(gid)
	switch {
	case gone:
		return nil
	case ok:
		for _, m := range ingest.SortedByID(r.Members) {
			if m.Value > after {
				if err := fn(m); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return d.Store.ForEachMember(ctx, gid, after, fn)
}

// IsMember answers from what this plan has written, as storedMember does.
func (d *dryStore) IsMember(ctx context.Context, gid, id string) (bool, error) {
	_, ok, err := d.storedMember(ctx, gid, id)
	return ok, err
}

// current returns the resource typ/id as this plan would have left it so far, without its
// members, and a function that streams those in id order; nil when there is none.
func (d *dryStore) current(ctx context.Context, typ scim.ResourceType, id string) (*scim.Resource, func(func(scim.Member) error) error, error) {
	rs, err := d.GetMany(ctx, typ, []string{id}, false)
	if err != nil || len(rs) == 0 {
		return nil, nil, err
	}
	members := func(fn func(scim.Member) error) error { return d.ForEachMember(ctx, id, "", fn) }
	return rs[0], members, nil
}

// storedMember returns member id of group gid as this plan would have left it, reading only
// the members whose ids sort between id without its last character and id.
func (d *dryStore) storedMember(ctx context.Context, gid, id string) (scim.Member, bool, error) {
	var found scim.Member
	ok := false
	err := d.ForEachMember(ctx, gid, id[:len(id)-1], func(m scim.Member) error {
		if m.Value >= id {
			found, ok = m, m.Value == id
			return errStopMembers
		}
		return nil
	})
	if errors.Is(err, errStopMembers) {
		err = nil
	}
	return found, ok, err
}

var errStopMembers = errors.New("stop")

func (d *dryStore) Apply(ctx context.Context, b cache.Batch) (cache.Result, error) {
	var res cache.Result
	for _, r := range b.Upserts {
		old, members, err := d.current(ctx, r.Type, r.ID)
		if err != nil {
			return res, err
		}
		e := PlanEntry{Type: r.Type, ID: r.ID, Name: displayOf(r), DN: r.DN}
		switch {
		case old == nil:
			e.Action, e.Why = PlanCreate, "new in the directory"
			res.Created++
		default:
			if b.KeepMembers[r.ID] {
				members = nil // the batch's member edits say what changes
			}
			if e.Diff, err = diffResources(old, r, members); err != nil {
				return res, err
			}
			if len(e.Diff) == 0 {
				res.Unchanged++
				continue
			}
			e.Action, e.Why = PlanUpdate, "changed in the directory"
			res.Updated++
			if b.KeepMembers[r.ID] {
				// Not overlaid: its members stay the stored ones, which the edits change.
				d.record(e, nil)
				continue
			}
			if old.Active() && !r.Active() {
				e.Action, e.Why = PlanDeactivate, "disabled in the directory"
				res.Updated--
				res.Deactivated++
			}
		}
		d.record(e, r)
	}
	for _, ed := range b.MemberEdits {
		found, changed, err := d.edit(ctx, ed)
		switch {
		case err != nil:
			return res, err
		case changed:
			res.Updated++
		case found:
			res.Unchanged++ // as a virtual group restated unchanged was before edits
		}
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
			if slices.ContainsFunc(held, func(o cache.Hold) bool { return o.ID == h.ID && o.Kind == h.Kind }) {
				continue
			}
			d.record(PlanEntry{Action: PlanHold, Type: h.Type, ID: h.ID, Name: h.Name, DN: h.DN, Why: h.Reason}, nil)
		}
	}
	return res, ctx.Err()
}

// edit records what a member edit would change, as the cache applies it (removals first, a set
// of a member removed by the same edit ignored), reading only the members it names.
func (d *dryStore) edit(ctx context.Context, ed cache.MemberEdit) (found, changed bool, err error) {
	g, _, err := d.current(ctx, scim.GroupType, ed.Group)
	if err != nil || g == nil {
		return false, false, err // an edit of a missing group is ignored
	}
	removed, added, relabeled := []string{}, []string{}, []string(nil)
	gone := map[string]bool{}
	set := map[string]scim.Member{}
	for _, id := range ed.Remove {
		if _, ok, err := d.storedMember(ctx, ed.Group, id); err != nil {
			return true, false, err
		} else if ok && !gone[id] {
			gone[id] = true
			removed = append(removed, id)
		}
	}
	for _, m := range ingest.SortedByID(ed.Set) {
		if gone[m.Value] {
			continue
		}
		old, ok, err := d.storedMember(ctx, ed.Group, m.Value)
		switch {
		case err != nil:
			return true, false, err
		case !ok:
			added = append(added, m.Value)
		case old != m:
			relabeled = append(relabeled, m.Value)
		}
		set[m.Value] = m
	}
	slices.Sort(removed)
	e := PlanEntry{Action: PlanUpdate, Type: scim.GroupType, ID: ed.Group, Name: displayOf(g), DN: g.DN, Why: "changed in the directory"}
	if len(removed)+len(added) > 0 {
		e.Diff = append(e.Diff, AttrDiff{"members", removed, added})
	}
	if len(relabeled) > 0 {
		e.Diff = append(e.Diff, AttrDiff{"members.display", nil, relabeled})
	}
	if len(e.Diff) == 0 {
		return true, false, nil
	}
	// A group this plan already holds in full stays in full: later reads see the edit.
	var next *scim.Resource
	if r, ok, _ := d.overlaid(ed.Group); ok {
		c := *r
		c.Members = nil
		for _, m := range r.Members {
			if _, reset := set[m.Value]; !gone[m.Value] && !reset {
				c.Members = append(c.Members, m)
			}
		}
		for _, m := range set {
			c.Members = append(c.Members, m)
		}
		slices.SortFunc(c.Members, func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
		next = &c
	}
	d.record(e, next)
	return true, true, nil
}

func (d *dryStore) getAny(ctx context.Context, id string) (*scim.Resource, error) {
	ref, err := d.Ref(ctx, id)
	if err != nil {
		return nil, err
	}
	rs, err := d.GetMany(ctx, ref.Type, []string{id}, false)
	if err == nil && len(rs) == 0 {
		err = cache.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return rs[0], nil
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

// diffResources lists the top-level attributes that differ between two versions. oldMembers
// streams old's members in id order: they are compared with cur's in one merge, so a big
// group is never held in memory twice.
func diffResources(old, cur *scim.Resource, oldMembers func(func(scim.Member) error) error) ([]AttrDiff, error) {
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
	if cur.Type != scim.GroupType || oldMembers == nil {
		return out, nil
	}
	removed, added, relabeled, err := memberDiff(oldMembers, cur.Members)
	if err != nil {
		return nil, err
	}
	if len(removed)+len(added) > 0 {
		out = append(out, AttrDiff{"members", removed, added})
	}
	if len(relabeled) > 0 {
		out = append(out, AttrDiff{"members.display", nil, relabeled})
	}
	return out, nil
}

// memberDiff compares the members old streams in id order with cur, in one merge: the ids
// removed and added, and the ids in both whose type or display changed (as the cache's audit
// records them), each in id order.
func memberDiff(old func(func(scim.Member) error) error, cur []scim.Member) (removed, added, relabeled []string, err error) {
	removed, added = []string{}, []string{}
	cur = ingest.SortedByID(cur)
	i := 0
	if old != nil {
		err = old(func(m scim.Member) error {
			for ; i < len(cur) && cur[i].Value < m.Value; i++ {
				added = append(added, cur[i].Value)
			}
			if i < len(cur) && cur[i].Value == m.Value {
				if cur[i] != m {
					relabeled = append(relabeled, m.Value)
				}
				i++
				return nil
			}
			removed = append(removed, m.Value)
			return nil
		})
	}
	for ; i < len(cur); i++ {
		added = append(added, cur[i].Value)
	}
	return removed, added, relabeled, err
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
