package push

// Target reconciliation: compare what a target holds with what push would send it, and
// correct the drift. The worker trusts the push state (what it last sent); reconciliation reads
// the target itself, so it finds what changed there behind ldapscim's back (a user deleted by
// hand, a title edited, a member removed), and it rebuilds push state that a new [ha] leader's
// cache lacks.
//
//   - Read: the target's Users, then Groups, page by page (RFC 9865 cursors when the target's
//     ServiceProviderConfig offers them, else startIndex/count). A page is matched and compared
//     as soon as it arrives and then dropped: what stays is compact (target id → cache id from
//     the push state, the cache ids found, and the drifts), never the target's documents.
//   - Match: a target resource is ours when the push state names its target id; else when its
//     externalId, then its userName (groups: displayName), names exactly one cache resource that
//     the target holds under no other id (it is adopted, as push adopts on create).
//   - Classify: missing (in scope, absent at the target: create), differing (what push would
//     send differs from what the target holds: update; for groups also members added or
//     removed there), extra (ours, no longer in scope: deactivate or delete per deprovision).
//     A target resource that is not ours is counted as unmanaged and never touched.
//   - Apply (only on request, only after the whole read succeeded): extras above the [safety]
//     threshold (ingest.Threshold, per type) are held, none of them applied. For the rest the
//     push state is first set to what the target really holds, then the push batch brings each
//     resource in line, exactly as a delivery does: the same requests, retries, dead letters and
//     push state, so the next push finds nothing to send.
//
// The worker keeps pushing while a reconciliation reads: the read of a big target can take
// hours, and changes must not wait for it. Whatever the worker records for a resource meanwhile
// (a delivery, a dead letter, a group's member chunks) marks that resource; the drifts of
// marked resources are left out of the report and of the correction (counted as superseded:
// the target was compared with a push state that changed under it, and push's own delivery
// is newer than the comparison). The correction then runs under the target's work lock, which
// the worker holds for each batch, so the two never write beside each other: the marks are
// taken under that lock, and no push runs between them and the correction. One
// reconciliation runs at a time per target.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Drift kinds.
const (
	DriftMissing   = "missing"
	DriftDiffering = "differing"
	DriftExtra     = "extra"
)

// ReconcileOptions are how Target.Reconcile runs.
type ReconcileOptions struct {
	// Apply corrects the drift; without it nothing is written or sent but reads.
	Apply bool
	// Threshold bounds the extras one reconciliation deactivates or deletes, per type, out of
	// the resources of that type the target holds for us ([safety] max_deletes and
	// max_delete_percent). Above it every extra of that type is held.
	Threshold ingest.Threshold
	// MaxListed bounds ReconcileReport.Drifts (0: 100).
	MaxListed int
	// PageSize is the count of each list request (0: 100).
	PageSize int
	// SetCursor, with Apply, moves the target's journal cursor up to the journal head read
	// before the comparison when it is behind it: the changes up to there are in the
	// reconciled target, and those after it are pushed as usual. Not when extras were held:
	// their deprovisioning is then left to the journal.
	SetCursor bool

	why string // for Status: "scheduled", "catch-up"; "" is "requested"
}

// Drift is one resource whose state at the target is not what push would make it.
type Drift struct {
	Kind     string            `json:"kind"`   // missing, differing, extra
	Action   string            `json:"action"` // create, update, deactivate, delete
	Type     scim.ResourceType `json:"type"`
	ID       string            `json:"id,omitempty"`       // the cache's id; "" when the cache no longer has it
	TargetID string            `json:"targetId,omitempty"` // the target's id; "" when missing
	Name     string            `json:"name"`
	// Attrs are the attributes that differ (differing).
	Attrs []string `json:"attrs,omitempty"`
	// MembersAdded and MembersRemoved are a group's member changes to make at the target.
	MembersAdded   int `json:"membersAdded,omitempty"`
	MembersRemoved int `json:"membersRemoved,omitempty"`
	// Held is set on an extra the threshold held.
	Held bool `json:"held,omitempty"`
}

