package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Deletions tracks, over one pass, the cached resources the pass would delete and the users it
// would deactivate. A source marks deletions from an explicit signal or a complete read only
// (invariant 4, docs/architecture.md); Decide then applies the deletion threshold to them
// (invariant 5). Use one per pass, from one goroutine.
type Deletions struct {
	ids   map[string]scim.ResourceType // ids this pass would delete
	deact []*scim.Resource             // users this pass would deactivate
}

// NewDeletions returns an empty tracker.
func NewDeletions() *Deletions {
	return &Deletions{ids: map[string]scim.ResourceType{}}
}

// Mark records that the pass would delete resource id of type t.
func (d *Deletions) Mark(id string, t scim.ResourceType) { d.ids[id] = t }

// Unmark forgets a deletion: the pass has read the resource again.
func (d *Deletions) Unmark(id string) { delete(d.ids, id) }

// Marked reports whether the pass would delete id.
func (d *Deletions) Marked(id string) bool {
	_, ok := d.ids[id]
	return ok
}

// Forget drops every deletion, keeping the deactivations: a partial read deletes nothing
// (invariant 4) but applies what it read.
func (d *Deletions) Forget() { d.ids = map[string]scim.ResourceType{} }

// Deactivate records that the pass would deactivate user r (stored active, now inactive): a
// deactivation counts against the threshold like a deletion.
func (d *Deletions) Deactivate(r *scim.Resource) { d.deact = append(d.deact, r) }

// Deactivations returns how many users the pass would deactivate.
func (d *Deletions) Deactivations() int { return len(d.deact) }

// IDs returns the ids of type t the pass would delete, sorted.
func (d *Deletions) IDs(t scim.ResourceType) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(d.ids)) {
		if d.ids[id] == t {
			out = append(out, id)
		}
	}
	return out
}

// Decision is what the deletion threshold made of a pass's deletions and deactivations.
type Decision struct {
	// Held says, per type, whether its deletions (and for users, deactivations) are held.
	Held map[scim.ResourceType]bool
	// Holds are the new holds of deletions and deactivations.
	Holds []cache.Hold
	// HeldCount is how many deletions and deactivations are held.
	HeldCount int
	// Upserts are the deactivated users: inactive, or, when held, kept active with every
	// other change of theirs applied.
	Upserts []*scim.Resource
	// KeptActive names the users of Upserts whose deactivation is held: the pass must not
	// store their source records, so that the next full pass sees the deactivation again.
	KeptActive []string
	// Deletes are the ids to delete now, sorted.
	Deletes []string
}

// Decide applies the deletion threshold th (invariant 5, docs/architecture.md): users and groups
// are counted apart against what the cache holds of each that owner owns (Pass.Owner; "" the
// resources no source owns), and every deletion (and for users,
// deactivation) of a type that crosses it is held. holdUsers holds the users' even below the
// threshold (HeldRefs decided it earlier in the pass). pass names the holds; log gets one
// error line per held type, since an admin must act.
func (d *Deletions) Decide(ctx context.Context, store Store, th Threshold, pass, owner string, holdUsers bool, log *slog.Logger) (Decision, error) {
	totals := map[scim.ResourceType]int{}
	counts := map[scim.ResourceType]int{scim.UserType: len(d.deact)}
	for _, t := range d.ids {
		counts[t]++
	}
	for _, t := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		if counts[t] == 0 {
			continue // nothing to weigh: no need to count
		}
		n, err := store.CountOwned(ctx, t, owner)
		if err != nil {
			return Decision{}, err
		}
		totals[t] = n
	}
	dec := Decision{Held: map[scim.ResourceType]bool{
		scim.UserType:  th.Over(counts[scim.UserType], totals[scim.UserType]) || holdUsers,
		scim.GroupType: th.Over(counts[scim.GroupType], totals[scim.GroupType]),
	}}
	why := func(t scim.ResourceType) string {
		return fmt.Sprintf("pass would delete or deactivate %d of %d %ss (limit: %d or %g%%)",
			counts[t], totals[t], strings.ToLower(string(t)), th.MaxDeletes, th.MaxDeletePercent)
	}
	now := time.Now().UTC()
	for _, t := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		if !dec.Held[t] || counts[t] == 0 {
			continue
		}
		log.Error("holding deletions until an admin approves them (ldapscim deletes list / approve)",
			"pass", pass, "type", t, "held", counts[t], "total", totals[t])
		for _, id := range d.IDs(t) {
			h := cache.Hold{ID: id, Type: t, Pass: pass, Reason: ReasonDelete + ": " + why(t), HeldAt: now}
			if rs, err := store.GetMany(ctx, t, []string{id}, false); err != nil {
				return Decision{}, err
			} else if len(rs) == 1 {
				h.DN, h.Name = rs[0].DN, DisplayOf(rs[0])
			}
			dec.Holds = append(dec.Holds, h)
		}
		dec.HeldCount += counts[t]
	}
	if dec.Held[scim.UserType] {
		for _, r := range d.deact {
			dec.Holds = append(dec.Holds, cache.Hold{ID: r.ID, Type: r.Type, DN: r.DN, Name: DisplayOf(r), Pass: pass,
				Reason: ReasonDeactivate + ": " + why(scim.UserType), HeldAt: now})
			// Apply every other change of the user, but keep it active until approved.
			r.Attributes["active"] = true
			dec.KeptActive = append(dec.KeptActive, r.ID)
		}
	}
	dec.Upserts = d.deact
	for id, t := range d.ids {
		if !dec.Held[t] {
			dec.Deletes = append(dec.Deletes, id)
		}
	}
	slices.Sort(dec.Deletes)
	return dec, nil
}

// KeptHolds returns the stored holds old that a pass which does not replace the hold set (a
// delta pass) keeps: those of resources it has neither read again nor would delete.
func (d *Deletions) KeptHolds(old []cache.Hold, read func(id string) bool) []cache.Hold {
	var out []cache.Hold
	for _, h := range old {
		if !read(h.ID) && !d.Marked(h.ID) {
			out = append(out, h)
		}
	}
	return out
}

// HoldSet returns what a pass's last batch stores as the hold set (cache.Batch.Holds): holds,
// sorted by id and kind, or nil, leaving the stored set alone, when the pass does not replace
// it and holds are the same as the stored old.
func HoldSet(holds, old []cache.Hold, replace bool) *[]cache.Hold {
	slices.SortFunc(holds, func(a, b cache.Hold) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	if !replace && slices.EqualFunc(holds, old, func(a, b cache.Hold) bool {
		return a.ID == b.ID && a.Kind == b.Kind && a.Reason == b.Reason && slices.Equal(a.Members, b.Members)
	}) {
		return nil
	}
	if holds == nil {
		holds = []cache.Hold{}
	}
	return &holds
}
