package ldapsync

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash/maphash"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/ldapwire"
	"github.com/ldapscim/ldapscim/scim"
)

// flushSize is how many resources a pass hands to the cache at once; it bounds memory.
const flushSize = 2000

// pass is the state of one pass. It is used by one goroutine.
type pass struct {
	s    *Syncer
	conn ldapConn
	id   string
	sum  Summary
	full bool

	core         *ingest.Pass // the source-neutral part: deletions, holds, rules (package ingest)
	ents         entries      // entries read in this pass, by DN, id and uid (entries.go)
	batch        []*scim.Resource
	pending      []pendingResource     // entries waiting for references to entries read later
	spill        *pendingFile          // and, beyond pendingSpillAfter, all of them (pending.go)
	maxMod       string                // highest modifyTimestamp seen
	noSources    bool                  // the cache has no users, so no source records (a first sync)
	srcBatch     map[string][]byte     // stored source records of the users being processed (full passes)
	res          *resolver             // DN and uid references → ids (resolver.go)
	mgrChecks    chunked[mgrCheck]     // skipped users whose manager is confirmed after the read: read already
	mgrChecksDN  chunked[mgrCheckDN]   // and: not read yet, or none
	mgrSeed      maphash.Seed          // of mgrCheck.want
	batchSrc     map[string][]byte     // source hashes of the resources queued since the last flush
	batchTimes   map[string]time.Time  // and their entries' modifyTimestamp (cache.Batch.SourceTimes)
	apply        *applier              // background cache writer, started on the first flush
	load         *cache.Load           // a first sync's bulk load until endLoad (apply.go)
	now          time.Time             // the pass's start, for accountExpires
	wire         *ldapwire.Conn        // bulk-read connection, dialed on first use
	side         ldapConn              // single-entry lookups while a stream reads conn (lookupConn)
	keepMembers  map[string]bool       // groups replayed from the accesslog: members not restated (accesslog.go)
	logEdits     map[string]loggedEdit // group id → its replayed member change
	readInFull   map[string]bool       // delta: groups the previous delta could not read (watermark.ReadInFull)
	goneGroups   []string              // delta: changed groups gone before they could be read
	usersRead    bool                  // delta: the users' read is over (readNewUser may read more)
	newcomers    []newcomer            // delta: resources the cache did not hold (rejoin.go)
	unreadUsers  []string              // full pass: cached users the read did not see
	usersScanned bool                  // unreadUsers is set (every user is read)
	dups         dupNames              // users written whose userName another user holds (dupnames.go)
	// overlays says whether the cache has overlays of enriching sources (0: not asked yet, 1:
	// yes, -1: no); batchOv are the overlays of the users queued since the last flush, asideOv
	// those of users set aside for Last.
	overlays         int8
	batchOv, asideOv map[string]*cache.Overlay
}

func (s *Syncer) newPass(conn ldapConn, full bool) *pass {
	kind := "delta"
	if full {
		kind = "full"
	}
	id := kind + "-" + time.Now().UTC().Format("20060102T150405.000Z")
	p := &pass{
		s: s, conn: conn, full: full, id: id, now: time.Now(),
		sum:         Summary{Pass: id, Full: full},
		mgrSeed:     maphash.MakeSeed(),
		batchSrc:    map[string][]byte{},
		batchTimes:  map[string]time.Time{},
		keepMembers: map[string]bool{},
		logEdits:    map[string]loggedEdit{},
		batchOv:     map[string]*cache.Overlay{},
		asideOv:     map[string]*cache.Overlay{},
	}
	p.core = ingest.NewPass(id, Source, s.store, s.threshold(), s.rules, !full, s.log)
	p.res = newResolver(&p.ents, s.store, full, func() bool { return p.sum.Partial == "" }, nil)
	if !full {
		p.res.server = p.resolveDNOnServer
	}
	return p
}

// wasRead reports whether this pass read the entry with this id (or it is a virtual group).
func (p *pass) wasRead(id string) bool {
	// Virtual groups come from rules, not the directory: never reconcile them away.
	if p.s.rules.IsVirtual(id) {
		return true
	}
	return p.ents.read(id)
}

func hash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:8]
}