// ReconcileReport is what a reconciliation found, and did with Apply.
type ReconcileReport struct {
	Target  string `json:"target"`
	Applied bool   `json:"applied"`
	// JournalSeq is the journal head when the comparison started: the cache as compared
	// includes every change up to it.
	JournalSeq   uint64 `json:"journalSeq"`
	TargetUsers  int    `json:"targetUsers"`
	TargetGroups int    `json:"targetGroups"`
	Missing      int    `json:"missing"`
	Differing    int    `json:"differing"`
	Extra        int    `json:"extra"`
	// Held counts the extras the threshold held; HeldReason says which threshold.
	Held       int    `json:"held"`
	HeldReason string `json:"heldReason,omitempty"`
	// Adopted counts target resources matched by externalId, userName or displayName that the
	// push state did not name (a differing one is also counted in Differing).
	Adopted int `json:"adopted"`
	// Unmanaged counts target resources that ldapscim did not create or adopt: never touched.
	Unmanaged int `json:"unmanaged"`
	// Drifts lists the drifts, missing first, then differing, then extra (at most
	// ReconcileOptions.MaxListed; Unlisted says how many more there are).
	Drifts   []Drift `json:"drifts"`
	Unlisted int     `json:"unlisted,omitempty"`
	// Requests counts every request sent to the target, reads included.
	Requests int64 `json:"requests"`
	// Failed counts the corrections that became dead letters (Apply).
	Failed int64 `json:"failed,omitempty"`
	// Superseded counts the drifts (and adoptions) left out because the worker pushed those
	// resources while the target was read: their push state changed under the comparison.
	Superseded int `json:"superseded,omitempty"`
	// CursorSetTo is where SetCursor moved the cursor; 0 when it did not.
	CursorSetTo uint64 `json:"cursorSetTo,omitempty"`
	Took        string `json:"took"`
}

// Total is the number of drifts: missing, differing and extra.
func (r *ReconcileReport) Total() int { return r.Missing + r.Differing + r.Extra }

// driftItem is a drift and what to write before the batch corrects it.
type driftItem struct {
	Drift
	prep *cache.PushOutcome
}

// recon is one reconciliation's compact state.
type recon struct {
	t    *Target
	b    *batch
	opts ReconcileOptions
	rep  *ReconcileReport

	userByTID, groupByTID       map[string]string // target id → cache id, from the push state
	managedUsers, managedGroups int
	claimedUsers, claimedGroups map[string]bool // cache ids found at the target
	missingUsers                map[string]bool
	adopted                     map[string]string // cache id → target id of adoptions, until apply writes them
	items                       []driftItem
	adopts                      []cache.PushOutcome // adopted without drift: state only
	cursor                      *bool               // nil until known: the target pages by cursor
}

