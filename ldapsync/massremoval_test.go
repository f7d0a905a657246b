package ldapsync_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// removeMembers deletes the member values of users u(from)..u(to-1) from group everyone.
func removeMembers(t *testing.T, e *env, from, to int) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString("dn: cn=everyone,ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\n")
	var uids []string
	for i := from; i < to; i++ {
		dn := fmt.Sprintf("uid=u%02d,ou=people,dc=example,dc=com", i)
		if i == 1 || i == 2 {
			dn = fmt.Sprintf("uid=u%02d,ou=sub,ou=people,dc=example,dc=com", i)
		}
		fmt.Fprintf(&b, "member: %s\n", dn)
		uids = append(uids, fmt.Sprintf("u%02d", i))
	}
	b.WriteString("-\n")
	e.sl.Modify(t, b.String())
	return uids
}

func (e *env) memberCount(name string) int {
	e.t.Helper()
	n, err := e.store.MemberCount(context.Background(), e.group(name).ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// Invariant 5 (docs/architecture.md): a pass that would remove 30 of a group's 40 members holds the removal:
// the group keeps them, nothing is journaled for them, and approving applies it.
func testMassRemovalHeld(t *testing.T, full bool) {
	e := heldEnv(t)
	ctx := context.Background()
	head := e.journalHead()
	g := e.group("everyone")
	removeMembers(t, e, 10, 40)
	e.sync(full)
	holds, err := e.store.Holds(ctx)
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds %+v, %v; want one", holds, err)
	}
	h := holds[0]
	if h.ID != g.ID || h.Kind != cache.HoldMembers || len(h.Members) != 30 || h.Name != "everyone" || !strings.Contains(h.Reason, "30 of 40") {
		t.Fatalf("hold %+v", h)
	}
	if n := e.memberCount("everyone"); n != 40 {
		t.Fatalf("everyone has %d members after a held removal, want 40", n)
	}
	for _, r := range e.journal() {
		if r.Seq > head && r.ID == g.ID {
			t.Fatalf("a held removal journaled %s %s %s", r.Op, r.Type, r.ID)
		}
	}
	// Later passes hold it again.
	e.sync(false)
	if holds, _ := e.store.Holds(ctx); len(holds) != 1 {
		t.Fatalf("holds after an idle delta: %+v", holds)
	}
	e.sync(true)
	if holds, _ := e.store.Holds(ctx); len(holds) != 1 || len(holds[0].Members) != 30 {
		t.Fatalf("holds after a full pass: %+v", holds)
	}
	if n := e.memberCount("everyone"); n != 40 {
		t.Fatalf("everyone has %d members, want 40", n)
	}
	if _, err := ldapsync.ApproveHolds(ctx, e.store, []string{g.ID}); err != nil {
		t.Fatal(err)
	}
	if n := e.memberCount("everyone"); n != 10 {
		t.Fatalf("everyone has %d members after approval, want 10", n)
	}
	if holds, _ := e.store.Holds(ctx); len(holds) != 0 {
		t.Fatalf("holds after approval: %+v", holds)
	}
	if !slices.ContainsFunc(e.journal(), func(r cache.JournalRecord) bool { return r.Seq > head && r.ID == g.ID }) {
		t.Fatal("the approved removal was not journaled")
	}
	if sum := e.sync(true); sum.Held != 0 {
		t.Fatalf("full pass after approval: %+v", sum)
	}
	if holds, _ := e.store.Holds(ctx); len(holds) != 0 || e.memberCount("everyone") != 10 {
		t.Fatalf("after approval and a full pass: holds %+v, %d members", holds, e.memberCount("everyone"))
	}
}

func TestMassMemberRemovalHeldFull(t *testing.T)  { testMassRemovalHeld(t, true) }
func TestMassMemberRemovalHeldDelta(t *testing.T) { testMassRemovalHeld(t, false) }

// A removal that comes back before approval drops the hold.
func TestMassMemberRemovalHoldDroppedWhenMembersReturn(t *testing.T) {
	e := heldEnv(t)
	ctx := context.Background()
	removeMembers(t, e, 10, 40)
	e.sync(true)
	if holds, _ := e.store.Holds(ctx); len(holds) != 1 {
		t.Fatalf("holds: %+v", holds)
	}
	var b strings.Builder
	b.WriteString("dn: cn=everyone,ou=groups,dc=example,dc=com\nchangetype: modify\nadd: member\n")
	for i := 10; i < 40; i++ {
		fmt.Fprintf(&b, "member: uid=u%02d,ou=people,dc=example,dc=com\n", i)
	}
	b.WriteString("-\n")
	e.sl.Modify(t, b.String())
	e.sync(true)
	if holds, _ := e.store.Holds(ctx); len(holds) != 0 || e.memberCount("everyone") != 40 {
		t.Fatalf("members back: holds %+v, %d members", holds, e.memberCount("everyone"))
	}
}

// Removing 3 of 40 members is below the threshold and applied at once.
func TestSmallMemberRemovalApplied(t *testing.T) {
	for _, full := range []bool{true, false} {
		e := heldEnv(t)
		removeMembers(t, e, 20, 23)
		e.sync(full)
		if holds, _ := e.store.Holds(context.Background()); len(holds) != 0 {
			t.Fatalf("full=%v: holds %+v", full, holds)
		}
		if n := e.memberCount("everyone"); n != 37 {
			t.Fatalf("full=%v: everyone has %d members, want 37", full, n)
		}
	}
}
