package push

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// addGroupsOfUsers adds the groups of every user in the batch: a user that was just created,
// adopted or deprovisioned changes who of a group's members exist at the target. With
// flatten_groups the groups above them count too.
func (b *batch) addGroupsOfUsers(ctx context.Context) error {
	ids := sortedKeys(b.users)
	if b.t.cfg.FlattenGroups {
		ids = append(ids, sortedKeys(b.groups)...)
		graph, err := b.parents(ctx, ids)
		if err != nil {
			return err
		}
		for _, parents := range graph {
			for _, p := range parents {
				b.groups[p] = true
			}
		}
		return nil
	}
	if len(ids) == 0 {
		return nil
	}
	m, err := b.t.st.GroupsOfMany(ctx, ids)
	if err != nil {
		return wrapStore("groups of", err)
	}
	if b.memberUsers == nil {
		b.memberUsers = map[string][]string{}
	}
	for uid, refs := range m {
		for _, r := range refs {
			b.groups[r.ID] = true
			b.memberUsers[r.ID] = append(b.memberUsers[r.ID], uid)
		}
	}
	return nil
}

func (b *batch) pushGroups(ctx context.Context) error {
	t := b.t
	ids := sortedKeys(b.groups)
	if len(ids) == 0 {
		return nil
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, ids)
	if err != nil {
		return wrapStore("push state", err)
	}
	// Without flatten_groups, groups go out in the second wave, concurrently: a group can go
	// before a nested group of it exists at the target, and completeParents then adds it.
	waves := make([][]func(context.Context) error, 2)
	for start := 0; start < len(ids); start += 256 {
		part := ids[start:min(start+256, len(ids))]
		res, err := t.st.GetMany(ctx, scim.GroupType, part, false)
		if err != nil {
			return wrapStore("groups", err)
		}
		present := map[string]bool{}
		for _, r := range res {
			present[r.ID] = true
			if t.cfg.groupScope != nil && !t.cfg.groupScope.Match(r) {
				continue
			}
			id, tk := r.ID, &task{id: r.ID, typ: scim.GroupType, seq: b.seq[r.ID], op: "group"}
			wave := 0
			if !t.cfg.FlattenGroups {
				wave = 1 // members are only known after loading; nested ones are rare
			}
			waves[wave] = append(waves[wave], func(ctx context.Context) error {
				dw, err := b.deltaWork(ctx, id)
				if err != nil {
					return err
				}
				return t.syncGroup(ctx, tk, id, states[id], dw)
			})
		}
		for _, id := range part {
			st, has := states[id]
			if !has || present[id] && (t.cfg.groupScope == nil || b.matchGroup(ctx, id)) {
				continue
			}
			tk := &task{id: id, typ: scim.GroupType, seq: b.seq[id], op: "delete"}
			waves[0] = append(waves[0], func(ctx context.Context) error {
				return t.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
					return t.deleteAtTarget(ctx, tk, st)
				})
			})
		}
	}
	for _, w := range waves {
		if err := pool(ctx, t.cfg.Concurrency, w); err != nil {
			return err
		}
	}
	return b.completeParents(ctx, ids, states)
}

