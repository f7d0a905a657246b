package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

const oidSyncRequest = "1.3.6.1.4.1.4203.1.9.1.1"

// errRefreshRequired means the server cannot serve our cookie (e-syncRefreshRequired, RFC 4533
// §3.3.1) and wants a full reload.
var errRefreshRequired = errors.New("server requires a full refresh")

// syncCookie returns a syncrepl cookie that covers everything a full read started now will see,
// or nil when syncrepl is not to be used. It reads contextCSN of the naming context holding the
// users before the read starts, so a change made during the read is seen again by the next
// delta pass (applying it twice is harmless), never missed.
func (s *Syncer) syncCookie(ctx context.Context, conn ldapConn) ([]byte, error) {
	if s.cfg.Dialect != DialectOpenLDAP || s.cfg.ChangeTracking == TrackModifyTimestamp {
		return nil, nil
	}
	root, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"supportedControl", "namingContexts"}, nil))
	if err != nil || len(root.Entries) == 0 {
		return nil, fmt.Errorf("reading the root DSE: %w", err)
	}
	rdse := root.Entries[0]
	unavailable := func(why string) ([]byte, error) {
		if s.cfg.ChangeTracking == TrackSyncrepl {
			return nil, fmt.Errorf("change_tracking = \"syncrepl\" but %s", why)
		}
		s.log.Info("syncrepl unavailable; delta passes use modifyTimestamp", "why", why)
		return nil, nil
	}
	if !containsFold(rdse.GetAttributeValues("supportedControl"), oidSyncRequest) {
		return unavailable("the server does not offer the LDAP sync control (load the syncprov overlay)")
	}
	suffix := holdingNC(rdse.GetAttributeValues("namingContexts"), s.cfg.Users.BaseDN)
	if suffix == "" {
		return unavailable("no naming context holds " + s.cfg.Users.BaseDN)
	}
	res, err := conn.Search(ldap.NewSearchRequest(suffix, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"contextCSN"}, nil))
	if err != nil {
		return unavailable(fmt.Sprintf("contextCSN of %s is not readable: %v", suffix, err))
	}
	if len(res.Entries) == 0 || len(res.Entries[0].GetAttributeValues("contextCSN")) == 0 {
		return unavailable("contextCSN of " + suffix + " is empty (is the syncprov overlay on that database?) or not readable by the bind account")
	}
	return []byte("rid=000,csn=" + strings.Join(res.Entries[0].GetAttributeValues("contextCSN"), ";")), nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// delta runs a delta pass from the stored watermark.
func (p *pass) runDelta(ctx context.Context, prev *watermark) error {
	if p.s.cfg.Dialect == DialectActiveDirectory {
		return p.adDelta(ctx, prev)
	}
	wm := *prev
	p.sum.Mode = prev.Mode
	p.readInFull = map[string]bool{}
	for _, id := range prev.ReadInFull {
		p.readInFull[id] = true
	}
	wm.ReadInFull = nil
	var err error
	if prev.Mode == TrackSyncrepl {
		if err := p.checkServerState(ctx, prev.UsersCookie); err != nil {
			return err
		}
		if wm.UsersCookie, err = p.syncrepl(ctx, scim.UserType, prev.UsersCookie); err == nil {
			wm.GroupsCookie, err = p.syncrepl(ctx, scim.GroupType, prev.GroupsCookie)
		}
		if err == nil {
			err = p.syncreplContainers(ctx, prev)
		}
		if err == nil {
			err = p.checkLoggedDeletions(ctx, prev, &wm)
		}
	} else {
		err = p.modifiedSince(ctx, prev.MaxModify)
		wm.MaxModify = maxTimestamp(prev, p.maxMod)
	}
	if err != nil {
		if errors.Is(err, errRefreshRequired) {
			return err
		}
		if errors.Is(err, errPartial) {
			// Keep what was read, but neither delete nor move the watermark.
			p.sum.Partial = err.Error()
			p.core.Dels.Forget()
			if ferr := p.finish(ctx, nil, false); ferr != nil {
				return ferr
			}
		}
		return err
	}
	wm.ReadInFull = p.goneGroups
	return p.finish(ctx, &wm, false)
}

