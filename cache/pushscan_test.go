package cache

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// ForEachPushRef lists one target's resources in id order with their target ids, not another
// target's, and stops at the callback's error.
func TestForEachPushRef(t *testing.T) {
	st, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.RecordPush(ctx, "okta", []PushOutcome{
		{ID: "u2", State: &PushState{Type: scim.UserType, TargetID: "t2", Sent: []byte(`{"userName":"b"}`)}},
		{ID: "g1", State: &PushState{Type: scim.GroupType, TargetID: "tg"}},
		{ID: "u1", State: &PushState{Type: scim.UserType, TargetID: "t1"}},
	}))
	must(st.RecordPush(ctx, "okta2", []PushOutcome{{ID: "u9", State: &PushState{Type: scim.UserType, TargetID: "x"}}}))
	must(st.RecordPush(ctx, "okt", []PushOutcome{{ID: "u8", State: &PushState{Type: scim.UserType, TargetID: "y"}}}))
	var got []PushRef
	must(st.ForEachPushRef(ctx, "okta", func(p PushRef) error { got = append(got, p); return nil }))
	want := []PushRef{{"g1", scim.GroupType, "tg"}, {"u1", scim.UserType, "t1"}, {"u2", scim.UserType, "t2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("refs %+v, want %+v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := st.ForEachPushRef(ctx, "okta", func(PushRef) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stopping: %v after %d", err, n)
	}
}