// Reconcile compares the target with the cache and, with opts.Apply, corrects the drift. It
// fails, having corrected nothing, when the read of the target fails (after the retry policy's
// attempts for 429, 5xx and dropped connections).
func (t *Target) Reconcile(ctx context.Context, opts ReconcileOptions) (*ReconcileReport, error) {
	t.reconciling.Lock()
	defer t.reconciling.Unlock()
	t.watchTouched(true)
	defer t.watchTouched(false)
	start := time.Now()
	sent0 := t.c.sent.Load()
	if opts.MaxListed <= 0 {
		opts.MaxListed = 100
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	r := &recon{t: t, b: &batch{t: t}, opts: opts, rep: &ReconcileReport{Target: t.cfg.Name, Drifts: []Drift{}},
		userByTID: map[string]string{}, groupByTID: map[string]string{},
		claimedUsers: map[string]bool{}, claimedGroups: map[string]bool{}, missingUsers: map[string]bool{},
		adopted: map[string]string{}}
	if opts.why == "" {
		opts.why = "requested"
	}
	err := r.compare(ctx)
	r.rep.Requests = t.c.sent.Load() - sent0
	if err != nil {
		r.rep.Took = time.Since(start).Round(time.Millisecond).String()
		t.noteReconcile(opts.why, nil, err)
		return r.rep, err
	}
	if afterCompare != nil {
		afterCompare()
	}
	if opts.Apply {
		t.work.Lock()
		defer t.work.Unlock()
	}
	r.dropTouched(t.watchTouched(false))
	r.hold()
	r.report()
	if opts.Apply {
		err = r.apply(ctx)
		r.rep.Applied = err == nil
	}
	r.rep.Requests = t.c.sent.Load() - sent0
	r.rep.Took = time.Since(start).Round(time.Millisecond).String()
	t.noteReconcile(opts.why, r.rep, err)
	t.log.Info("reconciled", "why", opts.why, "apply", opts.Apply, "missing", r.rep.Missing, "differing", r.rep.Differing,
		"extra", r.rep.Extra, "held", r.rep.Held, "adopted", r.rep.Adopted, "unmanaged", r.rep.Unmanaged,
		"failed", r.rep.Failed, "requests", r.rep.Requests, "took", r.rep.Took)
	return r.rep, err
}

// compare reads the target and the cache and records the drift.
func (r *recon) compare(ctx context.Context) error {
	t := r.t
	head, err := t.st.JournalHead(ctx)
	if err != nil {
		return wrapStore("journal head", err)
	}
	r.rep.JournalSeq = head
	err = t.st.ForEachPushRef(ctx, t.cfg.Name, func(p cache.PushRef) error {
		if p.TargetID == "" {
			return nil
		}
		if p.Type == scim.GroupType {
			r.groupByTID[p.TargetID] = p.ID
			r.managedGroups++
		} else {
			r.userByTID[p.TargetID] = p.ID
			r.managedUsers++
		}
		return nil
	})
	if err != nil {
		return wrapStore("push state", err)
	}
	if err := r.b.resolveSourceGroups(ctx); err != nil {
		return err
	}
	rctx := readOnly(ctx) // reads may go out on a replica that does not lead (a dry run)
	if err := r.readAll(rctx, "/Users", r.userPage); err != nil {
		return err
	}
	if err := r.missingUsersOf(ctx); err != nil {
		return err
	}
	if !t.cfg.Groups {
		return nil
	}
	if err := r.readAll(rctx, "/Groups", r.groupPage); err != nil {
		return err
	}
	return r.missingGroupsOf(ctx)
}

// listPage is a page of a SCIM list response.
type listPage struct {
	TotalResults int        `json:"totalResults"`
	StartIndex   int        `json:"startIndex"`
	Resources    []document `json:"Resources"`
	NextCursor   string     `json:"nextCursor"`
}

// readAll pages through endpoint and hands each page to fn.
func (r *recon) readAll(ctx context.Context, endpoint string, fn func(context.Context, []document) error) error {
	if r.cursor == nil {
		c := r.pagesByCursor(ctx)
		r.cursor = &c
	}
	n := strconv.Itoa(r.opts.PageSize)
	start, cur, firstID := 1, "", ""
	seen := map[string]bool{}
	for {
		path := endpoint + "?count=" + n + "&startIndex=" + strconv.Itoa(start)
		if *r.cursor {
			path = endpoint + "?count=" + n + "&cursor=" + url.QueryEscape(cur)
		}
		resp, err := r.t.read(ctx, path)
		if err != nil {
			return fmt.Errorf("reconcile %s: reading %s: %w", r.t.cfg.Name, endpoint, err)
		}
		var page listPage
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return fmt.Errorf("reconcile %s: reading %s: the target's list response is not SCIM JSON: %w", r.t.cfg.Name, endpoint, err)
		}
		if err := fn(ctx, page.Resources); err != nil {
			return err
		}
		if *r.cursor {
			if page.NextCursor == "" || len(page.Resources) == 0 {
				return nil
			}
			if seen[page.NextCursor] {
				return fmt.Errorf("reconcile %s: reading %s: the target gave the same cursor twice", r.t.cfg.Name, endpoint)
			}
			seen[page.NextCursor], cur = true, page.NextCursor
			continue
		}
		if len(page.Resources) == 0 {
			return nil
		}
		// A target that ignores startIndex would hand out its first page forever.
		first, _ := page.Resources[0]["id"].(string)
		if start > 1 && first != "" && first == firstID {
			return fmt.Errorf("reconcile %s: reading %s: the target answered startIndex=%d with its first page again", r.t.cfg.Name, endpoint, start)
		}
		if start == 1 {
			firstID = first
		}
		start += len(page.Resources)
		switch {
		case page.TotalResults > 0 && start > page.TotalResults:
			return nil
		case page.TotalResults <= 0 && len(page.Resources) < r.opts.PageSize:
			return nil // no totalResults: a short page is the last
		}
	}
}

// pagesByCursor reports whether the target's ServiceProviderConfig offers RFC 9865 cursor
// pagination. A target without one, or one that fails to answer, pages by index.
func (r *recon) pagesByCursor(ctx context.Context) bool {
	resp, err := r.t.read(ctx, "/ServiceProviderConfig")
	if err != nil {
		return false
	}
	var spc struct {
		Pagination struct {
			Cursor bool `json:"cursor"`
		} `json:"pagination"`
	}
	return json.Unmarshal(resp.body, &spc) == nil && spc.Pagination.Cursor
}

