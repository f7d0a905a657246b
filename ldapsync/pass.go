package ldapsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/dn"
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

	byDN          map[string]cache.Ref // normalized DN → entries read in this pass
	byUID         map[string]cache.Ref // case-folded uid → users read in this pass (posixGroup memberUid)
	seen          map[string]struct{}  // ids read in this pass
	batch         []*scim.Resource
	pending       []pendingResource            // entries waiting for references to entries read later
	deact         []*scim.Resource             // users this pass would deactivate; applied or held at the end
	deletes       map[string]scim.ResourceType // ids this pass would delete
	maxMod        string                       // highest modifyTimestamp seen
	tentative     map[string]cache.Ref         // DN key → what the cache gave before the read confirmed it
	usedTentative bool                         // the resource being resolved used a tentative reference
	recheck       []recheck                    // resources that used tentative references
	src           map[string]srcRecord         // stored source records of users (full passes)
	mgrChecks     []mgrCheck                   // skipped users whose manager is confirmed after the read
	batchSrc      map[string][]byte            // source hashes of the resources queued since the last flush
	vgIn          map[string][]scim.Member     // virtual group id → users this pass found matching
	vgOut         map[string][]string          // virtual group id → users this pass found not matching
	apply         *applier                     // background cache writer, started on the first flush
	now           time.Time                    // the pass's start, for accountExpires
	wire          *ldapwire.Conn               // bulk-read connection, dialed on first use
}

// recheck names a resource resolved with tentative references, and its references.
type recheck struct {
	id     string
	typ    scim.ResourceType
	rf     refs
	digest [16]byte
}

// pendingResource is a resource waiting for its references, kept encoded: on a first sync about
// half the users name a manager that is read later, and a decoded resource is several times
// larger than its JSON.
type pendingResource struct {
	raw    []byte
	rf     refs
	digest [16]byte
}

func (s *Syncer) newPass(conn ldapConn, full bool) *pass {
	kind := "delta"
	if full {
		kind = "full"
	}
	id := kind + "-" + time.Now().UTC().Format("20060102T150405.000Z")
	p := &pass{
		s: s, conn: conn, full: full, id: id, now: time.Now(),
		sum:       Summary{Pass: id, Full: full},
		byDN:      map[string]cache.Ref{},
		byUID:     map[string]cache.Ref{},
		seen:      map[string]struct{}{},
		deletes:   map[string]scim.ResourceType{},
		vgIn:      map[string][]scim.Member{},
		vgOut:     map[string][]string{},
		tentative: map[string]cache.Ref{},
		batchSrc:  map[string][]byte{},
	}
	// Virtual groups come from rules, not the directory: never reconcile them away.
	for _, id := range s.rules.virtualIDs() {
		p.seen[id] = struct{}{}
	}
	return p
}

func hash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:8]
}

// idOf returns the entry's immutable id: entryUUID (OpenLDAP, 389-ds) or objectGUID rendered as
// a canonical UUID (Active Directory; the first three groups are little-endian).
func (s *Syncer) idOf(e attrGetter) (string, bool) {
	if s.cfg.Dialect == DialectActiveDirectory {
		v := e.Get("objectGUID")
		if len(v) == 0 || len(v[0]) != 16 {
			return "", false
		}
		return guidString(v[0]), true
	}
	v := e.Get("entryUUID")
	if len(v) == 0 || len(v[0]) == 0 {
		return "", false
	}
	return strings.ToLower(string(v[0])), true
}

