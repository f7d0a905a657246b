package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Active Directory dialect: change tracking by USN (or DirSync), tombstones, range retrieval,
// the domain-scope control. The pass machinery (read → normalize → resolve → apply under the
// read-guard and the threshold) is shared with OpenLDAP; this file holds what differs.
//
// USNs are per DC: a USN watermark is only meaningful on the DC that issued it, and only while
// that DC's database is the one it was (invocationId changes on a restore from backup). So the
// watermark records both, and a delta pass against another DC or another invocationId becomes
// a full reconciliation.

// adMark is the Active Directory part of a watermark.
type adMark struct {
	DC           string `json:"dc"`           // dsServiceName of the DC the USN belongs to
	InvocationID string `json:"invocationId"` // of that DC's database
	USN          int64  `json:"usn"`          // highestCommittedUSN read before the pass's searches
	DirSync      []byte `json:"dirsync,omitempty"`
	DirSyncFlags int64  `json:"dirsyncFlags,omitempty"` // DirSyncObjectSecurity when the account needed it
}

// dcInfo is what the rootDSE and the DC's NTDS Settings object say.
type dcInfo struct {
	dc, invocationID, defaultNC string
	usn                         int64
}

// domainScope is the domain-scope control (1.2.840.113556.1.4.1339): a subtree search does not
// return referrals to other partitions (Configuration, DomainDnsZones, child domains).
var domainScope ldap.Control = ldap.NewControlString(ldap.ControlTypeMicrosoftDomainScope, false, "")

// searchControls are the extra controls of every subtree search of the directory.
func (s *Syncer) searchControls() []ldap.Control {
	if s.cfg.Dialect == DialectActiveDirectory {
		return []ldap.Control{domainScope}
	}
	return nil
}

// adAttributes adjusts the attribute lists for AD: no entryUUID or modifyTimestamp (the USN
// is the watermark, and whenChanged moves with logons), member asked for in ranges,
// accountExpires when expiry counts.
func (s *Syncer) adAttributes() {
	drop := func(list []string, names ...string) []string {
		out := list[:0:0]
		for _, a := range list {
			if !containsFold(names, a) {
				out = append(out, a)
			}
		}
		return out
	}
	s.uattrs = drop(s.uattrs, "entryUUID", "modifyTimestamp")
	s.gattrs = drop(s.gattrs, "entryUUID", "modifyTimestamp")
	if s.cfg.ExpiredAccountsInactive {
		s.uattrs = dedupFold(append(s.uattrs, "accountExpires"))
	}
	if step := s.cfg.RangeStep; step > 0 {
		for i, a := range s.gattrs {
			if containsFold(s.cfg.Groups.MemberAttributes, a) {
				s.gattrs[i] = fmt.Sprintf("%s;range=0-%d", a, step-1)
			}
		}
	}
}

// adMode is the change tracking an AD source uses.
func (s *Syncer) adMode() string {
	if s.cfg.ChangeTracking == TrackDirSync {
		return TrackDirSync
	}
	return TrackUSN
}

// readDC reads the rootDSE and the invocationId of the DC's NTDS Settings object.
func (s *Syncer) readDC(conn ldapConn) (dcInfo, error) {
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"highestCommittedUSN", "dsServiceName", "defaultNamingContext"}, nil))
	if err != nil || len(res.Entries) == 0 {
		return dcInfo{}, fmt.Errorf("reading the root DSE: %w", errors.Join(err, classifyEmpty(res)))
	}
	root := res.Entries[0]
	info := dcInfo{dc: root.GetAttributeValue("dsServiceName"), defaultNC: root.GetAttributeValue("defaultNamingContext")}
	if info.usn, err = strconv.ParseInt(root.GetAttributeValue("highestCommittedUSN"), 10, 64); err != nil {
		return dcInfo{}, fmt.Errorf("the root DSE has no usable highestCommittedUSN (is this Active Directory?): %w", err)
	}
	if info.dc == "" || info.defaultNC == "" {
		return dcInfo{}, errors.New("the root DSE has no dsServiceName or defaultNamingContext (is this Active Directory?)")
	}
	res, err = conn.Search(ldap.NewSearchRequest(info.dc, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"invocationId"}, nil))
	if err != nil {
		return dcInfo{}, fmt.Errorf("reading the invocationId of %s: %w", info.dc, err)
	}
	if len(res.Entries) == 0 || len(res.Entries[0].GetRawAttributeValue("invocationId")) != 16 {
		return dcInfo{}, fmt.Errorf("the bind account cannot read the invocationId of %s", info.dc)
	}
	info.invocationID = guidString(res.Entries[0].GetRawAttributeValue("invocationId"))
	return info, nil
}