// read GETs path, retrying 429, 5xx and dropped connections under the target's retry policy
// (honouring Retry-After).
func (t *Target) read(ctx context.Context, path string) (*response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := t.c.do(ctx, "GET", path, nil)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var he *HTTPError
		var te *transportError
		retry := errors.As(err, &he) && (he.Status == 429 || he.Status >= 500) || errors.As(err, &te)
		if !retry || attempt >= t.cfg.MaxAttempts {
			return nil, err
		}
		t.log.Warn("reconcile: read failed; retrying", "path", shortPath(path), "attempt", attempt, "err", err)
		if err := sleep(ctx, t.cfg.RetryPolicy.delay(attempt, retryAfterOf(err))); err != nil {
			return nil, err
		}
	}
}

// targetItem is a target resource matched to a cache one, within one page.
type targetItem struct {
	cid, tid string
	doc      document // sanitized
}

// matchOne returns the one cache resource of typ that idx maps value to, or "" (none, or
// several).
func (r *recon) matchOne(ctx context.Context, typ scim.ResourceType, idx cache.Index, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	ids, err := r.t.st.Lookup(ctx, idx, value)
	if err != nil || len(ids) == 0 {
		return "", wrapStore("lookup", err)
	}
	rs, err := r.t.st.GetMany(ctx, typ, ids, false)
	if err != nil {
		return "", wrapStore("lookup", err)
	}
	if len(rs) != 1 {
		return "", nil
	}
	return rs[0].ID, nil
}

// match finds the cache resource of an unknown target resource d: by externalId, then by
// userName (users) or displayName (groups). One that the target holds under another id is no
// match: d is someone else's.
func (r *recon) match(ctx context.Context, typ scim.ResourceType, d document) (string, error) {
	name, idx := "userName", cache.IndexUserName
	if typ == scim.GroupType {
		name, idx = "displayName", cache.IndexDisplayName
	}
	ext, _ := d["externalId"].(string)
	cid, err := r.matchOne(ctx, typ, cache.IndexExternalID, ext)
	if err == nil && cid == "" {
		v, _ := d[name].(string)
		cid, err = r.matchOne(ctx, typ, idx, v)
	}
	if err != nil || cid == "" {
		return "", err
	}
	states, err := r.t.st.PushStates(ctx, r.t.cfg.Name, []string{cid})
	if err != nil {
		return "", wrapStore("push state", err)
	}
	if _, ok := states[cid]; ok {
		return "", nil
	}
	return cid, nil
}

// items matches a page: known target ids first, then the lookups.
func (r *recon) pageItems(ctx context.Context, typ scim.ResourceType, page []document) ([]targetItem, error) {
	byTID, claimed := r.userByTID, r.claimedUsers
	if typ == scim.GroupType {
		byTID, claimed = r.groupByTID, r.claimedGroups
	}
	var out []targetItem
	for _, d := range page {
		tid, _ := d["id"].(string)
		cid, ok := byTID[tid]
		if tid != "" && !ok {
			var err error
			if cid, err = r.match(ctx, typ, d); err != nil {
				return nil, err
			}
		}
		if tid == "" || cid == "" || claimed[cid] {
			r.rep.Unmanaged++
			continue
		}
		claimed[cid] = true
		out = append(out, targetItem{cid: cid, tid: tid, doc: sanitize(d, typ == scim.GroupType)})
	}
	return out, nil
}

