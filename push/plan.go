package push

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// PlanChange is what a target would be sent for one resource, judged from what ldapscim last
// sent it (the target itself is not asked).
type PlanChange struct {
	Action string            `json:"action"` // create, update, reactivate, deactivate, delete
	Type   scim.ResourceType `json:"type"`
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Why    string            `json:"why"`
	Attrs  []string          `json:"attrs,omitempty"` // the top-level attributes an update changes
	// MembersAdded and MembersRemoved count a group's membership changes at the target.
	MembersAdded   int `json:"membersAdded,omitempty"`
	MembersRemoved int `json:"membersRemoved,omitempty"`
}

// Plan compares every cached user, and group when the target takes groups, with what the
// target last received, and returns what the worker would send. It changes nothing. Resources
// deleted from the cache are not listed: their deletions are in the journal, not the cache.
func (t *Target) Plan(ctx context.Context) ([]PlanChange, error) {
	b := &batch{t: t}
	if err := b.resolveSourceGroups(ctx); err != nil {
		return nil, err
	}
	var out []PlanChange
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		if typ == scim.GroupType && !t.cfg.Groups {
			break
		}
		var ids []string
		if err := t.st.ForEachID(ctx, typ, func(id string) error { ids = append(ids, id); return nil }); err != nil {
			return nil, wrapStore("ids", err)
		}
		for start := 0; start < len(ids); start += 500 {
			part := ids[start:min(start+500, len(ids))]
			changes, err := t.planChunk(ctx, b, typ, part)
			if err != nil {
				return nil, err
			}
			out = append(out, changes...)
		}
	}
	slices.SortStableFunc(out, func(a, b PlanChange) int {
		if a.Type != b.Type {
			return -strings.Compare(string(a.Type), string(b.Type)) // users first
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

func (t *Target) planChunk(ctx context.Context, b *batch, typ scim.ResourceType, ids []string) ([]PlanChange, error) {
	rs, err := t.st.GetMany(ctx, typ, ids, false)
	if err != nil {
		return nil, wrapStore("resources", err)
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, ids)
	if err != nil {
		return nil, wrapStore("push state", err)
	}
	var graph map[string][]string
	if typ == scim.UserType && len(b.srcGroups) > 0 {
		if graph, err = b.parents(ctx, ids); err != nil {
			return nil, err
		}
	}
	var out []PlanChange
	for _, r := range rs {
		st, has := states[r.ID]
		c := PlanChange{Type: typ, ID: r.ID, Name: displayName(r)}
		var doc document
		want := true
		if typ == scim.UserType {
			want = r.Active() && b.inScope(r, graph)
			if want {
				doc, err = t.userDocument(ctx, r)
			}
		} else {
			want = t.cfg.groupScope == nil || t.cfg.groupScope.Match(r)
			doc = groupDocument(r)
		}
		if err != nil {
			return nil, err
		}
		switch {
		case want && !has:
			c.Action, c.Why = "create", "not at the target yet"
			if typ == scim.UserType {
				c.Why += " (looked up by userName and adopted if the target has it)"
			}
		case want && typ == scim.UserType && !st.Active:
			c.Action, c.Why = "reactivate", "back in scope or enabled again"
		case want && typ == scim.GroupType:
			ok, err := t.planGroup(ctx, &c, st, doc)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		case want:
			hash, _ := doc.hash()
			if hash == st.Hash {
				continue
			}
			c.Action, c.Why, c.Attrs = "update", "changed since it was last sent", changedAttrs(decodeDoc(st.Sent), doc)
		case has && typ == scim.GroupType:
			c.Action, c.Why = "delete", "no longer matches group_filter"
		case has && b.needsDeprovision(&userWork{r: r, has: true, st: st}):
			c.Action = t.cfg.Deprovision
			if c.Action == DeactivateThenDelete {
				c.Action = "deactivate"
				if !st.Active {
					c.Action = "delete"
				}
			}
			c.Why = "out of the target's scope"
			if !r.Active() {
				c.Why = "disabled in the directory"
			}
		default:
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// planGroup fills in c for a group the target holds, with the level comparison a delivery
// makes (members.go), read-only; false when nothing would be sent.
func (t *Target) planGroup(ctx context.Context, c *PlanChange, st cache.PushState, doc document) (bool, error) {
	sent := decodeDoc(st.Sent)
	c.Action, c.Why = "update", "changed since it was last sent"
	if st.Hash == "" {
		// An interrupted membership change: the worker re-reads the group from the target.
		c.Why, c.Attrs = "membership uncertain after an interrupted change: re-read from the target", []string{"members"}
		return true, nil
	}
	useSet := hasMembers(st.Sent)
	ch, err := t.levelMembers(ctx, c.ID, membersOf(sent), useSet)
	if err != nil {
		return false, err
	}
	delete(sent, "members")
	c.Attrs = changedAttrs(sent, doc)
	c.MembersAdded, c.MembersRemoved = len(ch.add), len(ch.remove)
	if len(ch.add)+len(ch.remove) > 0 {
		c.Attrs = append(c.Attrs, "members")
		slices.Sort(c.Attrs)
	}
	return len(c.Attrs) > 0, nil
}

func displayName(r *scim.Resource) string {
	if d := r.DisplayName(); d != "" {
		return d
	}
	return r.UserName()
}

func changedAttrs(old, cur document) []string {
	var out []string
	for k, v := range cur {
		if !equalJSON(old[k], v) {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// ExplainScope says whether u is in the target's scope, and why.
func (t *Target) ExplainScope(ctx context.Context, u *scim.Resource) (bool, string, error) {
	cfg := &t.cfg
	if !u.Active() {
		return false, "the user is inactive: a target gets active users only (deprovision = " + cfg.Deprovision + ")", nil
	}
	if cfg.scope == nil && len(cfg.SourceGroups) == 0 {
		return true, "the target has no scope: every active user", nil
	}
	var why []string
	if cfg.scope != nil {
		if cfg.scope.Match(u) {
			return true, fmt.Sprintf("scope %q matches", cfg.Scope), nil
		}
		why = append(why, fmt.Sprintf("scope %q does not match", cfg.Scope))
	}
	if len(cfg.SourceGroups) > 0 {
		groups, err := t.st.TransitiveGroupsOf(ctx, u.ID)
		if err != nil {
			return false, "", wrapStore("groups", err)
		}
		for _, g := range groups {
			for _, name := range cfg.SourceGroups {
				if strings.EqualFold(g.Display, name) {
					return true, fmt.Sprintf("member of source group %q (directly or through nested groups)", g.Display), nil
				}
			}
		}
		why = append(why, fmt.Sprintf("not a member of any source group %q", cfg.SourceGroups))
	}
	return false, strings.Join(why, "; "), nil
}

// TargetNamed returns the target worker called name.
func (p *Pusher) TargetNamed(name string) (*Target, bool) {
	for _, t := range p.targets {
		if t.cfg.Name == name {
			return t, true
		}
	}
	return nil, false
}

// TargetWorkers returns every target worker, in config order.
func (p *Pusher) TargetWorkers() []*Target { return slices.Clone(p.targets) }
