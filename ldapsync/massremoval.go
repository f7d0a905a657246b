package ldapsync

import (
	"context"
	"fmt"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Mass membership removals are held the same way as deletions (invariant 5, docs/architecture.md). A pass
// that would remove more than ingest.MassRemovalFloor members of a group, and more than
// max_delete_percent of the members the cache has it list, keeps those members in the group
// (nothing is journaled or pushed for them), applies everything else, and records a members
// hold that `ldapscim deletes approve` applies as a member edit of just those ids. max_deletes
// does not apply: it counts resources of a type, not members of one group. Members that leave
// because the pass deletes them are not counted (their deletion is counted, and held, as a
// deletion), nor are held users, which keepHeldMembers has already added back.

// holdMassRemoval runs once group r is resolved (r.Members sorted by id, one per id): if the
// members the cache has r list and r no longer does cross the threshold, it adds them back to
// r and records a members hold. It reads the stored members only when even removing all of
// them could cross it, streaming them in id order against r.Members.
func (p *pass) holdMassRemoval(ctx context.Context, r *scim.Resource) error {
	delete(p.memberHolds, r.ID)
	total, err := p.s.store.MemberCount(ctx, r.ID)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !p.s.threshold().MassRemoval(total, total) {
		return nil
	}
	var removed []scim.Member
	i := 0
	err = p.s.store.ForEachMember(ctx, r.ID, "", func(m scim.Member) error {
		for i < len(r.Members) && r.Members[i].Value < m.Value {
			i++
		}
		if i < len(r.Members) && r.Members[i].Value == m.Value {
			return nil
		}
		if !p.leaving(m) {
			removed = append(removed, m)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !p.s.threshold().MassRemoval(len(removed), total) {
		return nil
	}
	ingest.AddMembers(r, removed)
	ids := make([]string, len(removed))
	for i, m := range removed {
		ids[i] = m.Value
	}
	p.recordMemberHold(r.ID, r.DN, displayOf(r), ids, total)
	return nil
}

// recordMemberHold records this pass's hold of the removal of members ids (sorted) from group
// gid, which has total members in the cache.
func (p *pass) recordMemberHold(gid, gdn, name string, ids []string, total int) {
	p.s.log.Error("holding a mass removal of group members until an admin approves it (ldapscim deletes list / approve)",
		"pass", p.id, "group", gid, "name", name, "held", len(ids), "members", total)
	p.memberHolds[gid] = cache.Hold{ID: gid, Type: scim.GroupType, DN: gdn, Name: name, Pass: p.id,
		Kind: cache.HoldMembers, Members: ids, HeldAt: time.Now().UTC(),
		Reason: fmt.Sprintf("%s: pass would remove %d of %d members (limit: %d or %g%%)",
			ingest.ReasonMembers, len(ids), total, ingest.MassRemovalFloor, p.s.safety.MaxDeletePercent)}
}

// leaving reports whether stored member m leaves its groups because this pass deletes it.
func (p *pass) leaving(m scim.Member) bool {
	if _, del := p.deletes[m.Value]; del {
		return true
	}
	if !p.full {
		return false
	}
	// A full pass reads every user before any group: a user it did not read is deleted (or
	// held, and then added back already). A group not read is deleted unless read later.
	if m.Type == scim.UserType {
		return p.usersScanned && !p.wasRead(m.Value)
	}
	return !p.wasRead(m.Value)
}

// memberHoldList returns the members holds of this pass.
func (p *pass) memberHoldList() []cache.Hold {
	out := make([]cache.Hold, 0, len(p.memberHolds))
	for _, h := range p.memberHolds {
		out = append(out, h)
	}
	return out
}