func (r *recon) userPage(ctx context.Context, page []document) error {
	t := r.t
	r.rep.TargetUsers += len(page)
	items, err := r.pageItems(ctx, scim.UserType, page)
	if err != nil || len(items) == 0 {
		return err
	}
	cids := make([]string, len(items))
	for i, it := range items {
		cids[i] = it.cid
	}
	rs, err := t.st.GetMany(ctx, scim.UserType, cids, false)
	if err != nil {
		return wrapStore("users", err)
	}
	byID := make(map[string]*scim.Resource, len(rs))
	for _, u := range rs {
		byID[u.ID] = u
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, cids)
	if err != nil {
		return wrapStore("push state", err)
	}
	var graph map[string][]string
	if len(r.b.srcGroups) > 0 {
		if graph, err = r.b.parents(ctx, cids); err != nil {
			return err
		}
	}
	for _, it := range items {
		u := byID[it.cid]
		st, has := states[it.cid]
		want := u != nil && u.Active() && r.b.inScope(u, graph)
		active := it.doc["active"] != false
		switch {
		case want:
			doc, err := t.userDocument(ctx, u)
			if err != nil {
				return err
			}
			hash, raw := doc.hash()
			var sent document
			if has && st.Hash != hash {
				sent = decodeDoc(st.Sent) // what push sent last, if it differs from what it would send
			}
			attrs := driftAttrs(doc, sent, it.doc)
			d := Drift{Kind: DriftDiffering, Action: "update", Type: scim.UserType, ID: it.cid, TargetID: it.tid, Name: u.UserName(), Attrs: attrs}
			if !has {
				r.rep.Adopted++
				r.adopted[it.cid] = it.tid
				if len(attrs) == 0 {
					if keepManager(doc, u, it.doc) {
						hash, raw = doc.hash()
					}
					r.adopts = append(r.adopts, adoptOutcome(it, &cache.PushState{Type: scim.UserType, TargetID: it.tid, Hash: hash, Sent: raw, Active: true}))
					continue
				}
			}
			if len(attrs) > 0 {
				r.add(d, targetState(scim.UserType, it, doc, sent, active, st.DeleteAt), !has)
			}
		case !has:
			r.rep.Unmanaged++ // matched by name, but not ours and not in scope: never touched
		default:
			action := ""
			switch {
			case t.cfg.Deprovision == Delete && t.prof.deletesUsers:
				action = "delete"
			case active:
				action = "deactivate"
			}
			if action == "" {
				continue // deactivated, as push left it
			}
			name, _ := it.doc["userName"].(string)
			sent := decodeDoc(st.Sent)
			r.add(Drift{Kind: DriftExtra, Action: action, Type: scim.UserType, ID: it.cid, TargetID: it.tid, Name: name},
				targetState(scim.UserType, it, sent, sent, active, st.DeleteAt), false)
		}
	}
	return nil
}

// add records a drift with the push state to write before correcting it (nil: none).
func (r *recon) add(d Drift, prep *cache.PushState, adopt bool) {
	it := driftItem{Drift: d}
	if prep != nil {
		out := cache.PushOutcome{ID: d.ID, State: prep, KeepDeadLetter: true}
		if adopt {
			out.Audit = []cache.PushAudit{{Time: time.Now(), Op: "adopt", TargetID: d.TargetID}}
		}
		it.prep = &out
	}
	r.items = append(r.items, it)
}

func adoptOutcome(it targetItem, st *cache.PushState) cache.PushOutcome {
	return cache.PushOutcome{ID: it.cid, State: st, KeepDeadLetter: true,
		Audit: []cache.PushAudit{{Time: time.Now(), Op: "adopt", TargetID: it.tid}}}
}

// keepManager completes the document of an adopted user whose manager the push state does
// not name yet (an adoption earlier in this reconciliation) with the manager the target holds,
// which the comparison accepted: the next push then finds the user unchanged. It reports
// whether it changed doc.
func keepManager(doc document, u *scim.Resource, have document) bool {
	if managerOf(u) == "" {
		return false
	}
	ext, _ := doc[scim.SchemaEnterpriseUser].(map[string]any)
	hext, _ := have[scim.SchemaEnterpriseUser].(map[string]any)
	m, _ := hext["manager"].(map[string]any)
	v, _ := m["value"].(string)
	if ext == nil || ext["manager"] != nil || v == "" {
		return false
	}
	ext["manager"] = map[string]any{"value": v}
	return true
}

// targetState is the push state that says what the target really holds of a resource: the
// target's values of the attributes push manages (want's and those last sent). A batch then
// sends what differs from it.
func targetState(typ scim.ResourceType, it targetItem, want, sent document, active bool, deleteAt time.Time) *cache.PushState {
	have := project(it.doc, want, sent)
	st := &cache.PushState{Type: typ, TargetID: it.tid, Active: active, DeleteAt: deleteAt}
	if typ == scim.UserType {
		have["active"] = active
		st.Hash, st.Sent = have.hash()
	} else {
		// An empty hash makes the delivery read the group's members from the target.
		_, st.Sent = have.hash()
		st.Active = true
	}
	return st
}

// missingUsersOf lists the users in scope that the target does not hold.
func (r *recon) missingUsersOf(ctx context.Context) error {
	return r.forEachCached(ctx, scim.UserType, r.claimedUsers, func(rs []*scim.Resource, states map[string]cache.PushState) error {
		var graph map[string][]string
		if len(r.b.srcGroups) > 0 {
			ids := make([]string, len(rs))
			for i, u := range rs {
				ids[i] = u.ID
			}
			var err error
			if graph, err = r.b.parents(ctx, ids); err != nil {
				return err
			}
		}
		for _, u := range rs {
			if r.claimedUsers[u.ID] || !u.Active() || !r.b.inScope(u, graph) {
				continue
			}
			r.missingUsers[u.ID] = true
			r.addMissing(scim.UserType, u.ID, u.UserName(), states)
		}
		return nil
	})
}