// checkServerState asks for a full pass when the server's contextCSN is older than the cookie
// the last pass stored: slapd restarted after a crash with the contextCSN of its last
// checkpoint. It would refuse the cookie (LDAP 53), or serve it but send only entries up to its
// own, older contextCSN and so hold back the changes made between the checkpoint and the crash
// until later writes move it past them.
func (p *pass) checkServerState(ctx context.Context, cookie []byte) error {
	ours, ok := cookieCSN(cookie)
	if !ok {
		return nil
	}
	server, err := p.s.syncCookie(ctx, p.conn)
	if err != nil {
		return err
	}
	theirs, ok := cookieCSN(server)
	if ok && theirs < ours {
		return fmt.Errorf("%w: the server's contextCSN %s is older than the stored cookie's %s (did slapd restart after a crash?)",
			errRefreshRequired, theirs, ours)
	}
	return nil
}

// modifiedSince reads entries changed since the server timestamp ts, minus the overlap window
// (invariant 7, docs/architecture.md: the server's clock, never ours), and follows the OUs
// changed since then (subtrees.go). Deletions are invisible to it; full passes find them,
// except those of the users and groups under an OU moved out of the base.
func (p *pass) modifiedSince(ctx context.Context, ts string) error {
	since := "19700101000000Z"
	if t, err := time.Parse("20060102150405Z", strings.TrimSuffix(ts, "Z")+"Z"); err == nil {
		since = t.Add(-p.s.cfg.Overlap.D()).UTC().Format("20060102150405Z")
	} else if ts != "" {
		if t, err := time.Parse("20060102150405.999999Z", ts); err == nil {
			since = t.Add(-p.s.cfg.Overlap.D()).UTC().Format("20060102150405Z")
		}
	}
	cond := "(modifyTimestamp>=" + since + ")"
	if err := p.readDelta(ctx, scim.UserType, "(&"+p.s.cfg.Users.Filter+cond+")"); err != nil {
		return err
	}
	if err := p.readDelta(ctx, scim.GroupType, "(&"+p.s.cfg.Groups.Filter+cond+")"); err != nil {
		return err
	}
	return p.changedContainers(ctx, cond)
}

func (p *pass) readDelta(ctx context.Context, typ scim.ResourceType, filter string) error {
	if typ == scim.GroupType {
		return p.readType(ctx, typ, p.s.cfg.Groups.BaseDN, filter, p.s.groupAttrs())
	}
	err := p.readType(ctx, typ, p.s.cfg.Users.BaseDN, filter, p.s.userAttrs())
	p.usersRead = err == nil
	return err
}

