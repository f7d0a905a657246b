package push

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// batch brings a set of resources at one target in line with the cache. It is level-based:
// every task sends the resource's current state, so several journal records of one resource
// collapse into one delivery, and replaying a batch after a crash is harmless (unchanged
// documents are skipped by hash). Order: users (managers before their reports), then groups
// (after their members exist), then the cursor.
type batch struct {
	t      *Target
	seq    map[string]uint64
	users  map[string]bool
	groups map[string]bool
	// sourceMembers are the new member sets of changed scope source groups, stored last.
	sourceMembers map[string][]string
	srcGroups     map[string]bool
	// grecs are the batch's journal records of each group, in order; memberUsers the batch's
	// users that are members of each group; levelGroups the groups to compare in full
	// (members.go).
	grecs       map[string][]groupRec
	memberUsers map[string][]string
	levelGroups map[string]bool
}

func (b *batch) run(ctx context.Context) error {
	t := b.t
	if err := b.resolveSourceGroups(ctx); err != nil {
		return err
	}
	if err := b.expandSourceGroups(ctx); err != nil {
		return err
	}
	if err := b.pushUsers(ctx); err != nil {
		return err
	}
	if t.cfg.Groups {
		if err := b.addGroupsOfUsers(ctx); err != nil {
			return err
		}
		if err := b.pushGroups(ctx); err != nil {
			return err
		}
	}
	for gid, members := range b.sourceMembers {
		if err := t.st.SetSourceMembers(ctx, t.cfg.Name, gid, members); err != nil {
			return wrapStore("source members", err)
		}
	}
	return nil
}

func (b *batch) resolveSourceGroups(ctx context.Context) error {
	b.srcGroups = map[string]bool{}
	for _, name := range b.t.cfg.SourceGroups {
		ids, err := b.t.st.Lookup(ctx, cache.IndexDisplayName, name)
		if err != nil {
			return wrapStore("source group", err)
		}
		for _, id := range ids {
			b.srcGroups[id] = true
		}
	}
	return nil
}

// parents returns the group graph above ids: id → the groups that list it, for ids and
// every ancestor.
func (b *batch) parents(ctx context.Context, ids []string) (map[string][]string, error) {
	graph := map[string][]string{}
	todo := ids
	seen := map[string]bool{}
	for len(todo) > 0 {
		m, err := b.t.st.GroupsOfMany(ctx, todo)
		if err != nil {
			return nil, wrapStore("groups of", err)
		}
		var next []string
		for id, refs := range m {
			for _, r := range refs {
				graph[id] = append(graph[id], r.ID)
				if !seen[r.ID] {
					seen[r.ID] = true
					next = append(next, r.ID)
				}
			}
		}
		todo = next
	}
	return graph, nil
}

func ancestors(graph map[string][]string, id string) map[string]bool {
	out := map[string]bool{}
	stack := []string{id}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range graph[cur] {
			if !out[p] {
				out[p] = true
				stack = append(stack, p)
			}
		}
	}
	return out
}

// expandSourceGroups adds the old and new members of every scope source group that changed
// (directly or through a nested group) to the users to check.
func (b *batch) expandSourceGroups(ctx context.Context) error {
	if len(b.srcGroups) == 0 || len(b.groups) == 0 {
		return nil
	}
	graph, err := b.parents(ctx, sortedKeys(b.groups))
	if err != nil {
		return err
	}
	changed := map[string]bool{}
	for gid := range b.groups {
		if b.srcGroups[gid] {
			changed[gid] = true
		}
		for a := range ancestors(graph, gid) {
			if b.srcGroups[a] {
				changed[a] = true
			}
		}
	}
	b.sourceMembers = map[string][]string{}
	for gid := range changed {
		members, err := b.t.transitiveUsers(ctx, gid)
		if err != nil {
			return err
		}
		old, err := b.t.st.SourceMembers(ctx, b.t.cfg.Name, gid)
		if err != nil {
			return wrapStore("source members", err)
		}
		for _, id := range append(old, members...) {
			b.users[id] = true
		}
		b.sourceMembers[gid] = members
	}
	return nil
}

