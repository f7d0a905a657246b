package ldapsync

import (
	"context"

	"github.com/ldapscim/ldapscim/scim"
)

// Mass membership removals are held like deletions (invariant 5, docs/architecture.md); the
// rule and the holds are ingest.MemberHolds. What is LDAP's here is which stored members leave
// because the pass deletes them: those are not counted against the group.

// holdMassRemoval runs once group r is resolved: a mass removal of the members the cache has
// it list is held (ingest.MemberHolds.Check).
func (p *pass) holdMassRemoval(ctx context.Context, r *scim.Resource) error {
	return p.core.MemberHolds.Check(ctx, p.s.store, r, p.leaving)
}

// leaving reports whether stored member m leaves its groups because this pass deletes it.
func (p *pass) leaving(m scim.Member) bool {
	if p.core.Dels.Marked(m.Value) {
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
