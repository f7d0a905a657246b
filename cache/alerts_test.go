package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// An alert is one open record per condition: raising it again stores nothing, resolving it
// keeps the record until the resolved text is delivered, and a later raise of the same
// condition opens a new one. Records survive a reopen.
func TestAlertLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	a := StoredAlert{Kind: "quarantine", Target: "crm", Text: "crm quarantined"}
	if opened, _, err := s.RaiseAlert(ctx, "chat", a, 10); err != nil || !opened {
		t.Fatalf("raise: %v %v", opened, err)
	}
	if opened, _, err := s.RaiseAlert(ctx, "chat", a, 10); err != nil || opened {
		t.Fatalf("a repeat while open must not open another: %v %v", opened, err)
	}
	if opened, _, _ := s.RaiseAlert(ctx, "other", a, 10); !opened {
		t.Fatal("sinks are separate")
	}
	s.Close()
	s = openDir(t, dir)
	defer s.Close()
	got, err := s.Alerts(ctx, "chat")
	if err != nil || len(got) != 1 || got[0].Seq != 1 || !got[0].Pending() || got[0].Raised.IsZero() {
		t.Fatalf("after reopening: %+v %v", got, err)
	}
	if err := s.AlertFailed(ctx, "chat", 1, 3, time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.AlertDelivered(ctx, "chat", 1, false); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Alerts(ctx, "chat")
	if len(got) != 1 || got[0].Pending() || got[0].Attempts != 0 || !got[0].NextAt.IsZero() {
		t.Fatalf("delivered, still open: %+v", got)
	}
	if found, err := s.ResolveAlert(ctx, "chat", "quarantine", "crm", "", "crm recovered"); err != nil || !found {
		t.Fatalf("resolve: %v %v", found, err)
	}
	if found, _ := s.ResolveAlert(ctx, "chat", "quarantine", "crm", "", "again"); found {
		t.Fatal("a resolved alert is not open any more")
	}
	// The condition comes back before the resolved text went out: a new alert.
	if opened, _, _ := s.RaiseAlert(ctx, "chat", a, 10); !opened {
		t.Fatal("a raise after the resolve opens a new alert")
	}
	got, _ = s.Alerts(ctx, "chat")
	if len(got) != 2 || !got[0].Resolved || got[0].ResolvedText != "crm recovered" || !got[0].Pending() || got[1].Seq != 2 {
		t.Fatalf("records: %+v", got)
	}
	if err := s.AlertDelivered(ctx, "chat", 1, true); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Alerts(ctx, "chat"); len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("a delivered resolved text removes the record: %+v", got)
	}
	s.ResolveAlert(ctx, "chat", "quarantine", "crm", "", "")
	if got, _ = s.Alerts(ctx, "chat"); got[0].ResolvedText != "resolved: crm quarantined" {
		t.Fatalf("default resolved text: %q", got[0].ResolvedText)
	}
}

// A sink holds at most limit records; the oldest go, and their conditions may open again.
func TestAlertsAreBounded(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	var dropped []StoredAlert
	for i := range 8 {
		_, d, err := s.RaiseAlert(ctx, "chat", StoredAlert{Kind: "dead_letter", Target: "crm", Key: fmt.Sprint(i), Text: "x"}, 5)
		if err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, d...)
	}
	got, _ := s.Alerts(ctx, "chat")
	if len(got) != 5 || got[0].Key != "3" || len(dropped) != 3 || dropped[0].Key != "0" {
		t.Fatalf("kept %+v, dropped %+v", got, dropped)
	}
	if opened, _, _ := s.RaiseAlert(ctx, "chat", StoredAlert{Kind: "dead_letter", Target: "crm", Key: "0", Text: "x"}, 5); !opened {
		t.Fatal("a dropped alert's condition opens again")
	}
	if err := s.DropAlert(ctx, "chat", got[1].Seq); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Alerts(ctx, "chat"); len(got) != 4 {
		t.Fatalf("after a drop: %d records", len(got))
	}
	// The count follows drops and deliveries: five more fit before the oldest goes again.
	_, d, _ := s.RaiseAlert(ctx, "chat", StoredAlert{Kind: "dead_letter", Target: "crm", Key: "new", Text: "x"}, 5)
	if len(d) != 0 {
		t.Fatalf("dropped %+v with room left", d)
	}
}

// HasDeadLetter and HasHolds answer the "has the condition cleared?" of the alert kinds.
func TestAlertConditions(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	dl := &DeadLetter{ID: "u1", Type: scim.UserType, Seq: 7, Op: "create", Error: "x"}
	if err := s.RecordPush(ctx, "crm", []PushOutcome{{ID: "u1", DeadLetter: dl}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPush(ctx, "hook", []PushOutcome{{ID: "u1", DeadLetter: dl, EventSeq: 7}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		seq    uint64
		want   bool
	}{{"crm", 0, true}, {"crm", 7, false}, {"hook", 7, true}, {"hook", 8, false}, {"other", 0, false}} {
		if has, err := s.HasDeadLetter(ctx, c.target, "u1", c.seq); err != nil || has != c.want {
			t.Errorf("HasDeadLetter(%s, u1, %d) = %v, %v; want %v", c.target, c.seq, has, err, c.want)
		}
	}
	if has, _ := s.HasHolds(ctx); has {
		t.Fatal("no holds yet")
	}
	mustApply(t, s, Batch{Holds: &[]Hold{{ID: "u1", Type: scim.UserType}}})
	if has, _ := s.HasHolds(ctx); !has {
		t.Fatal("a hold is there")
	}
}