// userWork is one user's delivery within a batch.
type userWork struct {
	r    *scim.Resource // nil: deleted in the directory
	st   cache.PushState
	has  bool
	want bool
}

func (b *batch) pushUsers(ctx context.Context) error {
	t := b.t
	ids := sortedKeys(b.users)
	if len(ids) == 0 {
		return nil
	}
	res, err := t.st.GetMany(ctx, scim.UserType, ids, false)
	if err != nil {
		return wrapStore("users", err)
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, ids)
	if err != nil {
		return wrapStore("push state", err)
	}
	if res, states, err = b.addManagers(ctx, res, states); err != nil {
		return err
	}
	ids = sortedKeys(b.users)
	var graph map[string][]string
	if len(b.srcGroups) > 0 {
		if graph, err = b.parents(ctx, ids); err != nil {
			return err
		}
	}
	work := make(map[string]*userWork, len(ids))
	for _, r := range res {
		work[r.ID] = &userWork{r: r, want: r.Active() && b.inScope(r, graph)}
	}
	for _, id := range ids {
		w := work[id]
		if w == nil {
			w = &userWork{}
			work[id] = w
		}
		w.st, w.has = states[id]
	}
	var created []string
	for _, id := range ids {
		if w := work[id]; w.want && !w.has {
			created = append(created, id)
		}
	}
	waves := b.userWaves(work)
	for _, wave := range waves {
		if err := pool(ctx, t.cfg.Concurrency, b.userJobs(wave, work)); err != nil {
			return err
		}
	}
	return b.pushReportsOf(ctx, created)
}

