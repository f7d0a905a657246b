package ldapsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Member changes from slapd's accesslog (slapo-accesslog). A syncrepl delta learns that a group
// changed, not how: reading a group of a million members again costs a million DNs to read and
// resolve for a change of a few. When the directory keeps an accesslog that the bind account can
// read, and that log provably holds every write since the previous pass, a delta replays the
// group's logged member changes instead, at a cost proportional to the change.
//
// Why a replay is right. Every logged member change replayed is "add value v" or "delete value
// v" of a successful modify; anything else (a replace, a delete of every value, a memberUid
// change, an add or delete of the group) makes the pass read the group in full as before. The
// cache holds each group as the directory had it at some moment at or after the previous
// groups cookie's CSN H: a full pass's cookie is taken before its read, a delta's search covers
// every group change up to its cookie (with the groups syncprov left out of it because they
// changed again during the search: addUnreportedGroups), and a changed group is read (or
// replayed) after it.
// Replaying, in CSN order, every logged change of the group after H leaves each member the log
// touched in its last logged state, which is the directory's, and every other member as read.
// Replaying a change twice (after a failed pass, from an older H) is harmless.
//
// Why the log is complete. The log's container carries minCSN, the CSN of its oldest record,
// and purging removes the oldest records first: minCSN <= H proves every write after H is still
// there. Without minCSN, with a cookie of several CSNs (multi-provider), with a member DN that
// no longer resolves in a removal, with more than maxLogOps changes, with a member hold on the
// group, or for a group the previous delta reported but found gone when it read it (its changes
// before H never reached the cache: watermark.ReadInFull), the group is read in full.

// maxLogOps bounds the member changes replayed for one group; beyond it a full read is cheaper
// to hold in memory.
const maxLogOps = 100_000

// accessLog is the accesslog a pass may replay from; nil when it may not.
type accessLog struct {
	base  string // the log database's suffix, e.g. cn=accesslog
	since string // H: the previous groups cookie's CSN
}

// memberOp is one logged change of one member value.
type memberOp struct {
	add bool
	dn  string
}

// openAccessLog finds the accesslog and checks it covers every write since the cookie prev. It
// returns nil, with the reason, when the pass must read changed groups in full.
func (p *pass) openAccessLog(ctx context.Context, prev []byte) (*accessLog, string) {
	if p.s.cfg.Dialect != DialectOpenLDAP {
		return nil, "not OpenLDAP"
	}
	h, ok := cookieCSN(prev)
	if !ok {
		return nil, "the previous cookie has no single CSN"
	}
	root, err := p.conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"namingContexts"}, nil))
	if err != nil || len(root.Entries) == 0 {
		return nil, "the root DSE is not readable"
	}
	for _, nc := range root.Entries[0].GetAttributeValues("namingContexts") {
		res, err := p.conn.Search(ldap.NewSearchRequest(nc, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=auditContainer)", []string{"minCSN"}, nil))
		if err != nil || len(res.Entries) == 0 {
			continue // not a log, or not readable by the bind account
		}
		minCSN := res.Entries[0].GetAttributeValues("minCSN")
		switch {
		case len(minCSN) != 1:
			return nil, "the accesslog " + nc + " shows no minCSN"
		case minCSN[0] > h:
			return nil, "the accesslog " + nc + " starts after the previous pass (minCSN " + minCSN[0] + ")"
		}
		return &accessLog{base: nc, since: h}, ""
	}
	return nil, "no readable accesslog (objectClass auditContainer) among the naming contexts"
}

// cookieCSN returns the CSN of a syncrepl cookie "rid=000,csn=X" with one CSN.
func cookieCSN(cookie []byte) (string, bool) {
	_, csn, ok := strings.Cut(string(cookie), "csn=")
	if !ok || csn == "" || strings.ContainsAny(csn, ";,") {
		return "", false
	}
	return csn, true
}