func guidString(g []byte) string {
	b := []byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// userAttrs and groupAttrs are the LDAP attributes a pass asks for.
func (s *Syncer) userAttrs() []string  { return s.uattrs }
func (s *Syncer) groupAttrs() []string { return s.gattrs }

func dedupFold(in []string) []string {
	var out []string
	for _, a := range in {
		if !slices.ContainsFunc(out, func(b string) bool { return strings.EqualFold(a, b) }) {
			out = append(out, a)
		}
	}
	return out
}

// read handles one entry of either type: it normalizes it, records it for reference
// resolution and queues it for the cache.
func (p *pass) read(ctx context.Context, typ scim.ResourceType, entryDN string, e attrGetter) error {
	p.sum.Read++
	if p.s.progress != nil && p.sum.Read%1000 == 0 {
		p.s.progress(string(typ), p.sum.Read)
	}
	if ts := e.Get("modifyTimestamp"); len(ts) > 0 && string(ts[0]) > p.maxMod {
		p.maxMod = string(ts[0])
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
		if p.src != nil && p.unchanged(id, entryDN, e, digest) {
			return nil
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
	if !rf.empty() {
		p.usedTentative = false
		ok, mgr, err := p.resolve(ctx, r, rf, !p.full)
		if ok && p.usedTentative {
			p.recheck = append(p.recheck, recheck{id: id, typ: typ, rf: rf, digest: digest})
		}
		if err != nil {
			return err
		}
		if !ok {
			enc, err := json.Marshal(r)
			if err != nil {
				return err
			}
			p.pending = append(p.pending, pendingResource{enc, rf, digest})
			return nil
		}
		p.setSource(r, digest, mgr)
	} else {
		p.setSource(r, digest, cache.Ref{})
	}
	return p.queue(ctx, r)
}

// remember records an entry read in this pass, for reference resolution and reconciliation.
func (p *pass) remember(ref cache.Ref, entryDN string, e attrGetter) {
	p.byDN[dn.Normalize(entryDN)] = ref
	p.seen[ref.ID] = struct{}{}
	delete(p.deletes, ref.ID)
	if ref.Type == scim.UserType {
		for _, u := range e.Get("uid") {
			p.byUID[strings.ToLower(str(u))] = ref
		}
	}
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

// resolve turns r's DN references into ids. Until final, a reference to an entry not read yet
// makes it return false (the caller retries after the read); when final, references that still
// do not resolve are dropped: a DN that names no entry is not a member or manager.
func (p *pass) resolve(ctx context.Context, r *scim.Resource, rf refs, final bool) (ok bool, mgr cache.Ref, err error) {
	if rf.manager != "" {
		ref, ok, err := p.lookupDN(ctx, rf.manager, final)
		if err != nil || (!ok && !final) {
			return false, cache.Ref{}, err
		}
		mgr = ref
		if ok && ref.Type == scim.UserType && ref.ID != r.ID {
			ext, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
			if ext == nil {
				ext = map[string]any{}
				r.Attributes[scim.SchemaEnterpriseUser] = ext
			}
			ext["manager"] = map[string]any{"value": ref.ID, "displayName": ref.Display}
		}
	}
	if r.Type != scim.GroupType {
		return true, mgr, nil
	}
	members := make(map[string]scim.Member, len(rf.memberDNs)+len(rf.memberUIDs))
	for _, d := range rf.memberDNs {
		ref, ok, err := p.lookupDN(ctx, d, final)
		if err != nil || (!ok && !final) {
			return false, mgr, err
		}
		if ok && ref.ID != r.ID {
			members[ref.ID] = scim.Member{Value: ref.ID, Type: ref.Type, Display: ref.Display}
		}
	}
	for _, u := range rf.memberUIDs {
		ref, ok, err := p.lookupUID(ctx, u, final)
		if err != nil || (!ok && !final) {
			return false, mgr, err
		}
		if ok {
			members[ref.ID] = scim.Member{Value: ref.ID, Type: ref.Type, Display: ref.Display}
		}
	}
	r.Members = make([]scim.Member, 0, len(members))
	for _, m := range members {
		r.Members = append(r.Members, m)
	}
	slices.SortFunc(r.Members, func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
	return true, mgr, nil
}

// lookupDN finds the entry a DN names: first among entries read in this pass, then in the cache.
// In a full pass the cache's answer is tentative until the read is over (the entry may have gone,
// or its DN may now name another entry): it is recorded and checked by verifyTentative. A full
// pass whose read was complete does not ask the cache at the end: a DN it did not read names no
// entry.
func (p *pass) lookupDN(ctx context.Context, d string, final bool) (cache.Ref, bool, error) {
	key := dn.Normalize(d)
	if ref, ok := p.byDN[key]; ok {
		return ref, true, nil
	}
	if p.full && final && p.sum.Partial == "" {
		return cache.Ref{}, false, nil
	}
	ref, ok, err := p.s.store.ResolveDN(ctx, d)
	if err == nil && !ok && !p.full && p.s.cfg.Dialect == DialectActiveDirectory {
		ref, ok, err = p.adResolveDN(ctx, d)
	}
	if err != nil || !ok || !p.full || final {
		return ref, ok, err
	}
	p.tentative[key] = ref
	p.usedTentative = true
	return ref, true, nil
}

// verifyTentative re-resolves, once the read is complete, every resource that used a cached
// reference the read did not confirm, and queues those whose references changed.
func (p *pass) verifyTentative(ctx context.Context) error {
	var stale []recheck
	for _, rc := range p.recheck {
		keys := append([]string{rc.rf.manager}, rc.rf.memberDNs...)
		for _, d := range keys {
			if d == "" {
				continue
			}
			k := dn.Normalize(d)
			if t, ok := p.tentative[k]; ok && p.byDN[k] != t {
				stale = append(stale, rc)
				break
			}
		}
	}
	p.recheck, p.tentative = nil, nil
	stale = append(stale, p.staleManagers()...)
	if len(stale) == 0 {
		return nil
	}
	// The resources may still be in flight: write everything, then read them back.
	if err := p.flush(ctx); err != nil {
		return err
	}
	if err := p.drain(); err != nil {
		return err
	}
	for _, rc := range stale {
		r, err := p.s.store.Get(ctx, rc.typ, rc.id)
		if err != nil {
			return err
		}
		if ext, ok := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any); ok {
			delete(ext, "manager")
		}
		_, mgr, err := p.resolve(ctx, r, rc.rf, true)
		if err != nil {
			return err
		}
		p.setSource(r, rc.digest, mgr)
		if err := p.queue(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

func (p *pass) lookupUID(ctx context.Context, uid string, final bool) (cache.Ref, bool, error) {
	if ref, ok := p.byUID[strings.ToLower(uid)]; ok {
		return ref, true, nil
	}
	if p.full && (!final || p.sum.Partial == "") {
		return cache.Ref{}, false, nil
	}
	ids, err := p.s.store.Lookup(ctx, cache.IndexUserName, uid)
	if err != nil || len(ids) != 1 {
		return cache.Ref{}, false, err
	}
	u, err := p.s.store.Get(ctx, scim.UserType, ids[0])
	if errors.Is(err, cache.ErrNotFound) {
		return cache.Ref{}, false, nil
	} else if err != nil {
		return cache.Ref{}, false, err
	}
	return cache.Ref{ID: u.ID, Type: scim.UserType, Display: u.DisplayName()}, true, nil
}

// queue adds a resolved resource to the batch. A user that the cache has active and the
// directory now shows inactive is set aside: deactivations count against the deletion
// threshold (DESIGN invariant 5) and are decided at the end of the pass.
func (p *pass) queue(ctx context.Context, r *scim.Resource) error {
	p.evalRules(r)
	if r.Type == scim.UserType && !r.Active() {
		old, err := p.s.store.Get(ctx, scim.UserType, r.ID)
		switch {
		case err == nil && old.Active():
			p.deact = append(p.deact, r)
			return nil
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			return err
		}
	}
	p.batch = append(p.batch, r)
	if len(p.batch) >= flushSize {
		return p.flush(ctx)
	}
	return nil
}

func (p *pass) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	if p.s.progress != nil {
		p.s.progress("apply", p.sum.Read)
	}
	if p.apply == nil {
		p.apply = startApplier(ctx, p.s.store)
	}
	err := p.apply.send(cache.Batch{Source: Source, Pass: p.id, Upserts: p.batch, SourceHashes: p.batchSrc})
	p.batch = make([]*scim.Resource, 0, flushSize)
	p.batchSrc = map[string][]byte{}
	return err
}

// drain waits until every flushed batch is in the cache and adds their results to the summary.
func (p *pass) drain() error {
	if p.apply == nil {
		return nil
	}
	res, err := p.apply.wait()
	p.apply = nil
	p.sum.add(res)
	return err
}

// applier writes batches to the cache in order on its own goroutine, so that reading and
// decoding the directory overlaps with writing the cache.
type applier struct {
	ch   chan cache.Batch
	done chan struct{}
	res  cache.Result
	err  error // set before done is closed
}

func startApplier(ctx context.Context, store Store) *applier {
	a := &applier{ch: make(chan cache.Batch, 1), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for batch := range a.ch {
			if a.err != nil {
				continue // keep draining so send never blocks forever
			}
			res, err := store.Apply(ctx, batch)
			a.res.Created += res.Created
			a.res.Updated += res.Updated
			a.res.Deactivated += res.Deactivated
			a.res.Deleted += res.Deleted
			a.res.Unchanged += res.Unchanged
			a.err = err
		}
	}()
	return a
}

func (a *applier) send(batch cache.Batch) error {
	select {
	case <-a.done:
		return a.err
	default:
	}
	a.ch <- batch
	return nil
}

func (a *applier) wait() (cache.Result, error) {
	close(a.ch)
	<-a.done
	return a.res, a.err
}

// resolvePending resolves every entry that waited for references, now that the read is over.
func (p *pass) resolvePending(ctx context.Context) error {
	pending := p.pending
	p.pending = nil
	for i, pr := range pending {
		pending[i].raw = nil
		r := &scim.Resource{}
		if err := json.Unmarshal(pr.raw, r); err != nil {
			return err
		}
		_, mgr, err := p.resolve(ctx, r, pr.rf, true)
		if err != nil {
			return err
		}
		p.setSource(r, pr.digest, mgr)
		if err := p.queue(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// finish decides deactivations and deletions against the threshold and applies the rest of the
// pass together with the watermark (nil: keep the old one) and the held-deletion set in one
// cache batch, so the watermark never runs ahead of the data (DESIGN invariant 2).
func (p *pass) finish(ctx context.Context, wm *watermark, replaceHolds bool) error {
	if err := p.drain(); err != nil {
		return err
	}
	total := 0
	for _, t := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		n, err := p.s.store.Count(ctx, t)
		if err != nil {
			return err
		}
		total += n
	}
	n := len(p.deletes) + len(p.deact)
	held := n > 0 && (n > p.s.safety.MaxDeletes || float64(n) > p.s.safety.MaxDeletePercent/100*float64(total))

	b := cache.Batch{Source: Source, Pass: p.id}
	old, err := p.s.store.Holds(ctx)
	if err != nil {
		return err
	}
	var holds []cache.Hold
	if !replaceHolds {
		// A delta pass keeps earlier holds, except for entries it has just read again.
		for _, h := range old {
			if _, seen := p.seen[h.ID]; !seen {
				if _, del := p.deletes[h.ID]; !del {
					holds = append(holds, h)
				}
			}
		}
	}
	if held {
		why := fmt.Sprintf("pass would delete or deactivate %d of %d resources (limit: %d or %g%%)",
			n, total, p.s.safety.MaxDeletes, p.s.safety.MaxDeletePercent)
		p.s.log.Error("holding deletions until an admin approves them (ldapscim deletes list / approve)",
			"pass", p.id, "deletes", len(p.deletes), "deactivations", len(p.deact), "total", total)
		now := time.Now().UTC()
		for id, typ := range p.deletes {
			h := cache.Hold{ID: id, Type: typ, Pass: p.id, Reason: holdDelete + ": " + why, HeldAt: now}
			if r, err := p.s.store.Get(ctx, typ, id); err == nil {
				h.DN, h.Name = r.DN, displayOf(r)
			}
			holds = append(holds, h)
		}
		for _, r := range p.deact {
			holds = append(holds, cache.Hold{ID: r.ID, Type: r.Type, DN: r.DN, Name: displayOf(r), Pass: p.id,
				Reason: holdDeactivate + ": " + why, HeldAt: now})
			// Apply every other change of the entry, but keep it active until approved, and do
			// not store its source hash: the next full pass must see the deactivation again.
			r.Attributes["active"] = true
			delete(p.batchSrc, r.ID)
			b.Upserts = append(b.Upserts, r)
		}
		p.sum.Held = n
	} else {
		b.Upserts = append(b.Upserts, p.deact...)
		for id := range p.deletes {
			b.Deletes = append(b.Deletes, id)
		}
		slices.Sort(b.Deletes)
	}
	b.Upserts = append(b.Upserts, p.batch...)
	b.SourceHashes = p.batchSrc
	vgs, err := p.virtualGroups(ctx)
	if err != nil {
		return err
	}
	b.Upserts = append(b.Upserts, vgs...)
	p.batch = nil
	if b.Upserts, err = pruneMembers(ctx, p.s.store, b.Upserts, b.Deletes); err != nil {
		return err
	}
	slices.SortFunc(holds, func(a, b cache.Hold) int { return strings.Compare(a.ID, b.ID) })
	if replaceHolds || !slices.EqualFunc(holds, old, func(a, b cache.Hold) bool { return a.ID == b.ID && a.Reason == b.Reason }) {
		if holds == nil {
			holds = []cache.Hold{}
		}
		b.Holds = &holds
	}
	if wm != nil {
		wm.LastPass = time.Now().UTC()
		raw, err := json.Marshal(wm)
		if err != nil {
			return err
		}
		b.Watermark = raw
	}
	if p.s.progress != nil {
		p.s.progress("apply", p.sum.Read)
	}
	res, err := p.s.store.Apply(ctx, b)
	p.sum.add(res)
	return err
}

// pruneMembers removes deleted resources from the groups that list them. A deleted entry is no
// longer a member even when its group was not re-read: without refint the group still names a
// DN that resolves to nothing, and with refint slapd rewrites the group without changing its
// entryCSN or modifyTimestamp, so no delta pass would ever show it.
func pruneMembers(ctx context.Context, store Store, upserts []*scim.Resource, deletes []string) ([]*scim.Resource, error) {
	if len(deletes) == 0 {
		return upserts, nil
	}
	gone := make(map[string]bool, len(deletes))
	for _, id := range deletes {
		gone[id] = true
	}
	queued := map[string]*scim.Resource{}
	for _, r := range upserts {
		if r.Type == scim.GroupType {
			queued[r.ID] = r
		}
	}
	for _, id := range deletes {
		groups, err := store.GroupsOf(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			if gone[g.ID] {
				continue
			}
			r := queued[g.ID]
			if r == nil {
				if r, err = store.Get(ctx, scim.GroupType, g.ID); errors.Is(err, cache.ErrNotFound) {
					continue
				} else if err != nil {
					return nil, err
				}
				queued[g.ID] = r
				upserts = append(upserts, r)
			}
			r.Members = slices.DeleteFunc(r.Members, func(m scim.Member) bool { return gone[m.Value] })
		}
	}
	return upserts, nil
}

// Reason prefixes of held changes.
const (
	holdDelete     = "delete"
	holdDeactivate = "deactivate"
)

func displayOf(r *scim.Resource) string {
	if d := r.DisplayName(); d != "" {
		return d
	}
	return r.UserName()
}

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
	if err := p.loadSources(ctx); err != nil {
		return err
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
	for _, t := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		err := p.s.store.ForEachID(ctx, t, func(id string) error {
			if _, ok := p.seen[id]; !ok {
				p.deletes[id] = t
			}
			return nil
		})
		if err != nil {
			return err
		}
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

// readAll reads users, then groups, with paged searches.
func (p *pass) readAll(ctx context.Context) error {
	if err := p.readType(ctx, scim.UserType, p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter, p.s.userAttrs()); err != nil {
		return err
	}
	// Managers are users: every user is read now, so resolve them before reading groups.
	if err := p.resolvePending(ctx); err != nil {
		return err
	}
	return p.readType(ctx, scim.GroupType, p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter, p.s.groupAttrs())
}

func (p *pass) readType(ctx context.Context, typ scim.ResourceType, base, filter string, attrs []string) error {
	var err error
	if p.s.cfg.BindDN == "" && strings.HasPrefix(p.s.cfg.URL, "ldapi:") {
		// SASL EXTERNAL needs go-ldap; ldapwire only does simple binds.
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, p.s.searchControls())
		err = p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
			return p.read(ctx, typ, e.DN, ldapEntry{e})
		})
	} else {
		err = p.wireSearch(ctx, typ, base, filter, attrs)
	}
	if err != nil {
		return fmt.Errorf("reading %ss under %q: %w", strings.ToLower(string(typ)), base, err)
	}
	return nil
}

// wireSearch is the bulk read: a paged search through ldapwire, which decodes entries without
// building go-ldap's packet trees (most of a full pass's time is decoding).
func (p *pass) wireSearch(ctx context.Context, typ scim.ResourceType, base, filter string, attrs []string) error {
	if p.wire == nil {
		tlsCfg, err := p.s.cfg.tlsConfig()
		if err != nil {
			return err
		}
		c, err := ldapwire.Dial(ctx, ldapwire.DialOptions{URL: p.s.cfg.URL, TLSConfig: tlsCfg, StartTLS: p.s.cfg.StartTLS, Timeout: p.s.cfg.Timeout.D()})
		if err != nil {
			return classify(fmt.Errorf("connecting to %s: %w", redactURL(p.s.cfg.URL), err))
		}
		if p.s.cfg.BindDN != "" {
			if err := c.Bind(ctx, p.s.cfg.BindDN, p.s.cfg.BindPassword.Reveal()); err != nil {
				c.Close()
				return fmt.Errorf("binding as %q: %w", p.s.cfg.BindDN, err)
			}
		}
		p.wire = c
	}
	res, err := p.wire.Search(ctx, ldapwire.SearchRequest{
		BaseDN: base, Scope: ldap.ScopeWholeSubtree, Filter: filter, Attributes: attrs, PageSize: p.s.cfg.PageSize,
		Controls: p.s.searchControls(),
	}, func(e *ldapwire.Entry) error {
		return p.read(ctx, typ, string(e.DN), e)
	})
	if err != nil {
		var pe *partialError
		if errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if errors.Is(err, ldapwire.ErrPagingIgnored) {
			return &partialError{why: "the server ignored the paging control"}
		}
		var le *ldap.Error
		if errors.As(err, &le) {
			return classify(err)
		}
		return err
	}
	if len(res.Referrals) > 0 {
		return &partialError{why: fmt.Sprintf("the server returned %d referral(s), e.g. %s", len(res.Referrals), res.Referrals[0])}
	}
	return nil
}

// close waits for the background writer and releases the bulk-read connection.
func (p *pass) close() {
	_ = p.drain() // on error paths only; the pass already reports its first error
	if p.wire != nil {
		p.wire.Close()
	}
}