// pushReportsOf updates the reports at the target of users this batch created there. A report
// can reach the target before its manager when she was out of scope, inactive or dead-lettered
// at the time; it then went without a manager, and now gets her. (addManagers handles the
// usual case, a manager later in the journal.) A report whose document does not change is not
// sent again.
func (b *batch) pushReportsOf(ctx context.Context, managers []string) error {
	t := b.t
	var ids []string
	seen := map[string]bool{}
	for _, m := range managers {
		reports, err := t.st.Lookup(ctx, cache.IndexManager, m)
		if err != nil {
			return wrapStore("reports", err)
		}
		for _, id := range reports {
			if !b.users[id] && !seen[id] { // the batch's own users went out with the manager
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, ids)
	if err != nil {
		return wrapStore("push state", err)
	}
	res, err := t.st.GetMany(ctx, scim.UserType, ids, false)
	if err != nil {
		return wrapStore("users", err)
	}
	var graph map[string][]string
	if len(b.srcGroups) > 0 {
		if graph, err = b.parents(ctx, ids); err != nil {
			return err
		}
	}
	var jobs []func(context.Context) error
	for _, r := range res {
		st, at := states[r.ID]
		if !at || !st.Active || !r.Active() || !b.inScope(r, graph) {
			continue // not at the target, or its own journal record deals with it
		}
		jobs = append(jobs, func(ctx context.Context) error {
			return t.syncUser(ctx, &task{id: r.ID, typ: scim.UserType, op: "update"}, r, &st, nil)
		})
	}
	return pool(ctx, t.cfg.Concurrency, jobs)
}

// addManagers brings into the batch the managers of its users that the target does not have
// yet, and theirs in turn (up to 16 levels), so that each is created before its reports and the
// reports go out with their manager. Without it a report whose manager comes later in the
// journal (a first sync reads in directory order) would reach the target without one, and get
// it only when it next changed. A manager's own journal record then finds it up to date.
func (b *batch) addManagers(ctx context.Context, res []*scim.Resource, states map[string]cache.PushState) ([]*scim.Resource, map[string]cache.PushState, error) {
	t := b.t
	next := res
	for range 16 {
		var more []string
		for _, r := range next {
			m := managerOf(r)
			if _, at := states[m]; m == "" || b.users[m] || at {
				continue
			}
			b.users[m] = true
			more = append(more, m)
		}
		if len(more) == 0 {
			break
		}
		var err error
		if next, err = t.st.GetMany(ctx, scim.UserType, more, false); err != nil {
			return nil, nil, wrapStore("users", err)
		}
		st, err := t.st.PushStates(ctx, t.cfg.Name, more)
		if err != nil {
			return nil, nil, wrapStore("push state", err)
		}
		maps.Copy(states, st)
		res = append(res, next...)
	}
	return res, states, nil
}

func (b *batch) inScope(r *scim.Resource, graph map[string][]string) bool {
	cfg := &b.t.cfg
	if cfg.scope == nil && len(b.srcGroups) == 0 {
		return true
	}
	if cfg.scope != nil && cfg.scope.Match(r) {
		return true
	}
	for a := range ancestors(graph, r.ID) {
		if b.srcGroups[a] {
			return true
		}
	}
	return false
}

// userWaves orders the users to deliver: a user whose manager is delivered in the same batch
// goes one wave after the manager.
func (b *batch) userWaves(work map[string]*userWork) [][]string {
	var waves [][]string
	for _, id := range sortedKeys(b.users) {
		w := work[id]
		if !w.want && !b.needsDeprovision(w) {
			continue
		}
		d, cur := 0, w
		for d < 16 && cur.r != nil {
			m := work[managerOf(cur.r)]
			if m == nil || !m.want || m.has && m.st.Active {
				break
			}
			d, cur = d+1, m
		}
		for len(waves) <= d {
			waves = append(waves, nil)
		}
		waves[d] = append(waves[d], id)
	}
	return waves
}

func (b *batch) needsDeprovision(w *userWork) bool {
	if w.want || !w.has {
		return false
	}
	switch b.t.cfg.Deprovision {
	case Delete:
		return b.t.prof.deletesUsers || w.st.Active
	case DeactivateThenDelete:
		return w.st.Active || w.st.DeleteAt.IsZero()
	}
	return w.st.Active
}

// userJobs turns a wave into jobs: creates in chunks that share one lookup, the rest one job
// per user.
func (b *batch) userJobs(ids []string, work map[string]*userWork) []func(context.Context) error {
	t := b.t
	var jobs []func(context.Context) error
	var creates []*scim.Resource
	for _, id := range ids {
		w := work[id]
		switch {
		case w.want && !w.has:
			creates = append(creates, w.r)
		case w.want:
			jobs = append(jobs, func(ctx context.Context) error {
				return t.syncUser(ctx, &task{id: id, typ: scim.UserType, seq: b.seq[id], op: "update"}, w.r, &w.st, nil)
			})
		default:
			jobs = append(jobs, func(ctx context.Context) error {
				return t.deprovisionUser(ctx, &task{id: id, typ: scim.UserType, seq: b.seq[id], op: "deprovision"}, w.st)
			})
		}
	}
	chunk := max(1, t.prof.orLookups)
	for start := 0; start < len(creates); start += chunk {
		part := creates[start:min(start+chunk, len(creates))]
		jobs = append(jobs, func(ctx context.Context) error {
			found := t.lookupUsers(ctx, part)
			for _, r := range part {
				tk := &task{id: r.ID, typ: scim.UserType, seq: b.seq[r.ID], op: "create"}
				if err := t.syncUser(ctx, tk, r, nil, found); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return jobs
}

// found is the result of a lookup of several users at once; nil when it failed.
type found map[string]document

// syncUser creates, adopts, updates or reactivates user r at the target. st is nil when the
// target does not hold r as far as we know; pre is a lookup done for several creates at once.
func (t *Target) syncUser(ctx context.Context, tk *task, r *scim.Resource, st *cache.PushState, pre found) error {
	return t.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
		doc, err := t.userDocument(ctx, r)
		if err != nil {
			return cache.PushOutcome{}, err
		}
		hash, raw := doc.hash()
		if st != nil && st.Hash == hash && st.Active {
			return cache.PushOutcome{}, errStopTask
		}
		if st == nil {
			adopted, created, err := t.createUser(ctx, tk, r, doc, pre)
			pre = nil // a retry looks up again
			if err != nil {
				return cache.PushOutcome{}, err
			}
			if created != "" {
				return cache.PushOutcome{State: &cache.PushState{Type: scim.UserType, TargetID: created, Hash: hash, Sent: raw, Active: true}}, nil
			}
			st = adopted
		}
		old := decodeDoc(st.Sent)
		if err := t.updateUser(ctx, tk, st.TargetID, old, doc); err != nil {
			var he *HTTPError
			if errors.As(err, &he) && he.Status == 404 {
				st = nil // the target lost it: create it again on the next attempt
			}
			return cache.PushOutcome{}, err
		}
		return cache.PushOutcome{State: &cache.PushState{Type: scim.UserType, TargetID: st.TargetID, Hash: hash, Sent: raw, Active: true}}, nil
	})
}

// createUser adopts a user the target already has (by userName, then externalId) or POSTs it.
// It returns the adopted state (to be updated next) or the new target id.
func (t *Target) createUser(ctx context.Context, tk *task, r *scim.Resource, doc document, pre found) (*cache.PushState, string, error) {
	var match document
	if pre != nil && !tk.ambiguous {
		match = pre[strings.ToLower(r.UserName())]
	} else {
		var err error
		if match, err = t.lookupUser(ctx, tk, r); err != nil {
			return nil, "", err
		}
	}
	if match == nil {
		resp, err := tk.call(ctx, t.c, "create", "POST", "/Users", doc)
		var he *HTTPError
		if errors.As(err, &he) && he.Status == 409 {
			if match, err = t.lookupUser(ctx, tk, r); err == nil && match == nil {
				err = he // a conflict we cannot find: retry, then dead-letter with the target's answer
			}
		}
		if err != nil {
			return nil, "", err
		}
		if match == nil {
			id := idOf(resp.body)
			if id == "" {
				return nil, "", &HTTPError{Method: "POST", Path: "/Users", Status: resp.status, Detail: "response without id", Body: truncate(string(resp.body))}
			}
			return nil, id, nil
		}
	}
	id, _ := match["id"].(string)
	tk.audit = append(tk.audit, cache.PushAudit{Time: time.Now(), Seq: tk.seq, Op: "adopt", TargetID: id})
	raw, _ := json.Marshal(sanitize(match, false))
	return &cache.PushState{Type: scim.UserType, TargetID: id, Sent: raw, Active: match["active"] != false}, "", nil
}

// updateUser sends what changed from old to doc: a minimal PATCH, or under the okta profile
// a full PUT (or the path-less active PATCH when only active changed).
func (t *Target) updateUser(ctx context.Context, tk *task, id string, old, doc document) error {
	path := "/Users/" + id
	if t.prof.putUpdates {
		ops := t.prof.diffOps(old, doc)
		if len(ops) == 0 {
			return nil
		}
		if len(ops) == 1 && strings.EqualFold(ops[0].Path, "active") {
			_, err := tk.call(ctx, t.c, "update", "PATCH", path, patchBody(t.prof.activeOps(doc["active"] == true)))
			return err
		}
		full := document{"id": id}
		for k, v := range doc {
			full[k] = v
		}
		_, err := tk.call(ctx, t.c, "update", "PUT", path, full)
		return err
	}
	ops := t.prof.diffOps(old, doc)
	if len(ops) == 0 {
		return nil
	}
	_, err := tk.call(ctx, t.c, "update", "PATCH", path, patchBody(ops))
	return err
}

// deprovisionUser applies the deprovisioning policy to a user that left the scope, was
// disabled or was deleted.
func (t *Target) deprovisionUser(ctx context.Context, tk *task, st cache.PushState) error {
	return t.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
		if t.cfg.Deprovision == Delete && t.prof.deletesUsers {
			tk.op = "delete"
			return t.deleteAtTarget(ctx, tk, st)
		}
		tk.op = "deactivate"
		next := st
		if st.Active {
			old := decodeDoc(st.Sent)
			_, err := tk.call(ctx, t.c, "deactivate", "PATCH", "/Users/"+st.TargetID, patchBody(t.prof.activeOps(false)))
			var he *HTTPError
			if errors.As(err, &he) && he.Status == 404 {
				return cache.PushOutcome{DropState: true}, nil
			}
			if err != nil {
				return cache.PushOutcome{}, err
			}
			old["active"] = false
			next.Hash, next.Sent = old.hash()
			next.Active = false
		}
		if t.cfg.Deprovision == DeactivateThenDelete && next.DeleteAt.IsZero() {
			next.DeleteAt = time.Now().Add(t.cfg.DeleteAfter.D())
		}
		return cache.PushOutcome{State: &next}, nil
	})
}

// userDocument is r's document for this target, with the manager's target id.
func (t *Target) userDocument(ctx context.Context, r *scim.Resource) (document, error) {
	var mgr string
	if m := managerOf(r); m != "" {
		states, err := t.st.PushStates(ctx, t.cfg.Name, []string{m})
		if err != nil {
			return nil, wrapStore("push state", err)
		}
		if s, ok := states[m]; ok {
			mgr = s.TargetID
		}
	}
	return userDocument(r, true, t.cfg.Attributes, mgr), nil
}

// lookupUser finds r at the target by userName, then by externalId; nil when absent.
func (t *Target) lookupUser(ctx context.Context, tk *task, r *scim.Resource) (document, error) {
	for _, q := range [][2]string{{"userName", r.UserName()}, {"externalId", r.ExternalID}} {
		if q[1] == "" {
			continue
		}
		resp, err := tk.call(ctx, t.c, "lookup", "GET", "/Users?filter="+url.QueryEscape(eqFilter(q[0], q[1])), nil)
		if err != nil {
			return nil, err
		}
		for _, d := range listResources(resp.body) {
			v, _ := d[q[0]].(string)
			if strings.EqualFold(v, q[1]) && (q[0] == "userName" || v == q[1]) {
				return d, nil
			}
		}
	}
	return nil, nil
}

// lookupUsers looks several users up in one request (`userName eq "a" or userName eq "b"`).
// It returns nil when it fails or the profile does not allow "or": each create then looks up
// on its own.
func (t *Target) lookupUsers(ctx context.Context, rs []*scim.Resource) found {
	if len(rs) < 2 || t.prof.orLookups < 2 {
		return nil
	}
	terms := make([]string, len(rs))
	for i, r := range rs {
		terms[i] = eqFilter("userName", r.UserName())
	}
	q := "/Users?count=" + itoa(2*len(rs)) + "&filter=" + url.QueryEscape(strings.Join(terms, " or "))
	resp, err := t.c.do(ctx, "GET", q, nil)
	if err != nil {
		return nil
	}
	out := found{}
	for _, d := range listResources(resp.body) {
		if v, ok := d["userName"].(string); ok {
			out[strings.ToLower(v)] = d
		}
	}
	return out
}

func eqFilter(attr, v string) string {
	v = strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`)
	return attr + ` eq "` + v + `"`
}

func listResources(body []byte) []document {
	var lr struct {
		Resources []document `json:"Resources"`
	}
	_ = json.Unmarshal(body, &lr)
	return lr.Resources
}

func idOf(body []byte) string {
	var r struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &r)
	return r.ID
}

func decodeDoc(raw []byte) document {
	d := document{}
	_ = json.Unmarshal(raw, &d)
	return d
}

// sanitize drops what a target adds to a resource and ldapscim does not manage.
func sanitize(d document, group bool) document {
	out := document{}
	for k, v := range d {
		switch k {
		case "id", "meta", "groups", "schemas":
			continue
		case "members":
			if !group {
				continue
			}
			// keep only the values
			ids := membersOf(d)
			list := make([]any, len(ids))
			for i, id := range ids {
				list[i] = map[string]any{"value": id}
			}
			v = list
		}
		out[k] = v
	}
	return out
}

func itoa(n int) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{digits[n%10]}, b...)
	}
	return string(b)
}