// read handles one entry of either type: it normalizes it, records it for reference
// resolution and queues it for the cache.
func (p *pass) read(ctx context.Context, typ scim.ResourceType, entryDN string, e attrGetter) error {
	p.sum.Read++
	if p.s.progress != nil && p.sum.Read%1000 == 0 {
		p.s.progress(string(typ), p.sum.Read)
	}
	var mod time.Time
	if ts := e.Get("modifyTimestamp"); len(ts) > 0 {
		if string(ts[0]) > p.maxMod {
			p.maxMod = string(ts[0])
		}
		mod = entryTime(ts[0])
	}
	id, ok := p.s.idOf(e)
	if !ok {
		p.skip(entryDN, "it has no entryUUID/objectGUID")
		return nil
	}
	if p.s.cfg.Dialect == DialectActiveDirectory {
		var err error
		if e, err = p.adRanges(ctx, entryDN, e); err != nil {
			return err
		}
	}
	var digest [16]byte
	if typ == scim.UserType {
		digest = p.digest(entryDN, e)
		if p.s.cfg.ExpiredAccountsInactive {
			digest = adExpiryDigest(digest, e, p.now)
		}
		if p.full && !p.noSources {
			if same, err := p.unchanged(ctx, id, entryDN, e, digest); err != nil || same {
				return err
			}
		}
	}
	var (
		r   *scim.Resource
		rf  refs
		why string
	)
	if typ == scim.UserType {
		r, rf, why = p.s.normalizeUser(id, entryDN, e)
		if r != nil && p.s.cfg.ExpiredAccountsInactive && adExpired(e, p.now) {
			r.Attributes["active"] = false
		}
	} else {
		r, rf, why = p.s.normalizeGroup(id, entryDN, e)
	}
	if r == nil {
		p.skip(entryDN, why)
		return nil
	}
	p.remember(cache.Ref{ID: id, Type: typ, Display: displayOf(r)}, entryDN, e)
	if err := p.noteNewcomer(ctx, r, entryDN, e); err != nil {
		return err
	}
	if !rf.empty() {
		p.res.begin()
		ok, mgr, err := p.resolve(ctx, r, rf, !p.full)
		if ok && p.res.usedTentative() {
			p.res.recheckLater(recheck{id: id, typ: typ, rf: rf, digest: digest})
		}
		if err != nil {
			return err
		}
		if !ok {
			enc, err := cache.AppendResource(nil, r)
			if err != nil {
				return err
			}
			pr := pendingResource{raw: enc, rf: rf, digest: digest}
			if !mod.IsZero() {
				pr.mod = mod.UnixNano()
			}
			return p.addPending(pr)
		}
		p.setSource(r, digest, mgr)
	} else {
		p.setSource(r, digest, cache.Ref{})
	}
	if !mod.IsZero() {
		p.batchTimes[id] = mod
	}
	return p.queue(ctx, r)
}