// syncrepl runs one RFC 4533 refreshOnly search for one resource type and returns the new
// cookie (the old one when the server sent none).
//
// What slapd's syncprov sends, and what we do with it:
//   - changed entries arrive with state add (or modify): upsert, keyed by entryUUID;
//   - deletions arrive as syncIdSet with refreshDeletes=TRUE, or entries with state delete;
//   - after a server restart the session log is gone and the server runs the present phase:
//     syncIdSet / entries with state present list every UUID that still exists, and SyncDone
//     has refreshDeletes=FALSE. Every cached resource of this type that was neither present nor
//     sent is then deleted — but only if the search completed and present UUIDs were sent;
//   - SyncDone with an empty cookie means nothing changed: keep the previous cookie.
//
// Groups are asked for without their member attributes, and every changed group is then read
// again on its own through ldapwire: go-ldap builds a packet tree of every value. Measured at
// 1M users, a delta after 100 removals from the all-staff group peaked at 1,249 MB anonymous
// through go-ldap and at 368 MB this way. ldapwire decodes the member values in place.
func (p *pass) syncrepl(ctx context.Context, typ scim.ResourceType, cookie []byte) ([]byte, error) {
	base, filter, attrs := p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter, p.s.userAttrs()
	var changedGroups []changedGroup // read again (or replayed) after the syncrepl search
	if typ == scim.GroupType {
		base, filter, attrs = p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter, p.s.groupAttrsWithoutMembers()
	}
	readChanged := func(dn string, e *ldap.Entry) error {
		if typ == scim.GroupType {
			changedGroups = append(changedGroups, changedGroup{dn: dn, e: e})
			return nil
		}
		return p.read(ctx, typ, dn, ldapEntry{e})
	}
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	start := func(ctx context.Context, r *ldap.SearchRequest, buf int) ldap.Response {
		return p.conn.Syncrepl(ctx, r, buf, ldap.SyncRequestModeRefreshOnly, cookie, false)
	}
	ss := newSyncStream()
	err := p.s.stream(ctx, start, req, func(resp ldap.Response) error {
		if e := ss.take(resp); e != nil {
			return readChanged(e.DN, e)
		}
		return nil
	})
	if err == nil {
		// The CSN the refresh stopped at: the cookie it returned, or the one it started from
		// when the server sent none (nothing changed up to its contextCSN).
		snapshot := ss.cookie
		if snapshot == nil {
			snapshot = cookie
		}
		if typ == scim.GroupType {
			if changedGroups, err = p.addUnreportedGroups(ctx, changedGroups, snapshot); err == nil {
				err = p.rereadGroups(ctx, changedGroups, cookie)
			}
			if err == nil {
				err = p.leftTheFilter(ctx, scim.GroupType, snapshot)
			}
		} else {
			err = p.readUnreportedUsers(ctx, snapshot)
		}
	}
	if err != nil {
		if ldap.IsErrorWithCode(err, 4096) { // e-syncRefreshRequired
			return nil, errRefreshRequired
		}
		if ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
			// slapd refuses a cookie newer than its own state ("consumer state is newer than
			// provider!"): after a crash its contextCSN is its last checkpoint. Every later
			// delta would be refused the same way; a full pass starts afresh.
			return nil, fmt.Errorf("%w: %v", errRefreshRequired, err)
		}
		return nil, fmt.Errorf("syncrepl of %ss: %w", strings.ToLower(string(typ)), err)
	}
	if !ss.done {
		return nil, &partialError{why: "syncrepl search ended without a Sync Done control"}
	}
	if err := p.applySyncDeletions(ctx, typ, ss); err != nil {
		return nil, err
	}
	p.usersRead = p.usersRead || typ == scim.UserType
	if ss.cookie == nil {
		return cookie, nil
	}
	return ss.cookie, nil
}

// applySyncDeletions marks for deletion what a completed syncrepl search of one type says is
// gone: the entries it reported deleted and, when the server ran a present phase, every cached
// resource of the type it neither listed nor sent. Entries read again in this pass stay.
func (p *pass) applySyncDeletions(ctx context.Context, typ scim.ResourceType, ss *syncStream) error {
	for _, id := range ss.deleted {
		if p.wasRead(id) {
			continue
		}
		// Count only what the cache holds: the server may report entries we never had.
		if ref, err := p.s.store.Ref(ctx, id); err == nil && ref.Type == typ {
			p.core.Dels.Mark(id, typ)
		} else if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return err
		}
	}
	presentOn := ss.presentOn
	if presentOn && len(ss.present) == 0 && p.sum.Read == 0 {
		// An empty present phase would delete every resource of this type. A directory does
		// not empty itself between two passes; leave that to a full reconciliation.
		p.s.log.Warn("server ran an empty syncrepl present phase; deleting nothing", "type", typ)
		presentOn = false
	}
	if !presentOn {
		return nil
	}
	p.s.log.Info("server ran the syncrepl present phase; deleting what it did not list", "type", typ, "present", len(ss.present))
	return p.s.store.ForEachOwned(ctx, typ, "", func(id string) error {
		if _, isPresent := ss.present[id]; !isPresent && !p.wasRead(id) {
			p.core.Dels.Mark(id, typ)
		}
		return nil
	})
}

