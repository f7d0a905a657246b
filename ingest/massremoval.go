package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Mass membership removals are held the same way as deletions (invariant 5,
// docs/architecture.md). A pass that would remove more than MassRemovalFloor members of a group,
// and more than max_delete_percent of the members the cache has it list, keeps those members in
// the group (nothing is journaled or pushed for them), applies everything else, and records a
// members hold that `ldapscim deletes approve` applies as a member edit of just those ids.
// Members that leave because the pass deletes them are not counted (their deletion is counted,
// and held, as a deletion), nor are held users, which HeldRefs has already added back.

// MemberHolds are the members holds of one pass. Use NewMemberHolds; one goroutine.
type MemberHolds struct {
	th     Threshold
	pass   string
	log    *slog.Logger
	holds  map[string]cache.Hold // group id → its held mass member removal
	before map[string]bool       // groups with a members hold in the cache, loaded when needed
}

// NewMemberHolds returns the members holds of pass, against th; log gets an error line for
// each hold, since an admin must act.
func NewMemberHolds(th Threshold, pass string, log *slog.Logger) *MemberHolds {
	return &MemberHolds{th: th, pass: pass, log: log, holds: map[string]cache.Hold{}}
}

// Check runs once group r is resolved (r.Members sorted by id, one per id): if the members the
// cache has r list and r no longer does cross the threshold, it adds them back to r and holds
// their removal. leaving says which stored members leave because the pass deletes them. It
// reads the stored members only when even removing all of them could cross the threshold,
// streaming them in id order against r.Members.
func (mh *MemberHolds) Check(ctx context.Context, store Store, r *scim.Resource, leaving func(scim.Member) bool) error {
	mh.Drop(r.ID)
	total, err := store.MemberCount(ctx, r.ID)
	if errors.Is(err, cache.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !mh.th.MassRemoval(total, total) {
		return nil
	}
	var removed []scim.Member
	i := 0
	err = store.ForEachMember(ctx, r.ID, "", func(m scim.Member) error {
		for i < len(r.Members) && r.Members[i].Value < m.Value {
			i++
		}
		if i < len(r.Members) && r.Members[i].Value == m.Value {
			return nil
		}
		if !leaving(m) {
			removed = append(removed, m)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !mh.th.MassRemoval(len(removed), total) {
		return nil
	}
	AddMembers(r, removed)
	ids := make([]string, len(removed))
	for i, m := range removed {
		ids[i] = m.Value
	}
	mh.record(r.ID, r.DN, DisplayOf(r), ids, total)
	return nil
}

// CheckEdit is Check for a group changed by a member edit instead of a restated list: remove
// holds the ids the edit removes. Ids the pass deletes (deleting) are dropped from remove and
// left to the deletion and its hold; if the removal of the other ids the cache has the group
// list crosses the threshold, they are dropped from remove too, and held. name gives the
// group's display name, asked only for a hold.
func (mh *MemberHolds) CheckEdit(ctx context.Context, store Store, gid, gdn string, name func() string, remove map[string]bool, deleting func(id string) bool) error {
	mh.Drop(gid)
	var removed []string
	for id := range remove {
		if deleting(id) {
			delete(remove, id)
			continue
		}
		in, err := store.IsMember(ctx, gid, id)
		if err != nil {
			return err
		}
		if in {
			removed = append(removed, id)
		}
	}
	if len(removed) <= MassRemovalFloor {
		return nil
	}
	total, err := store.MemberCount(ctx, gid)
	if err != nil || !mh.th.MassRemoval(len(removed), total) {
		return err
	}
	slices.Sort(removed)
	for _, id := range removed {
		delete(remove, id)
	}
	mh.record(gid, gdn, name(), removed, total)
	return nil
}

// record holds the removal of members ids (sorted) from group gid, which has total members in
// the cache.
func (mh *MemberHolds) record(gid, gdn, name string, ids []string, total int) {
	mh.log.Error("holding a mass removal of group members until an admin approves it (ldapscim deletes list / approve)",
		"pass", mh.pass, "group", gid, "name", name, "held", len(ids), "members", total)
	mh.holds[gid] = cache.Hold{ID: gid, Type: scim.GroupType, DN: gdn, Name: name, Pass: mh.pass,
		Kind: cache.HoldMembers, Members: ids, HeldAt: time.Now().UTC(),
		Reason: fmt.Sprintf("%s: pass would remove %d of %d members (limit: %d or %g%%)",
			ReasonMembers, len(ids), total, MassRemovalFloor, mh.th.MaxDeletePercent)}
}

// Drop forgets this pass's hold of group gid's members (the group is checked again, or the
// pass skips it).
func (mh *MemberHolds) Drop(gid string) { delete(mh.holds, gid) }

// List returns the members holds of this pass.
func (mh *MemberHolds) List() []cache.Hold {
	out := make([]cache.Hold, 0, len(mh.holds))
	for _, h := range mh.holds {
		out = append(out, h)
	}
	return out
}

// HeldBefore reports whether the cache holds a mass removal of group gid's members (as the
// pass started: the stored holds are read once).
func (mh *MemberHolds) HeldBefore(ctx context.Context, store Store, gid string) (bool, error) {
	if mh.before == nil {
		hs, err := store.Holds(ctx)
		if err != nil {
			return false, err
		}
		mh.before = map[string]bool{}
		for _, h := range hs {
			if IsMemberHold(h) {
				mh.before[h.ID] = true
			}
		}
	}
	return mh.before[gid], nil
}