// entryTime parses a modifyTimestamp (GeneralizedTime, "20261205041754Z", maybe with a
// fraction of a second); zero when it is not one. It is the directory's own time of the
// entry's last change, which replicas behind a load balancer derive meta.lastModified from
// (cache.Batch.SourceTimes).
func entryTime(v []byte) time.Time {
	t, err := time.Parse("20060102150405Z0700", string(v))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// remember records an entry read in this pass, for reference resolution and reconciliation.
// It returns the entry's record number.
func (p *pass) remember(ref cache.Ref, entryDN string, e attrGetter) uint32 {
	var uids []string
	if ref.Type == scim.UserType {
		for _, u := range e.Get("uid") {
			uids = append(uids, str(u))
		}
	}
	p.core.Dels.Unmark(ref.ID)
	return p.ents.add(ref, dnKey(entryDN), uids)
}

// setSource records the source record a user is to be stored with.
func (p *pass) setSource(r *scim.Resource, digest [16]byte, mgr cache.Ref) {
	if r.Type == scim.UserType {
		p.batchSrc[r.ID] = encodeSrc(digest, cache.Ref{ID: mgr.ID, Display: mgr.Display})
	}
}

func (p *pass) skip(entryDN, why string) {
	p.sum.Skipped++
	p.s.log.Warn("skipping entry", "dn", entryDN, "reason", why)
}

// queue adds a resolved resource to the batch. A user that the cache has active and the
// directory now shows inactive is set aside: deactivations count against the deletion
// threshold (invariant 5, docs/architecture.md) and are decided at the end of the pass.
//
// A user an enriching source joins (an HR file in enrich mode) gets that source's values over
// the directory's first (mergeOverlay), so that the rules and the threshold see the user the
// cache will hold.
func (p *pass) queue(ctx context.Context, r *scim.Resource) error {
	ov, err := p.mergeOverlay(ctx, r)
	if err != nil {
		return err
	}
	aside, err := p.core.Queue(ctx, r)
	if err != nil {
		return err
	}
	if aside {
		if ov != nil {
			p.asideOv[r.ID] = ov
		}
		return nil
	}
	if ov != nil {
		p.batchOv[r.ID] = ov
	}
	p.batch = append(p.batch, r)
	if len(p.batch) >= flushSize {
		return p.flush(ctx)
	}
	return nil
}

// mergeOverlay applies the stored overlay of user r, if any, and returns it with the
// directory's values under it recomputed from r (ingest.MergeOverlay). A pass asks the cache
// once whether it has overlays at all, so that passes without enriching sources pay nothing.
func (p *pass) mergeOverlay(ctx context.Context, r *scim.Resource) (*cache.Overlay, error) {
	if r.Type != scim.UserType || p.overlays < 0 {
		return nil, nil
	}
	if p.overlays == 0 {
		has, err := p.s.store.HasOverlays(ctx)
		if err != nil {
			return nil, err
		}
		p.overlays = 1
		if !has {
			p.overlays = -1
			return nil, nil
		}
	}
	ovs, err := p.s.store.Overlays(ctx, []string{r.ID})
	if err != nil || ovs[r.ID] == nil {
		return nil, err
	}
	return ingest.MergeOverlay(r, ovs[r.ID]), nil
}

func displayOf(r *scim.Resource) string { return ingest.DisplayOf(r) }

// full runs a full reconciliation: read every user and group, apply them, and delete what the
// cache holds that the directory no longer has — only if the read was complete.
func (p *pass) runFull(ctx context.Context, prev *watermark) error {
	wm := &watermark{Fingerprint: p.s.fingerprint(), LastFull: time.Now().UTC(), Mode: TrackModifyTimestamp}
	cookie, err := p.s.syncCookie(ctx, p.conn)
	if err != nil {
		return err
	}
	if cookie != nil {
		wm.Mode, wm.UsersCookie, wm.GroupsCookie = TrackSyncrepl, cookie, cookie
	}
	if p.s.cfg.Dialect == DialectActiveDirectory {
		if err := p.adStart(ctx, wm); err != nil {
			return err
		}
	}
	p.sum.Mode = wm.Mode
	// Users are compared with their stored source records, fetched a batch at a time as they
	// are read (srchash.go). Without cached users there are none: skip the look-ups.
	users, err := p.s.store.Count(ctx, scim.UserType)
	if err != nil {
		return err
	}
	p.noSources = users == 0
	if p.noSources {
		if err := p.beginLoad(ctx); err != nil {
			return err
		}
	}
	readErr := p.readAll(ctx)
	if readErr != nil {
		if !errors.Is(readErr, errPartial) {
			return readErr
		}
		p.sum.Partial = readErr.Error()
	}
	if err := p.resolvePending(ctx); err != nil {
		return err
	}
	// What follows reads what the pass wrote.
	if err := p.endLoad(ctx); err != nil {
		return err
	}
	if p.sum.Partial == "" {
		if err := p.verifyTentative(ctx); err != nil {
			return err
		}
	}
	if p.sum.Partial != "" {
		// Keep what was read, delete nothing, keep the old watermark (invariant 4).
		p.s.log.Warn("full read was partial: applying what was read, deleting nothing", "pass", p.id, "why", p.sum.Partial)
		if err := p.finish(ctx, nil, false); err != nil {
			return err
		}
		return readErr
	}
	// Every reference is resolved: only which ids were read matters now.
	p.ents.dropLookups()
	if err := p.findDeletions(ctx); err != nil {
		return err
	}
	wm.MaxModify = maxTimestamp(prev, p.maxMod)
	return p.finish(ctx, wm, true)
}

func maxTimestamp(prev *watermark, seen string) string {
	if prev != nil && prev.MaxModify > seen {
		return prev.MaxModify
	}
	return seen
}

// close waits for the background writer and releases the bulk-read and lookup connections.
func (p *pass) close() {
	_ = p.drain() // on error paths only; the pass already reports its first error
	if p.load != nil {
		p.load.Abort()
		p.load = nil
	}
	p.spill.close()
	if p.wire != nil {
		p.wire.Close()
	}
	if p.side != nil {
		p.side.Close()
		p.side = nil
	}
}

// lookupConn returns the connection for the single-entry searches a pass makes from inside a
// stream it reads on p.conn: a member or manager DN to resolve, a range of a big group's
// members, an object to re-read by GUID. On p.conn they would deadlock: go-ldap's reader
// blocks delivering the stream's results once the stream's buffer is full, and the lookup's
// answer waits behind them. Dialed on first use, closed with the pass.
func (p *pass) lookupConn(ctx context.Context) (ldapConn, error) {
	if p.side == nil {
		c, err := p.s.dial(ctx)
		if err != nil {
			return nil, err
		}
		p.side = c
	}
	return p.side, nil
}

// findDeletions marks for deletion every cached resource the complete read did not see.
func (p *pass) findDeletions(ctx context.Context) error {
	mark := func(t scim.ResourceType) func(id string) error {
		return func(id string) error {
			if !p.wasRead(id) {
				p.core.Dels.Mark(id, t)
			}
			return nil
		}
	}
	if p.usersScanned {
		// decideUserHolds listed them once every user was read.
		for _, id := range p.unreadUsers {
			if err := mark(scim.UserType)(id); err != nil {
				return err
			}
		}
		p.unreadUsers = nil
	} else if err := p.s.store.ForEachOwned(ctx, scim.UserType, "", mark(scim.UserType)); err != nil {
		return err
	}
	return p.s.store.ForEachOwned(ctx, scim.GroupType, "", mark(scim.GroupType))
}