// pastSnapshot returns the filter that narrows filter to the entries whose entryCSN is past the
// CSN of snapshot, the one a syncrepl refresh stopped at; ok is false when snapshot holds no
// single CSN (none, or one per server of a multi-provider directory).
//
// slapd's syncprov takes a snapshot of the contextCSN when a refresh starts, returns it as the
// cookie, and leaves out every entry whose entryCSN is newer by the time the search reaches it.
// Usually such an entry changed during the search, and the next refresh reports it. But slapd
// keeps its contextCSN in memory and writes it back only at checkpoints (syncprov-checkpoint)
// and on a clean shutdown: killed, it restarts with the contextCSN of its last checkpoint
// while the entries written after it keep their later entryCSNs, and every refresh leaves them
// out until a new write moves the contextCSN past them. A delta that trusted the refresh alone
// missed them, and with a quiet directory the next delta missed them again (R2 "slapd kill -9
// mid-pass" in `make reliability`: a pass that died while binding left no full-pass marker).
func pastSnapshot(filter string, snapshot []byte) (string, bool) {
	csn, ok := cookieCSN(snapshot)
	if !ok {
		return "", false
	}
	c := ldap.EscapeFilter(csn)
	return "(&" + filter + "(entryCSN>=" + c + ")(!(entryCSN=" + c + ")))", true
}

// readUnreportedUsers reads into the pass the users in scope whose entryCSN is past snapshot,
// which the users' refresh left out (pastSnapshot), unless the refresh sent them already.
// Reading them again in the next pass is harmless. Deletions leave no entry to read: after a
// restart a refresh from an older cookie runs a present phase, which lists every entry that
// still exists, these included; from a cookie at the server's contextCSN it reports nothing,
// and checkLoggedDeletions looks in the accesslog (lostdeletes.go).
func (p *pass) readUnreportedUsers(ctx context.Context, snapshot []byte) error {
	filter, ok := pastSnapshot(p.s.cfg.Users.Filter, snapshot)
	if !ok {
		return nil
	}
	n := 0
	req := ldap.NewSearchRequest(p.s.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, p.s.userAttrs(), p.s.searchControls())
	err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
		if id, ok := p.s.idOf(ldapEntry{e}); ok && p.ents.read(id) {
			return nil
		}
		n++
		return p.read(ctx, scim.UserType, e.DN, ldapEntry{e})
	})
	if err != nil {
		return fmt.Errorf("reading users changed past the users' syncrepl cookie: %w", err)
	}
	if n > 0 {
		p.s.log.Debug("read users the syncrepl refresh left out: changed past its snapshot (during the pass, or before a crash of the server)",
			"users", n)
	}
	return p.leftTheFilter(ctx, scim.UserType, snapshot)
}

// leftTheFilter deletes the cached users (or groups) whose entries changed past snapshot and no
// longer match their filter (offboarding by an attribute the filter tests): the refresh left
// them out as it left out the changes readUnreportedUsers and addUnreportedGroups read, and
// after a crash of slapd no later refresh reports them either. A full pass would delete them;
// the deletions go through the threshold like any other. An entry this pass read is left to
// the next refresh.
func (p *pass) leftTheFilter(ctx context.Context, typ scim.ResourceType, snapshot []byte) error {
	base, filter := p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter
	if typ == scim.GroupType {
		base, filter = p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter
	}
	filter, ok := pastSnapshot("(!"+filter+")", snapshot)
	if !ok {
		return nil
	}
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, p.s.idAttrs(), nil)
	var ids []string
	err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
		if id, ok := p.s.idOf(ldapEntry{e}); ok && !p.wasRead(id) && !p.core.Dels.Marked(id) {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading entries changed past the %ss' syncrepl cookie that left their filter: %w", strings.ToLower(string(typ)), err)
	}
	n, err := p.markCached(ctx, typ, ids)
	if n > 0 {
		p.s.log.Debug("entries left their filter past the refresh's snapshot", "type", typ, "entries", n)
	}
	return err
}

