package push

// Group membership at a target. What the target holds of a group's members is one key per
// member in the cache (cache.SentMember: member id → the member's id at the target), so no
// value grows with the group. A batch brings a group's membership in line in one of two ways:
//
//   - delta: the group's journal records in the batch name the members that changed (their
//     audit diffs), and the batch's users that are members may have just been created or
//     deprovisioned at the target. Only those candidates are looked at: is it a member now,
//     does the target hold the member, was it sent. O(k) key reads for a change of k members,
//     whatever the group's size.
//   - level: a streaming merge, in member id order, of the group's members with its member
//     keys (or with the member list the target returned, when that is what to trust). Memory is
//     constant but for the adds and removes, which are the change itself. Used when the group
//     is new at the target, its state is uncertain or in the format before member keys, with
//     flatten_groups, and when the batch cannot say which members changed (a create, a replay
//     of dead letters, a journal record without its audit record, a very big change).

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// levelPage is how many members a level comparison reads at a time.
const levelPage = 1000

// maxDelta is how many candidate members a delta looks at before a level comparison is
// cheaper.
const maxDelta = 100000

// groupRec is what a batch knows of one journal record of a group.
type groupRec struct {
	seq     uint64
	op      cache.Op
	members bool // Changed names "members"
}

// deltaWork is what a group's delivery compares: the candidate member ids, or everything.
type deltaWork struct {
	level      bool
	candidates []string
}

// memberChange is a group's membership change at a target: the target ids to add and remove,
// and the member keys to write once they are through.
type memberChange struct {
	add, remove []string
	sentAdded   []cache.SentMember
	sentRemoved []string
}

func (c *memberChange) empty() bool {
	return len(c.add)+len(c.remove)+len(c.sentAdded)+len(c.sentRemoved) == 0
}

// deltaWork says what the delivery of group gid in this batch has to compare.
func (b *batch) deltaWork(ctx context.Context, gid string) (deltaWork, error) {
	if b.t.cfg.FlattenGroups || b.levelGroups[gid] {
		return deltaWork{level: true}, nil
	}
	cands := map[string]bool{}
	for _, r := range b.grecs[gid] {
		if r.op == cache.OpCreated {
			return deltaWork{level: true}, nil
		}
		if !r.members {
			continue
		}
		a, err := b.t.st.AuditAt(ctx, gid, r.seq)
		if errors.Is(err, cache.ErrNotFound) {
			return deltaWork{level: true}, nil
		}
		if err != nil {
			return deltaWork{}, wrapStore("audit", err)
		}
		for _, c := range a.Diff {
			if c.Path != "members" {
				continue
			}
			for _, id := range append(toStrings(c.Old), toStrings(c.New)...) {
				cands[id] = true
			}
		}
		if len(cands) > maxDelta {
			return deltaWork{level: true}, nil
		}
	}
	for _, id := range b.memberUsers[gid] {
		cands[id] = true
	}
	return deltaWork{candidates: sortedKeys(cands)}, nil
}

// deltaMembers compares the candidates of group gid one by one.
func (t *Target) deltaMembers(ctx context.Context, gid string, cands []string) (memberChange, error) {
	var ch memberChange
	for start := 0; start < len(cands); start += levelPage {
		part := cands[start:min(start+levelPage, len(cands))]
		is, err := t.st.MemberSet(ctx, gid, part)
		if err != nil {
			return ch, wrapStore("members", err)
		}
		states, err := t.st.PushStates(ctx, t.cfg.Name, part)
		if err != nil {
			return ch, wrapStore("push state", err)
		}
		sent, err := t.st.SentMemberIDs(ctx, t.cfg.Name, gid, part)
		if err != nil {
			return ch, wrapStore("sent members", err)
		}
		for _, id := range part {
			want := ""
			if is[id] {
				want = states[id].TargetID
			}
			ch.compare(id, want, sent[id])
		}
	}
	return ch, nil
}

// compare adds what it takes to go from member id held as have (a target id, "" when not
// held) to want.
func (ch *memberChange) compare(id, want, have string) {
	if want == have {
		return
	}
	if have != "" {
		ch.remove = append(ch.remove, have)
		if want == "" {
			ch.sentRemoved = append(ch.sentRemoved, id)
		}
	}
	if want != "" {
		ch.add = append(ch.add, want)
		ch.sentAdded = append(ch.sentAdded, cache.SentMember{ID: id, TargetID: want})
	}
}

// wantedMembers pages through the members group gid should have at the target, in id order,
// with their target ids: its direct members that the target holds, or with flatten_groups the
// users of it and its nested groups.
type wantedMembers struct {
	t     *Target
	gid   string
	flat  []string // flatten_groups: every user, sorted
	after string
	done  bool
	buf   []cache.SentMember
	// extra, if set, gives the target ids of members without push state (a reconciliation's
	// adoptions, not written yet).
	extra map[string]string
}

func (t *Target) wanted(ctx context.Context, gid string) (*wantedMembers, error) {
	w := &wantedMembers{t: t, gid: gid}
	if t.cfg.FlattenGroups {
		users, err := t.transitiveUsers(ctx, gid)
		if err != nil {
			return nil, err
		}
		w.flat = users
		if w.flat == nil {
			w.flat = []string{}
		}
	}
	return w, nil
}

