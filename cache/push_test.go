package cache

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

func TestPushStateCursorDeadLettersAudit(t *testing.T) {
	st, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if c, _ := st.PushCursor(ctx, "okta"); c != 0 {
		t.Fatalf("fresh cursor %d", c)
	}
	if err := st.SetPushCursor(ctx, "okta", 42); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(time.Hour)
	err = st.RecordPush(ctx, "okta", []PushOutcome{
		{ID: "u1", State: &PushState{Type: scim.UserType, TargetID: "t1", Hash: "h", Active: true},
			Audit: []PushAudit{{Op: "create", Method: "POST", Status: 201}}},
		{ID: "u2", State: &PushState{Type: scim.UserType, TargetID: "t2", DeleteAt: due},
			Audit: []PushAudit{{Op: "deactivate", Status: 200}}},
		{ID: "u3", DeadLetter: &DeadLetter{Op: "create", Status: 400, Error: "bad", Body: `{"detail":"x"}`, Attempts: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	states, err := st.PushStates(ctx, "okta", []string{"u1", "u2", "u3"})
	if err != nil || len(states) != 2 || states["u1"].TargetID != "t1" || !states["u2"].DeleteAt.Equal(due) {
		t.Fatalf("states %v %+v", err, states)
	}
	if ids, _ := st.DueDeletes(ctx, "okta", time.Now(), 10); len(ids) != 0 {
		t.Fatalf("nothing due yet: %v", ids)
	}
	if ids, _ := st.DueDeletes(ctx, "okta", due.Add(time.Second), 10); len(ids) != 1 || ids[0] != "u2" {
		t.Fatalf("due: %v", ids)
	}
	sum, err := st.PushSummary(ctx, "okta")
	if err != nil || sum != (PushSummary{Cursor: 42, Resources: 2, DeadLetters: 1, DueDeletes: 1}) {
		t.Fatalf("summary %v %+v", err, sum)
	}
	// Dropping the state removes the due deletion; delivering u3 clears its dead letter.
	err = st.RecordPush(ctx, "okta", []PushOutcome{{ID: "u2", DropState: true}, {ID: "u3", State: &PushState{TargetID: "t3"}}})
	if err != nil {
		t.Fatal(err)
	}
	sum, _ = st.PushSummary(ctx, "okta")
	if sum != (PushSummary{Cursor: 42, Resources: 2, DeadLetters: 0, DueDeletes: 0}) {
		t.Fatalf("summary after %+v", sum)
	}
	st.RecordPush(ctx, "okta", []PushOutcome{{ID: "u4", DeadLetter: &DeadLetter{Error: "x"}}, {ID: "u5", DeadLetter: &DeadLetter{Error: "y"}}})
	if n, err := st.DropDeadLetters(ctx, "okta", nil); err != nil || n != 2 {
		t.Fatalf("drop all: %d %v", n, err)
	}
	audit, err := st.PushAudit(ctx, "u1")
	if err != nil || len(audit) != 1 || audit[0].Target != "okta" || audit[0].Status != 201 {
		t.Fatalf("audit %v %+v", err, audit)
	}
	if other, _ := st.PushSummary(ctx, "other"); other != (PushSummary{}) {
		t.Fatalf("targets must not share state: %+v", other)
	}
	if err := st.SetSourceMembers(ctx, "okta", "g1", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.SourceMembers(ctx, "okta", "g1"); len(m) != 2 {
		t.Fatalf("source members %v", m)
	}
}

// Webhook dead letters are kept per event (EventSeq); one stored before that, per resource, is
// still removed by a replay of its event, and only by that.
func TestDeadLettersPerEvent(t *testing.T) {
	s := openDir(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	record := func(o PushOutcome) {
		t.Helper()
		if err := s.RecordPush(ctx, "hook", []PushOutcome{o}); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func() []uint64 {
		t.Helper()
		dls, err := s.DeadLetters(ctx, "hook")
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, d := range dls {
			out = append(out, d.Seq)
		}
		return out
	}
	record(PushOutcome{ID: "u1", DeadLetter: &DeadLetter{Seq: 5}}) // as before: one per resource
	record(PushOutcome{ID: "u1", EventSeq: 7, DeadLetter: &DeadLetter{Seq: 7}})
	record(PushOutcome{ID: "u1", EventSeq: 9, DeadLetter: &DeadLetter{Seq: 9}})
	if got := seqs(); !slices.Equal(got, []uint64{5, 7, 9}) {
		t.Fatalf("dead letters %v, want 5 7 9", got)
	}
	record(PushOutcome{ID: "u1", EventSeq: 9, KeepDeadLetter: true}) // a later event went out
	record(PushOutcome{ID: "u1", EventSeq: 6})                       // no such event: nothing
	if got := seqs(); !slices.Equal(got, []uint64{5, 7, 9}) {
		t.Fatalf("dead letters %v, want 5 7 9 still", got)
	}
	record(PushOutcome{ID: "u1", EventSeq: 5}) // the old-style one, replayed
	record(PushOutcome{ID: "u1", EventSeq: 9})
	if got := seqs(); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("dead letters %v, want 7", got)
	}
	if n, err := s.DropDeadLetters(ctx, "hook", []string{"u1"}); err != nil || n != 1 || len(seqs()) != 0 {
		t.Fatalf("drop u1: %d %v %v", n, err, seqs())
	}
}