func classifyEmpty(res *ldap.SearchResult) error {
	if res != nil && len(res.Entries) == 0 {
		return errors.New("no entry")
	}
	return nil
}

// adStart records, before a full read, the DC and the point the read starts from: changes
// made during the read are read again by the next delta pass (harmless), never missed.
func (p *pass) adStart(ctx context.Context, wm *watermark) error {
	dc, err := p.s.readDC(p.conn)
	if err != nil {
		return err
	}
	wm.Mode = p.s.adMode()
	wm.AD = &adMark{DC: dc.dc, InvocationID: dc.invocationID, USN: dc.usn}
	if wm.Mode == TrackDirSync {
		wm.AD.DirSync, wm.AD.DirSyncFlags, err = p.dirSyncStart(ctx, dc)
	}
	return err
}

// adDelta runs a delta pass against AD, or asks for a full one (errRefreshRequired, with the
// reason) when the stored watermark does not belong to this DC's database.
func (p *pass) adDelta(ctx context.Context, prev *watermark) error {
	dc, err := p.s.readDC(p.conn)
	if err != nil {
		return err
	}
	if why := p.s.adMismatch(prev, dc); why != "" {
		return fmt.Errorf("%w: %s", errRefreshRequired, why)
	}
	wm, ad := *prev, *prev.AD
	wm.AD = &ad
	p.sum.Mode = prev.Mode
	if prev.Mode == TrackDirSync {
		err = p.dirSyncDelta(ctx, &ad, dc)
	} else {
		err = p.usnDelta(ctx, prev.AD.USN, dc)
		ad.USN = dc.usn
	}
	if err != nil {
		if errors.Is(err, errPartial) {
			// Keep what was read, but neither delete nor move the watermark (invariant 4).
			p.sum.Partial = err.Error()
			p.core.Dels.Forget()
			if ferr := p.finish(ctx, nil, false); ferr != nil {
				return ferr
			}
		}
		return err
	}
	return p.finish(ctx, &wm, false)
}

// adMismatch says why a stored watermark cannot be continued on dc, or "".
func (s *Syncer) adMismatch(prev *watermark, dc dcInfo) string {
	switch {
	case prev.AD == nil:
		return "the stored watermark has no Active Directory USN"
	case prev.Mode != s.adMode():
		return fmt.Sprintf("change tracking changed from %s to %s", prev.Mode, s.adMode())
	case !strings.EqualFold(prev.AD.DC, dc.dc):
		return fmt.Sprintf("the domain controller changed from %q to %q; USNs are per DC", prev.AD.DC, dc.dc)
	case !strings.EqualFold(prev.AD.InvocationID, dc.invocationID):
		return fmt.Sprintf("the invocationId of %q changed from %s to %s (database restored?)", dc.dc, prev.AD.InvocationID, dc.invocationID)
	case dc.usn < prev.AD.USN:
		return fmt.Sprintf("highestCommittedUSN went back from %d to %d", prev.AD.USN, dc.usn)
	}
	return ""
}