// completeParents adds the batch's groups that have just reached the target (created, or
// created again under a new id) to the groups that list them. A group's membership at the
// target lists only members the target holds, and a nested group may reach it after the
// group above it: later in the same wave, or in a later batch when the group above is not in
// this one at all. Nothing else would bring the group above back until it changed again. Each
// parent compares only the arrived groups among its members, so this is O(k) whatever the
// parent's size. Users need no such step: addGroupsOfUsers brings the groups of the batch's
// users in before the groups go out. With flatten_groups groups list users only.
func (b *batch) completeParents(ctx context.Context, ids []string, before map[string]cache.PushState) error {
	t := b.t
	if t.cfg.FlattenGroups {
		return nil
	}
	arrived, err := b.arrivedGroups(ctx, ids, before)
	if err != nil || len(arrived) == 0 {
		return err
	}
	m, err := t.st.GroupsOfMany(ctx, arrived)
	if err != nil {
		return wrapStore("groups of", err)
	}
	children := map[string][]string{}
	for cid, refs := range m {
		for _, r := range refs {
			children[r.ID] = append(children[r.ID], cid)
		}
	}
	parents := make([]string, 0, len(children))
	for pid := range children {
		parents = append(parents, pid)
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, parents)
	if err != nil {
		return wrapStore("push state", err)
	}
	var jobs []func(context.Context) error
	for pid, cids := range children {
		st, at := states[pid]
		// A parent the target does not hold gets every member when it is created.
		if !at || st.TargetID == "" || t.cfg.groupScope != nil && !b.matchGroup(ctx, pid) {
			continue
		}
		slices.Sort(cids)
		tk := &task{id: pid, typ: scim.GroupType, seq: b.seq[pid], op: "group"}
		jobs = append(jobs, func(ctx context.Context) error {
			return t.syncGroup(ctx, tk, pid, st, deltaWork{candidates: cids})
		})
	}
	return pool(ctx, t.cfg.Concurrency, jobs)
}

// arrivedGroups returns the groups of ids whose id at the target is not the one they had
// before the batch (states before).
func (b *batch) arrivedGroups(ctx context.Context, ids []string, before map[string]cache.PushState) ([]string, error) {
	after, err := b.t.st.PushStates(ctx, b.t.cfg.Name, ids)
	if err != nil {
		return nil, wrapStore("push state", err)
	}
	var out []string
	for _, id := range ids {
		if tid := after[id].TargetID; tid != "" && tid != before[id].TargetID {
			out = append(out, id)
		}
	}
	return out, nil
}

func (b *batch) matchGroup(ctx context.Context, id string) bool {
	rs, err := b.t.st.GetMany(ctx, scim.GroupType, []string{id}, false)
	return err == nil && len(rs) == 1 && b.t.cfg.groupScope.Match(rs[0])
}

// syncGroup creates or adopts group id at the target, renames it, and sends its membership
// changes as add/remove PATCHes in chunks of membership_chunk. What the target holds of the
// membership is one key per member (cache.SentMember), so a change of k members reads and
// writes O(k) keys (see members.go for when the whole group is compared instead). Before
// membership changes it stores the state with an empty hash: if they are interrupted (crash,
// dropped connection, dead letter), the next attempt reads the group's members from the target
// instead of trusting what it sent, so no member is added twice and no removal is lost.
func (t *Target) syncGroup(ctx context.Context, tk *task, id string, st cache.PushState, dw deltaWork) error {
	return t.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
		rs, err := t.st.GetMany(ctx, scim.GroupType, []string{id}, false)
		if err != nil {
			return cache.PushOutcome{}, wrapStore("group", err)
		}
		if len(rs) == 0 {
			return cache.PushOutcome{}, errStopTask
		}
		g := rs[0]
		doc := groupDocument(g)
		hash, raw := doc.hash()
		has := st.TargetID != ""
		var cur document
		var targetSet []string // the target's member ids, when it is what to compare with
		useSet := false
		switch {
		case !has:
			tid, got, err := t.createGroup(ctx, tk, g, doc)
			if err != nil {
				return cache.PushOutcome{}, err
			}
			st, cur, useSet = cache.PushState{Type: scim.GroupType, TargetID: tid}, got, true
			targetSet = membersOf(got)
		case st.Hash == "" || tk.ambiguous:
			resp, err := tk.call(ctx, t.c, "read", "GET", "/Groups/"+st.TargetID, nil)
			var he *HTTPError
			if errors.As(err, &he) && he.Status == 404 {
				st = cache.PushState{} // gone: create it again on the next attempt
			}
			if err != nil {
				return cache.PushOutcome{}, err
			}
			cur, useSet = sanitize(decodeDoc(resp.body), true), true
			targetSet = membersOf(cur)
		case hasMembers(st.Sent):
			// Written before members had keys of their own: its member list is what the target
			// holds, once; the outcome moves it to member keys.
			cur, useSet = decodeDoc(st.Sent), true
			targetSet = membersOf(cur)
		default:
			cur = decodeDoc(st.Sent)
		}
		delete(cur, "members")
		var ch memberChange
		if useSet || dw.level {
			ch, err = t.levelMembers(ctx, id, targetSet, useSet)
		} else {
			ch, err = t.deltaMembers(ctx, id, dw.candidates)
		}
		if err != nil {
			return cache.PushOutcome{}, err
		}
		attrOps := t.prof.diffOps(cur, doc)
		if !useSet && st.Hash == hash && ch.empty() {
			return cache.PushOutcome{}, errStopTask
		}
		path := "/Groups/" + st.TargetID
		if len(ch.add)+len(ch.remove) > 0 {
			// Mark the membership as uncertain until every chunk is through.
			_, sent := cur.hash()
			mark := cache.PushState{Type: scim.GroupType, TargetID: st.TargetID, Sent: sent, Active: true}
			if err := t.recordPush(ctx, cache.PushOutcome{ID: tk.id, State: &mark, KeepDeadLetter: true}); err != nil {
				return cache.PushOutcome{}, err
			}
			st = mark
		}
		fail := func(err error) (cache.PushOutcome, error) {
			var he *HTTPError
			if errors.As(err, &he) && he.Status == 404 {
				st = cache.PushState{}
			}
			return cache.PushOutcome{}, err
		}
		if len(attrOps) > 0 {
			if _, err := tk.call(ctx, t.c, "update", "PATCH", path, patchBody(attrOps)); err != nil {
				return fail(err)
			}
		}
		for _, ops := range t.prof.memberOps(ch.add, ch.remove, t.cfg.MembershipChunk) {
			if _, err := tk.call(ctx, t.c, "membership", "PATCH", path, patchBody(ops)); err != nil {
				return fail(err)
			}
		}
		tid := st.TargetID
		st = cache.PushState{Type: scim.GroupType, TargetID: tid, Hash: hash, Sent: raw, Active: true}
		return cache.PushOutcome{State: &st, SentAdded: ch.sentAdded, SentRemoved: ch.sentRemoved}, nil
	})
}