// addUnreportedGroups adds to groups those whose entryCSN is past snapshot, the CSN the groups'
// refresh stopped at (pastSnapshot): a group modified during the search is not reported,
// although it may have changed before the cookie too. Syncrepl alone would report it next
// time, but the accesslog replay would start from this cookie and miss those earlier changes
// for good (TestDeltaReplayWithGroupsChangingDuringTheSearch); and after a crash of slapd the
// groups written since its last checkpoint are left out until the next write
// (TestDeltaAfterSlapdCrash). Processed now, the group is cached as it is after the cookie, as
// the replay requires; the next pass replays the changes after the cookie again, which is
// harmless. A group also reported is not added twice.
func (p *pass) addUnreportedGroups(ctx context.Context, groups []changedGroup, snapshot []byte) ([]changedGroup, error) {
	filter, ok := pastSnapshot(p.s.cfg.Groups.Filter, snapshot)
	if !ok {
		return groups, nil // several CSNs: no replay then
	}
	res, err := p.conn.Search(ldap.NewSearchRequest(p.s.cfg.Groups.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, p.s.groupAttrsWithoutMembers(), nil))
	if err != nil {
		return nil, fmt.Errorf("looking for groups changed past the groups' syncrepl cookie: %w", err)
	}
	reported := map[string]bool{}
	for _, g := range groups {
		if id, ok := p.s.idOf(ldapEntry{g.e}); ok {
			reported[id] = true
		}
	}
	for _, e := range res.Entries {
		if id, ok := p.s.idOf(ldapEntry{e}); ok && !reported[id] {
			reported[id] = true
			groups = append(groups, changedGroup{dn: e.DN, e: e})
		}
	}
	return groups, nil
}

// rereadGroups applies the changed groups a syncrepl search sent without their members. Each is
// replayed from the accesslog when the log allows it (accesslog.go), else read again with every
// attribute the pass needs, with a base search through the pass's usual reader. A group that is
// gone by now is skipped: the next delta reports its deletion or its new DN. prev is the cookie
// the search started from.
func (p *pass) rereadGroups(ctx context.Context, groups []changedGroup, prev []byte) error {
	var log *accessLog
	if len(groups) > 0 {
		var why string
		if log, why = p.openAccessLog(ctx, prev); log == nil {
			p.s.log.Debug("changed groups are read in full", "why", why)
		}
	}
	for _, g := range groups {
		if log != nil {
			if ok, err := p.replayGroup(ctx, g, log); err != nil || ok {
				if err != nil {
					return fmt.Errorf("replaying group %q from the accesslog: %w", g.dn, err)
				}
				continue
			}
		}
		dn := g.dn
		err := p.search(ctx, scim.GroupType, dn, ldap.ScopeBaseObject, "(objectClass=*)", p.s.groupAttrs())
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			p.s.log.Info("a changed group is gone before it could be read; the next pass sees why", "dn", dn)
			if id, ok := p.s.idOf(ldapEntry{g.e}); ok {
				p.goneGroups = append(p.goneGroups, id)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reading group %q: %w", dn, err)
		}
	}
	return nil
}

// markCached marks for deletion the ids the cache holds as resources of typ, and returns how
// many it marked. The callers found the ids out of typ's scope by a read of this pass.
func (p *pass) markCached(ctx context.Context, typ scim.ResourceType, ids []string) (int, error) {
	n := 0
	for _, id := range ids {
		ref, err := p.s.store.Ref(ctx, id)
		if isNotFound(err) || err == nil && ref.Type != typ {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
		p.core.Dels.Mark(id, typ)
	}
	return n, nil
}