// addMissing records a missing resource; a push state naming a target id the target no
// longer has is dropped before the batch creates it again.
func (r *recon) addMissing(typ scim.ResourceType, id, name string, states map[string]cache.PushState) {
	it := driftItem{Drift: Drift{Kind: DriftMissing, Action: "create", Type: typ, ID: id, Name: name}}
	if _, stale := states[id]; stale {
		it.prep = &cache.PushOutcome{ID: id, DropState: true, KeepDeadLetter: true}
	}
	r.items = append(r.items, it)
}

// forEachCached calls fn with the cache's resources of typ that are not in found (the target
// has them), 500 at a time, and their push states. A target in line with the cache costs a
// scan of the cache's ids, no resource read.
func (r *recon) forEachCached(ctx context.Context, typ scim.ResourceType, found map[string]bool, fn func([]*scim.Resource, map[string]cache.PushState) error) error {
	t := r.t
	var ids []string
	err := t.st.ForEachID(ctx, typ, func(id string) error {
		if !found[id] {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return wrapStore("ids", err)
	}
	for start := 0; start < len(ids); start += 500 {
		part := ids[start:min(start+500, len(ids))]
		rs, err := t.st.GetMany(ctx, typ, part, false)
		if err != nil {
			return wrapStore("resources", err)
		}
		states, err := t.st.PushStates(ctx, t.cfg.Name, part)
		if err != nil {
			return wrapStore("push state", err)
		}
		if err := fn(rs, states); err != nil {
			return err
		}
	}
	return nil
}

func (r *recon) groupPage(ctx context.Context, page []document) error {
	t := r.t
	r.rep.TargetGroups += len(page)
	items, err := r.pageItems(ctx, scim.GroupType, page)
	if err != nil || len(items) == 0 {
		return err
	}
	cids := make([]string, len(items))
	for i, it := range items {
		cids[i] = it.cid
	}
	rs, err := t.st.GetMany(ctx, scim.GroupType, cids, false)
	if err != nil {
		return wrapStore("groups", err)
	}
	byID := make(map[string]*scim.Resource, len(rs))
	for _, g := range rs {
		byID[g.ID] = g
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, cids)
	if err != nil {
		return wrapStore("push state", err)
	}
	for _, it := range items {
		g := byID[it.cid]
		st, has := states[it.cid]
		want := g != nil && (t.cfg.groupScope == nil || t.cfg.groupScope.Match(g))
		switch {
		case want:
			doc := groupDocument(g)
			hash, raw := doc.hash()
			sent := decodeDoc(st.Sent)
			delete(sent, "members")
			attrs := driftAttrs(decodeDoc(raw), sent, it.doc)
			wanted, add, remove, err := r.compareMembers(ctx, it)
			if err != nil {
				return err
			}
			if add+remove > 0 {
				attrs = append(attrs, "members")
			}
			if !has {
				r.rep.Adopted++
				r.adopted[it.cid] = it.tid
				if len(attrs) == 0 {
					out := adoptOutcome(it, &cache.PushState{Type: scim.GroupType, TargetID: it.tid, Hash: hash, Sent: raw, Active: true})
					out.DropSent, out.SentAdded = true, wanted
					r.adopts = append(r.adopts, out)
					continue
				}
			}
			if len(attrs) > 0 {
				r.add(Drift{Kind: DriftDiffering, Action: "update", Type: scim.GroupType, ID: it.cid, TargetID: it.tid,
					Name: g.DisplayName(), Attrs: attrs, MembersAdded: add, MembersRemoved: remove},
					targetState(scim.GroupType, it, doc, sent, true, time.Time{}), !has)
			}
		case !has:
			r.rep.Unmanaged++
		default:
			name, _ := it.doc["displayName"].(string)
			r.add(Drift{Kind: DriftExtra, Action: "delete", Type: scim.GroupType, ID: it.cid, TargetID: it.tid, Name: name}, nil, false)
		}
	}
	return nil
}

// compareMembers compares the members a group should have at the target with those it has
// there. Members that are missing at the target (to be created) are left out on both sides:
// creating them brings their groups in line.
func (r *recon) compareMembers(ctx context.Context, it targetItem) (wanted []cache.SentMember, add, remove int, err error) {
	w, err := r.t.wanted(ctx, it.cid)
	if err != nil {
		return nil, 0, 0, err
	}
	w.extra = r.adopted
	want := map[string]bool{}
	for {
		page, err := w.next(ctx)
		if err != nil {
			return nil, 0, 0, err
		}
		if page == nil {
			break
		}
		for _, m := range page {
			if !r.missingUsers[m.ID] {
				want[m.TargetID] = true
				wanted = append(wanted, m)
			}
		}
	}
	have := map[string]bool{}
	for _, tid := range membersOf(it.doc) {
		if cid, ok := r.userByTID[tid]; ok && r.missingUsers[cid] {
			continue
		}
		have[tid] = true
		if !want[tid] {
			remove++
		}
	}
	for tid := range want {
		if !have[tid] {
			add++
		}
	}
	return wanted, add, remove, nil
}

// missingGroupsOf lists the groups in scope that the target does not hold.
func (r *recon) missingGroupsOf(ctx context.Context) error {
	t := r.t
	return r.forEachCached(ctx, scim.GroupType, r.claimedGroups, func(rs []*scim.Resource, states map[string]cache.PushState) error {
		for _, g := range rs {
			if r.claimedGroups[g.ID] || t.cfg.groupScope != nil && !t.cfg.groupScope.Match(g) {
				continue
			}
			r.addMissing(scim.GroupType, g.ID, g.DisplayName(), states)
		}
		return nil
	})
}

// hold holds every extra of a type whose count crosses the threshold.
// dropTouched leaves out the drifts and adoptions of the resources the worker pushed while
// the target was read.
func (r *recon) dropTouched(touched map[string]struct{}) {
	if len(touched) == 0 {
		return
	}
	n := len(r.items) + len(r.adopts)
	left := func(id string) bool {
		_, ok := touched[id]
		if _, adopted := r.adopted[id]; ok && adopted {
			r.rep.Adopted--
			delete(r.adopted, id)
		}
		return ok
	}
	r.items = slices.DeleteFunc(r.items, func(it driftItem) bool { return left(it.ID) })
	r.adopts = slices.DeleteFunc(r.adopts, func(o cache.PushOutcome) bool { return left(o.ID) })
	r.rep.Superseded = n - len(r.items) - len(r.adopts)
	if r.rep.Superseded > 0 {
		r.t.log.Info("reconcile: left out drifts the worker pushed while the target was read", "superseded", r.rep.Superseded)
	}
}

func (r *recon) hold() {
	extras := map[scim.ResourceType]int{}
	for _, it := range r.items {
		if it.Kind == DriftExtra {
			extras[it.Type]++
		}
	}
	total := map[scim.ResourceType]int{scim.UserType: r.managedUsers, scim.GroupType: r.managedGroups}
	var why []string
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		n := extras[typ]
		if !r.opts.Threshold.Over(n, total[typ]) {
			continue
		}
		why = append(why, fmt.Sprintf("%d %s extras of %d the target holds for us cross [safety] max_deletes = %d / max_delete_percent = %g",
			n, strings.ToLower(string(typ)), total[typ], r.opts.Threshold.MaxDeletes, r.opts.Threshold.MaxDeletePercent))
		for i := range r.items {
			if it := &r.items[i]; it.Kind == DriftExtra && it.Type == typ {
				it.Held = true
				r.rep.Held++
			}
		}
	}
	r.rep.HeldReason = strings.Join(why, "; ")
}

// report counts the drifts and lists the first MaxListed.
func (r *recon) report() {
	order := map[string]int{DriftMissing: 0, DriftDiffering: 1, DriftExtra: 2}
	slices.SortStableFunc(r.items, func(a, b driftItem) int {
		if c := order[a.Kind] - order[b.Kind]; c != 0 {
			return c
		}
		if a.Type != b.Type {
			return -strings.Compare(string(a.Type), string(b.Type)) // users first
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, it := range r.items {
		switch it.Kind {
		case DriftMissing:
			r.rep.Missing++
		case DriftDiffering:
			r.rep.Differing++
		case DriftExtra:
			r.rep.Extra++
		}
		if len(r.rep.Drifts) < r.opts.MaxListed {
			r.rep.Drifts = append(r.rep.Drifts, it.Drift)
		} else {
			r.rep.Unlisted++
		}
	}
}

// apply corrects the drifts that are not held: first the push state of each is set to what
// the target holds (adoptions, stale ids dropped), then push's batch brings each in line.
func (r *recon) apply(ctx context.Context) error {
	t := r.t
	outs := slices.Clone(r.adopts)
	var users, groups []string
	for _, it := range r.items {
		if it.Held {
			continue
		}
		if it.prep != nil {
			outs = append(outs, *it.prep)
		}
		if it.Type == scim.GroupType {
			groups = append(groups, it.ID)
		} else {
			users = append(users, it.ID)
		}
	}
	for start := 0; start < len(outs); start += 256 {
		if err := t.st.RecordPush(ctx, t.cfg.Name, outs[start:min(start+256, len(outs))]); err != nil {
			return wrapStore("record", err)
		}
	}
	tl := &tally{}
	ctx = withTally(ctx, tl)
	for start := 0; start < len(users); start += batchSize {
		if err := t.Sync(ctx, users[start:min(start+batchSize, len(users))], nil); err != nil {
			r.rep.Failed = tl.failed.Load()
			return err
		}
	}
	if len(groups) > 0 {
		if err := t.Sync(ctx, nil, groups); err != nil {
			r.rep.Failed = tl.failed.Load()
			return err
		}
	}
	r.rep.Failed = tl.failed.Load()
	if r.opts.SetCursor && r.rep.Held == 0 {
		cur, err := t.st.PushCursor(ctx, t.cfg.Name)
		if err != nil {
			return wrapStore("cursor", err)
		}
		if cur < r.rep.JournalSeq {
			if err := t.st.SetPushCursor(ctx, t.cfg.Name, r.rep.JournalSeq); err != nil {
				return wrapStore("cursor", err)
			}
			r.rep.CursorSetTo = r.rep.JournalSeq
		}
	}
	return nil
}

// driftAttrs returns the attributes whose value at the target (have) is not what push would
// send (want): every attribute of want, and every attribute push sent before (sent) that want
// no longer has and the target still holds. A value the target holds with more in it (a
// sub-attribute it adds, such as an email's primary flag) is no drift; one with less is.
func driftAttrs(want, sent, have document) []string {
	var out []string
	for _, k := range managedKeys(want, sent) {
		w, h := want[k], have[k]
		if k == "active" && h == nil {
			h = true // a target that does not say is taken at its word that the user is active
		}
		if w == nil {
			if h != nil {
				out = append(out, k)
			}
			continue
		}
		if !covers(w, h) {
			out = append(out, k)
		}
	}
	return out
}

// managedKeys are the attributes of want and sent that push manages, sorted.
func managedKeys(want, sent document) []string {
	var keys []string
	for _, d := range []document{want, sent} {
		for k := range d {
			switch k {
			case "schemas", "id", "meta", "groups", "members":
				continue
			}
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// covers reports whether have holds everything of want: equal scalars, objects whose every
// sub-attribute of want have covers, and lists of the same length whose every element of want
// an element of have covers.
func covers(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if v == nil {
				if h[k] != nil {
					return false
				}
				continue
			}
			if !covers(v, h[k]) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		used := make([]bool, len(h))
	next:
		for _, v := range w {
			for i, hv := range h {
				if !used[i] && covers(v, hv) {
					used[i] = true
					continue next
				}
			}
			return false
		}
		return true
	}
	return equalJSON(want, have)
}

// project keeps of have the attributes push manages (want's and sent's), and of an object
// attribute only the sub-attributes push manages.
func project(have, want, sent document) document {
	out := document{}
	for _, k := range managedKeys(want, sent) {
		h := have[k]
		if h == nil {
			continue
		}
		hm, isMap := h.(map[string]any)
		wm, _ := want[k].(map[string]any)
		sm, _ := sent[k].(map[string]any)
		if !isMap || wm == nil && sm == nil {
			out[k] = h
			continue
		}
		sub := map[string]any{}
		for _, m := range []map[string]any{wm, sm} {
			for sk := range m {
				if v := hm[sk]; v != nil {
					sub[sk] = v
				}
			}
		}
		if len(sub) > 0 {
			out[k] = sub
		}
	}
	return out
}

// afterCompare, if set (by a benchmark), is called when a reconciliation has read the whole
// target and holds everything it keeps for the rest of the run.
var afterCompare func()

// readOnlyKey marks a context whose requests only read: Options.MaySend does not fence them.
type readOnlyKey struct{}

func readOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, readOnlyKey{}, true)
}

func isReadOnly(ctx context.Context) bool { v, _ := ctx.Value(readOnlyKey{}).(bool); return v }