// hasMembers reports whether a stored group document lists members (the format before
// members had keys of their own).
func hasMembers(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(raw, &d) != nil {
		return false
	}
	_, ok := d["members"]
	return ok
}

// createGroup adopts the group with the same displayName or POSTs it without members. It
// returns the target id and the group as the target now holds it.
func (t *Target) createGroup(ctx context.Context, tk *task, g *scim.Resource, doc document) (string, document, error) {
	lookup := func() (document, error) {
		resp, err := tk.call(ctx, t.c, "lookup", "GET", "/Groups?filter="+url.QueryEscape(eqFilter("displayName", g.DisplayName())), nil)
		if err != nil {
			return nil, err
		}
		for _, d := range listResources(resp.body) {
			if v, _ := d["displayName"].(string); strings.EqualFold(v, g.DisplayName()) {
				return d, nil
			}
		}
		return nil, nil
	}
	match, err := lookup()
	if err != nil {
		return "", nil, err
	}
	if match == nil {
		body := document{"schemas": doc["schemas"], "displayName": doc["displayName"], "members": []any{}}
		if v, ok := doc["externalId"]; ok {
			body["externalId"] = v
		}
		resp, err := tk.call(ctx, t.c, "create", "POST", "/Groups", body)
		var he *HTTPError
		if errors.As(err, &he) && he.Status == 409 {
			if match, err = lookup(); err == nil && match == nil {
				err = he
			}
		}
		if err != nil {
			return "", nil, err
		}
		if match == nil {
			id := idOf(resp.body)
			if id == "" {
				return "", nil, &HTTPError{Method: "POST", Path: "/Groups", Status: resp.status, Detail: "response without id"}
			}
			delete(body, "schemas")
			return id, body, nil
		}
	}
	id, _ := match["id"].(string)
	tk.audit = append(tk.audit, cache.PushAudit{Time: time.Now(), Seq: tk.seq, Op: "adopt", TargetID: id})
	return id, sanitize(match, true), nil
}