// usnDelta reads the users and groups whose uSNChanged lies in (from, dc.usn], then the
// tombstones in that range. The upper bound makes the pass cover exactly what the new
// watermark claims.
func (p *pass) usnDelta(ctx context.Context, from int64, dc dcInfo) error {
	if dc.usn == from {
		return nil // nothing was committed on this DC since the last pass
	}
	// The USN range goes first: Samba evaluates an AND in order, and the range is the selective,
	// indexed part (60 ms instead of 110 ms on 10k users).
	cond := fmt.Sprintf("(uSNChanged>=%d)(uSNChanged<=%d)", from+1, dc.usn)
	if err := p.readDelta(ctx, scim.UserType, "(&"+cond+p.s.cfg.Users.Filter+")"); err != nil {
		return err
	}
	if err := p.readDelta(ctx, scim.GroupType, "(&"+cond+p.s.cfg.Groups.Filter+")"); err != nil {
		return err
	}
	if err := p.usnContainers(ctx, dc.defaultNC, cond); err != nil {
		return err
	}
	if err := p.scopeExits(ctx, dc.defaultNC, cond); err != nil {
		return err
	}
	return p.tombstones(ctx, deletedObjects(dc.defaultNC), "(&"+cond+"(isDeleted=TRUE))")
}

// scopeExits deletes the cached users and groups that changed in the USN range of cond but
// are no longer in scope: moved out of their base DN (offboarding into an OU outside it) or no
// longer matching their filter (disabled, under a filter that leaves disabled accounts out).
// A full pass would delete them; without this, a delta never looks at them again and they
// stay until the next full pass. The reads before (the same range, in scope) read every object
// that changed and is in scope, so a changed user or group of the domain that they did not
// read, in the same range, has left the scope (a later change lies past the range's end and
// is the next delta's). The deletions go through the threshold like any other.
func (p *pass) scopeExits(ctx context.Context, nc, cond string) error {
	req := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&"+cond+"(|(objectClass=user)(objectClass=group)))", []string{"objectGUID"}, []ldap.Control{domainScope})
	return p.deleteFound(ctx, req, fmt.Sprintf("the users and groups that changed under %q", nc))
}

// usnContainers follows the OUs and containers of the domain whose uSNChanged lies in the
// range of cond (subtrees.go): moving an OU changes the uSNChanged of the OU only, not of the
// users and groups under it, so neither the reads before nor scopeExits see them.
func (p *pass) usnContainers(ctx context.Context, nc, cond string) error {
	req := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&"+cond+adContainerFilter+")", []string{"1.1"}, []ldap.Control{domainScope})
	var containers []string
	if err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
		containers = append(containers, e.DN)
		return nil
	}); err != nil {
		return fmt.Errorf("reading the containers that changed under %q: %w", nc, err)
	}
	return p.followContainers(ctx, containers)
}

// adContainerFilter matches the AD objects that hold users and groups.
const adContainerFilter = "(|(objectClass=organizationalUnit)(objectClass=container))"

// deletedObjects names the Deleted Objects container of a naming context by its well-known
// GUID, which holds in every language and wherever the container was moved.
func deletedObjects(nc string) string { return "<WKGUID=18E2EA80684F11D2B9AA00C04F79F805," + nc + ">" }

// tombstones finds deleted objects with the show-deleted control (they live in the
// Deleted Objects container, objectGUID kept) and deletes the cached resources they were.
func (p *pass) tombstones(ctx context.Context, base, filter string) error {
	req := ldap.NewSearchRequest(base, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false, filter,
		[]string{"objectGUID", "isDeleted"}, []ldap.Control{ldap.NewControlMicrosoftShowDeleted(), domainScope})
	return p.deleteFound(ctx, req, fmt.Sprintf("tombstones under %q", base))
}

// deleteFound runs the paged search req and deletes (deleteIDs) the objects it finds, by
// objectGUID; what names them in an error.
func (p *pass) deleteFound(ctx context.Context, req *ldap.SearchRequest, what string) error {
	var ids []string
	err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
		if g := e.GetRawAttributeValue("objectGUID"); len(g) == 16 {
			ids = append(ids, guidString(g))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return p.deleteIDs(ctx, ids)
}

// deleteIDs marks for deletion the ids the cache holds, unless this pass read them again.
func (p *pass) deleteIDs(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if p.wasRead(id) {
			continue
		}
		ref, err := p.s.store.Ref(ctx, id)
		switch {
		case err == nil && (ref.Type == scim.UserType || ref.Type == scim.GroupType):
			p.core.Dels.Mark(id, ref.Type)
		case err != nil && !isNotFound(err):
			return err
		}
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, cache.ErrNotFound) }