// next returns the next page, nil at the end.
func (w *wantedMembers) next(ctx context.Context) ([]cache.SentMember, error) {
	for !w.done {
		var ids []string
		if w.flat != nil {
			ids = w.flat[:min(levelPage, len(w.flat))]
			w.flat = w.flat[len(ids):]
			w.done = len(w.flat) == 0
		} else {
			ms, err := w.t.st.Members(ctx, w.gid, w.after, levelPage)
			if err != nil {
				return nil, wrapStore("members", err)
			}
			for _, m := range ms {
				ids = append(ids, m.Value)
			}
			w.done = len(ms) < levelPage
		}
		if len(ids) == 0 {
			break
		}
		w.after = ids[len(ids)-1]
		states, err := w.t.st.PushStates(ctx, w.t.cfg.Name, ids)
		if err != nil {
			return nil, wrapStore("push state", err)
		}
		w.buf = w.buf[:0]
		for _, id := range ids {
			if s, ok := states[id]; ok && s.TargetID != "" {
				w.buf = append(w.buf, cache.SentMember{ID: id, TargetID: s.TargetID})
			} else if tid := w.extra[id]; tid != "" {
				w.buf = append(w.buf, cache.SentMember{ID: id, TargetID: tid})
			}
		}
		if len(w.buf) > 0 {
			return w.buf, nil
		}
	}
	return nil, nil
}

// stream is a paged, peekable sequence of members in id order.
type stream struct {
	fetch func(ctx context.Context) ([]cache.SentMember, error)
	buf   []cache.SentMember
	done  bool
}

func (s *stream) peek(ctx context.Context) (cache.SentMember, bool, error) {
	for len(s.buf) == 0 && !s.done {
		page, err := s.fetch(ctx)
		if err != nil {
			return cache.SentMember{}, false, err
		}
		if page == nil {
			s.done = true
		}
		s.buf = page
	}
	if len(s.buf) == 0 {
		return cache.SentMember{}, false, nil
	}
	return s.buf[0], true, nil
}

func (s *stream) pop() { s.buf = s.buf[1:] }

// levelMembers compares every member of group gid with its member keys, in one merge. With
// useSet the target's own member list (targetSet, sorted) is what the requests go against
// instead of the keys, which are then brought in line with what is wanted.
func (t *Target) levelMembers(ctx context.Context, gid string, targetSet []string, useSet bool) (memberChange, error) {
	var ch memberChange
	w, err := t.wanted(ctx, gid)
	if err != nil {
		return ch, err
	}
	after := ""
	sentDone := false
	want := &stream{fetch: w.next}
	sent := &stream{fetch: func(ctx context.Context) ([]cache.SentMember, error) {
		if sentDone {
			return nil, nil
		}
		page, err := t.st.SentMembers(ctx, t.cfg.Name, gid, after, levelPage)
		if err != nil {
			return nil, wrapStore("sent members", err)
		}
		if len(page) < levelPage {
			sentDone = true
		}
		if len(page) == 0 {
			return nil, nil
		}
		after = page[len(page)-1].ID
		return page, nil
	}}
	var seen []bool
	if useSet {
		seen = make([]bool, len(targetSet))
	}
	// wanted records a wanted member against the target's list.
	wanted := func(m cache.SentMember) {
		i, ok := slices.BinarySearch(targetSet, m.TargetID)
		if ok {
			seen[i] = true
		} else {
			ch.add = append(ch.add, m.TargetID)
		}
	}
	for {
		wm, wok, err := want.peek(ctx)
		if err != nil {
			return ch, err
		}
		sm, sok, err := sent.peek(ctx)
		if err != nil {
			return ch, err
		}
		if !wok && !sok {
			break
		}
		switch {
		case wok && (!sok || wm.ID < sm.ID):
			want.pop()
			if useSet {
				wanted(wm)
				ch.sentAdded = append(ch.sentAdded, wm)
			} else {
				ch.compare(wm.ID, wm.TargetID, "")
			}
		case !wok || sm.ID < wm.ID:
			sent.pop()
			if useSet {
				ch.sentRemoved = append(ch.sentRemoved, sm.ID)
			} else {
				ch.compare(sm.ID, "", sm.TargetID)
			}
		default:
			want.pop()
			sent.pop()
			if useSet {
				wanted(wm)
				if wm.TargetID != sm.TargetID {
					ch.sentAdded = append(ch.sentAdded, wm)
				}
			} else {
				ch.compare(wm.ID, wm.TargetID, sm.TargetID)
			}
		}
	}
	for i, id := range targetSet {
		if !seen[i] {
			ch.remove = append(ch.remove, id)
		}
	}
	sort.Strings(ch.add)
	ch.add = slices.Compact(ch.add)
	return ch, nil
}

// transitiveUsers returns the users in group gid and its nested groups, sorted; it streams
// each group's members instead of loading the group.
func (t *Target) transitiveUsers(ctx context.Context, gid string) ([]string, error) {
	users := map[string]bool{}
	seen := map[string]bool{gid: true}
	todo := []string{gid}
	for len(todo) > 0 {
		g := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		err := t.st.ForEachMember(ctx, g, "", func(m scim.Member) error {
			switch {
			case m.Type == scim.GroupType && !seen[m.Value]:
				seen[m.Value] = true
				todo = append(todo, m.Value)
			case m.Type != scim.GroupType:
				users[m.Value] = true
			}
			return nil
		})
		if err != nil {
			return nil, wrapStore("members", err)
		}
	}
	return sortedKeys(users), nil
}
