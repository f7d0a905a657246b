package ldapsync

import (
	"context"

	"github.com/ldapscim/ldapscim/scim"
)

// A held deletion changes nothing else about the resource (invariant 5, docs/architecture.md): its group
// memberships and its reports' manager stay until it is approved (ingest.HeldRefs). A full pass
// reads every user before any group, so once the users are read it knows which cached users it
// did not see and whether their deletion will be held. Groups resolved from then on keep the
// held users the cache has them list (a wrong users base DN leaves their member DNs naming
// entries the pass did not read), and users whose manager DN no longer resolves keep a held
// manager.

// decideUserHolds runs in a full pass once every user is read: if the users the pass did not
// see will be held, it records them, the groups that list them and the reports that name them
// as manager (ingest.HeldRefs.Load). Its cost is O(users) ids plus O(held memberships and reports).
func (p *pass) decideUserHolds(ctx context.Context) error {
	var unread []string
	err := p.s.store.ForEachOwned(ctx, scim.UserType, "", func(id string) error {
		if !p.wasRead(id) {
			unread = append(unread, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// findDeletions reuses the list: the ids are scanned once per pass.
	p.unreadUsers, p.usersScanned = unread, true
	return p.core.Held.Load(ctx, p.s.store, p.s.threshold(), p.core.Owner, unread, p.core.Dels.Deactivations())
}