// memberOps returns the logged member changes of the entry uuid after the log's CSN, in CSN
// order, or ok == false (with the reason) when they cannot be replayed.
func (l *accessLog) memberOps(ctx context.Context, conn ldapConn, uuid string, memberAttrs, uidAttrs []string) (ops []memberOp, why string, err error) {
	// reqStart is when the operation began, before its CSN was taken; the margin covers a long
	// operation. Records are then chosen by their CSN.
	t, err := time.Parse("20060102150405", l.since[:min(14, len(l.since))])
	if err != nil {
		return nil, "the cookie's CSN is not a time", nil
	}
	filter := fmt.Sprintf("(&(reqEntryUUID=%s)(reqStart>=%s))", ldap.EscapeFilter(uuid),
		t.Add(-10*time.Minute).Format("20060102150405Z"))
	res, err := conn.Search(ldap.NewSearchRequest(l.base, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, maxLogOps, 0, false,
		filter, []string{"reqType", "reqResult", "reqMod", "entryCSN"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, "too many logged changes", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the accesslog %s: %w", l.base, err)
	}
	recs := res.Entries
	slices.SortFunc(recs, func(a, b *ldap.Entry) int {
		return strings.Compare(a.GetAttributeValue("entryCSN"), b.GetAttributeValue("entryCSN"))
	})
	for _, rec := range recs {
		if rec.GetAttributeValue("entryCSN") <= l.since || rec.GetAttributeValue("reqResult") != "0" {
			continue // before H, or failed: it changed nothing
		}
		switch typ := rec.GetAttributeValue("reqType"); typ {
		case "modify":
		case "modrdn":
			continue // a rename changes no member
		default:
			return nil, "the group was the target of a logged " + typ, nil
		}
		for _, mod := range rec.GetAttributeValues("reqMod") {
			attr, rest, _ := strings.Cut(mod, ":")
			switch {
			case containsFold(uidAttrs, attr):
				return nil, "a logged " + attr + " change", nil
			case !containsFold(memberAttrs, attr):
				continue
			case strings.HasPrefix(rest, "+ "):
				ops = append(ops, memberOp{add: true, dn: rest[2:]})
			case strings.HasPrefix(rest, "- "):
				ops = append(ops, memberOp{dn: rest[2:]})
			default:
				return nil, "a logged " + attr + " change that is not an add or delete of values", nil
			}
			if len(ops) > maxLogOps {
				return nil, "too many logged changes", nil
			}
		}
	}
	return ops, "", nil
}

// changedGroup is a group a syncrepl delta reported, as sent: without its members.
type changedGroup struct {
	dn string
	e  *ldap.Entry
}

// replayGroup applies a changed group from the accesslog: its attributes from the syncrepl
// entry, its members as a member edit of the logged changes. It returns false when the group
// must be read in full instead.
func (p *pass) replayGroup(ctx context.Context, g changedGroup, log *accessLog) (bool, error) {
	id, ok := p.s.idOf(ldapEntry{g.e})
	if !ok || p.readInFull[id] {
		return false, nil // a group the previous delta could not read misses changes before H
	}
	if ref, err := p.s.store.Ref(ctx, id); isNotFound(err) || (err == nil && ref.Type != scim.GroupType) {
		return false, nil // new here: nothing to replay onto
	} else if err != nil {
		return false, err
	}
	if held, err := p.core.MemberHolds.HeldBefore(ctx, p.s.store, id); err != nil || held {
		return false, err // a fresh read decides the hold again
	}
	ops, why, err := log.memberOps(ctx, p.conn, id, p.s.cfg.Groups.MemberAttributes, p.s.cfg.Groups.MemberUIDAttributes)
	if err != nil || why != "" {
		if why != "" {
			p.s.log.Info("reading a changed group in full", "dn", g.dn, "why", why)
		}
		return false, err
	}
	ed, ok, err := p.resolveOps(ctx, id, ops)
	if err != nil || !ok {
		return false, err
	}
	if err := p.holdLoggedRemovals(ctx, id, g.dn, g.e, ed); err != nil {
		return false, err
	}
	// Set before the read: the read may flush the batch that upserts the group.
	p.keepMembers[id] = true
	p.logEdits[id] = ed
	if err := p.read(ctx, scim.GroupType, g.dn, ldapEntry{g.e}); err != nil {
		return true, err
	}
	if !p.wasRead(id) { // skipped (logged by read): a full read would skip it too
		delete(p.keepMembers, id)
		delete(p.logEdits, id)
		p.core.MemberHolds.Drop(id)
		return true, nil
	}
	p.sum.Replayed++
	return true, nil
}

// loggedEdit is the net member change of a replayed group.
type loggedEdit struct {
	set    map[string]scim.Member // members the log added
	remove map[string]bool        // member ids the log removed
}

// resolveOps turns logged member DNs into the net edit of group gid. A removed DN that names
// no entry any more (deleted, or renamed since) cannot say which member to remove: false. An
// added DN that names no entry is not a member, as in a full read.
func (p *pass) resolveOps(ctx context.Context, gid string, ops []memberOp) (loggedEdit, bool, error) {
	ed := loggedEdit{set: map[string]scim.Member{}, remove: map[string]bool{}}
	dns := make([]string, len(ops))
	for i, op := range ops {
		dns[i] = op.dn
	}
	for start := 0; start < len(dns); start += resolveChunk {
		chunk := dns[start:min(start+resolveChunk, len(dns))]
		pre, err := p.res.prefetch(ctx, chunk, true)
		if err != nil {
			return ed, false, err
		}
		for i, d := range chunk {
			ref, ok, err := p.res.dn(ctx, d, true, pre.at(i))
			if err != nil {
				return ed, false, err
			}
			op := ops[start+i]
			switch {
			case !ok && !op.add:
				p.s.log.Info("reading a changed group in full", "group", gid, "why", "a removed member DN names no entry now")
				return ed, false, nil
			case !ok || ref.ID == gid:
				continue
			case op.add:
				delete(ed.remove, ref.ID)
				ed.set[ref.ID] = scim.Member{Value: ref.ID, Type: ref.Type, Display: ref.Display}
			default:
				delete(ed.set, ref.ID)
				ed.remove[ref.ID] = true
			}
		}
	}
	return ed, true, nil
}

// holdLoggedRemovals applies the deletion threshold to a replayed group as a read one gets it:
// members this pass deletes are left to the deletion (and its hold); if the other removals of
// members the cache has the group list cross the threshold, they are held.
func (p *pass) holdLoggedRemovals(ctx context.Context, gid, gdn string, e *ldap.Entry, ed loggedEdit) error {
	name := func() string {
		if r, _, _ := p.s.normalizeGroup(gid, gdn, ldapEntry{e}); r != nil {
			return displayOf(r)
		}
		return ""
	}
	return p.core.MemberHolds.CheckEdit(ctx, p.s.store, gid, gdn, name, ed.remove, p.core.Dels.Marked)
}

// addLoggedEdits adds the replayed groups' edits to the pass's last batch. A logged edit's
// removals and additions are disjoint (resolveOps), and edits.list sorts, so order is free.
func (p *pass) addLoggedEdits(edits ingest.Edits) {
	for gid, ed := range p.logEdits {
		for id := range ed.remove {
			edits.Remove(gid, id)
		}
		for _, m := range ed.set {
			edits.Set(gid, m)
		}
	}
}

// keptMembers is what a batch tells the cache about groups whose members it does not restate.
func (p *pass) keptMembers() map[string]bool {
	if len(p.keepMembers) == 0 {
		return nil
	}
	return p.keepMembers
}
