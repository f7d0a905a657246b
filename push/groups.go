package push

import (
	"context"
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
	for _, refs := range m {
		for _, r := range refs {
			b.groups[r.ID] = true
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
	// Groups with nested groups go second, so the nested ones exist first.
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
			waves[wave] = append(waves[wave], func(ctx context.Context) error { return t.syncGroup(ctx, tk, id, states[id], states) })
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
	return nil
}

func (b *batch) matchGroup(ctx context.Context, id string) bool {
	rs, err := b.t.st.GetMany(ctx, scim.GroupType, []string{id}, false)
	return err == nil && len(rs) == 1 && b.t.cfg.groupScope.Match(rs[0])
}

// groupMembers returns the target ids of g's members that exist at the target: users ldapscim
// pushed, and (without flatten_groups) pushed groups; with flatten_groups, the users of nested
// groups instead.
func (t *Target) groupMembers(ctx context.Context, g *scim.Resource) ([]member, error) {
	var ids []string
	for _, m := range g.Members {
		if m.Type == scim.GroupType && t.cfg.FlattenGroups {
			users, err := t.transitiveUsers(ctx, m.Value)
			if err != nil {
				return nil, err
			}
			ids = append(ids, users...)
			continue
		}
		ids = append(ids, m.Value)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	states, err := t.st.PushStates(ctx, t.cfg.Name, ids)
	if err != nil {
		return nil, wrapStore("push state", err)
	}
	out := make([]member, 0, len(states))
	for _, id := range ids {
		if s, ok := states[id]; ok && s.TargetID != "" {
			out = append(out, member{Value: s.TargetID})
		}
	}
	return out, nil
}

// syncGroup creates or adopts group id at the target, renames it, and sends membership
// changes as add/remove diffs in chunks. Before membership changes it stores the state with an
// empty hash: if they are interrupted (crash, dropped connection), the next attempt reads the
// group's members from the target instead of trusting what it sent, so no member is added twice.
func (t *Target) syncGroup(ctx context.Context, tk *task, id string, st cache.PushState, _ map[string]cache.PushState) error {
	has := st.TargetID != ""
	return t.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
		rs, err := t.st.GetMany(ctx, scim.GroupType, []string{id}, true)
		if err != nil {
			return cache.PushOutcome{}, wrapStore("group", err)
		}
		if len(rs) == 0 {
			return cache.PushOutcome{}, errStopTask
		}
		g := rs[0]
		members, err := t.groupMembers(ctx, g)
		if err != nil {
			return cache.PushOutcome{}, err
		}
		doc := groupDocument(g, members)
		hash, raw := doc.hash()
		if has && st.Hash == hash {
			return cache.PushOutcome{}, errStopTask
		}
		var cur document
		if !has {
			tid, got, err := t.createGroup(ctx, tk, g, doc)
			if err != nil {
				return cache.PushOutcome{}, err
			}
			st, cur, has = cache.PushState{Type: scim.GroupType, TargetID: tid}, got, true
		} else if st.Hash == "" || tk.ambiguous {
			resp, err := tk.call(ctx, t.c, "read", "GET", "/Groups/"+st.TargetID, nil)
			var he *HTTPError
			if errors.As(err, &he) && he.Status == 404 {
				has = false
			}
			if err != nil {
				return cache.PushOutcome{}, err
			}
			cur = sanitize(decodeDoc(resp.body), true)
		} else {
			cur = decodeDoc(st.Sent)
		}
		if err := t.updateGroup(ctx, tk, &st, cur, doc); err != nil {
			var he *HTTPError
			if errors.As(err, &he) && he.Status == 404 {
				has = false
			}
			return cache.PushOutcome{}, err
		}
		return cache.PushOutcome{State: &cache.PushState{Type: scim.GroupType, TargetID: st.TargetID, Hash: hash, Sent: raw, Active: true}}, nil
	})
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

// updateGroup PATCHes the group's attributes (a rename is a PATCH of displayName), then its
// membership in chunks of the profile's size.
func (t *Target) updateGroup(ctx context.Context, tk *task, st *cache.PushState, cur, doc document) error {
	path := "/Groups/" + st.TargetID
	if ops := t.prof.diffOps(cur, doc); len(ops) > 0 {
		if _, err := tk.call(ctx, t.c, "update", "PATCH", path, patchBody(ops)); err != nil {
			return err
		}
	}
	have, want := membersOf(cur), membersOf(doc)
	add, remove := minus(want, have), minus(have, want)
	if len(add)+len(remove) == 0 {
		return nil
	}
	// Mark the membership as uncertain until every chunk is through (see syncGroup).
	_, sent := cur.hash()
	mark := cache.PushState{Type: scim.GroupType, TargetID: st.TargetID, Sent: sent, Active: true}
	if err := t.st.RecordPush(ctx, t.cfg.Name, []cache.PushOutcome{{ID: tk.id, State: &mark, KeepDeadLetter: true}}); err != nil {
		return wrapStore("record", err)
	}
	*st = mark
	for _, ops := range t.prof.memberOps(add, remove, t.cfg.MembershipChunk) {
		if _, err := tk.call(ctx, t.c, "membership", "PATCH", path, patchBody(ops)); err != nil {
			return err
		}
	}
	return nil
}

// minus returns the sorted a without the sorted b.
func minus(a, b []string) []string {
	var out []string
	j := 0
	for _, v := range a {
		for j < len(b) && b[j] < v {
			j++
		}
		if j < len(b) && b[j] == v {
			continue
		}
		out = append(out, v)
	}
	return out
}
