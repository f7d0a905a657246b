package cache

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// TestForEachIndexed: the walk of an index gives each value (folded) and id, the ids of one
// value together; an error of the callback stops it; IndexDN cannot be walked.
func TestForEachIndexed(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	us := users(1, 5)
	us[2].ExternalID = us[0].ExternalID // users 1 and 3 share an externalId
	us[1].Attributes["userName"] = "MiXed"
	mustApply(t, st, Batch{Source: "ldap", Upserts: us})
	walk := func(idx Index) [][2]string {
		t.Helper()
		var got [][2]string
		if err := st.ForEachIndexed(ctx, idx, func(v, id []byte) error {
			got = append(got, [2]string{string(v), string(id)})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := [][2]string{{"E000001", userID(1)}, {"E000001", userID(3)}, {"E000002", userID(2)}, {"E000004", userID(4)}}
	if got := walk(IndexExternalID); !reflect.DeepEqual(got, want) {
		t.Fatalf("externalId: %v, want %v", got, want)
	}
	// Shorter values first (the length prefix), then in byte order.
	want = [][2]string{{"mixed", userID(2)}, {"user000001", userID(1)}, {"user000003", userID(3)}, {"user000004", userID(4)}}
	if got := walk(IndexUserName); !reflect.DeepEqual(got, want) {
		t.Fatalf("userName: %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := st.ForEachIndexed(ctx, IndexUserName, func(_, _ []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: %v after %d", err, n)
	}
	if err := st.ForEachIndexed(ctx, IndexDN, func(_, _ []byte) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("IndexDN: %v, want ErrInvalid", err)
	}
}

// TestForEachOwner: the walk of the owner keys gives the users every source owns, with the
// source, in id order, and not the directory's.
func TestForEachOwner(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	mustApply(t, st, Batch{Source: "ldap", Upserts: users(1, 3)})
	mustApply(t, st, Batch{Source: "csv:b", Own: true, Upserts: users(5, 6)})
	mustApply(t, st, Batch{Source: "csv:a", Own: true, Upserts: users(3, 5)})
	var got [][2]string
	if err := st.ForEachOwner(ctx, scim.UserType, func(id, src []byte) error {
		got = append(got, [2]string{string(id), string(src)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{userID(3), "csv:a"}, {userID(4), "csv:a"}, {userID(5), "csv:b"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("owners: %v, want %v", got, want)
	}
}

// TestForEachOverlayDigest: the walk gives each overlay's source and key, and the SetDigest of
// its Set: equal to the digest of the same Set built again, different for another Set.
func TestForEachOverlayDigest(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	mustApply(t, st, Batch{Source: "ldap", Upserts: users(1, 3)})
	set1 := map[string]any{"title": "A & B <c>", "active": false, scim.SchemaEnterpriseUser + ":department": "Sales"}
	set2 := map[string]any{"title": "A & B <c>"}
	mustApply(t, st, Batch{Source: "csv:hr", Overlays: map[string]*Overlay{
		userID(1): {Source: "csv:hr", Key: "k1", Set: set1, Under: map[string]any{"title": "Engineer"}},
		userID(2): {Source: "csv:x", Key: "k2", Set: set2},
	}})
	type seen struct {
		id, source, key string
		set             [16]byte
	}
	var got []seen
	if err := st.ForEachOverlayDigest(ctx, func(id, source, key string, set [16]byte) error {
		got = append(got, seen{id, source, key, set})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := func(set map[string]any) [16]byte {
		t.Helper()
		out, err := SetDigest(set)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	rebuilt := map[string]any{scim.SchemaEnterpriseUser + ":department": "Sales", "active": false, "title": "A & B <c>"}
	want := []seen{{userID(1), "csv:hr", "k1", d(rebuilt)}, {userID(2), "csv:x", "k2", d(set2)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("overlays: %+v, want %+v", got, want)
	}
	if d(set1) == d(set2) {
		t.Fatal("two sets with one digest")
	}
}

// TestOverlayHeadParse: the one-pass read of a stored overlay agrees with encoding/json on
// every overlay writeOverlay encodes (escapes, quotes and braces in values, no Under, an empty
// Set), and refuses what it does not know, which encoding/json then reads.
func TestOverlayHeadParse(t *testing.T) {
	for _, o := range []Overlay{
		{Source: "csv:hr", Key: "1000", Set: map[string]any{"title": "Head of Sales", "active": false}, Under: map[string]any{"title": "Engineer", "active": true}},
		{Source: "csv:h\\r \"q\"", Key: "k}{\"\\", Set: map[string]any{"title": "a \"}{][\" b\\", "x": "<&>\u2028é"}},
		{Source: "csv:hr", Key: "", Set: map[string]any{}},
		{Source: "csv:hr", Key: "k", Set: nil, Under: map[string]any{"a": "}"}},
	} {
		v, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var fast, slow overlayHead
		if !fast.parse(v) {
			t.Fatalf("%s: not parsed", v)
		}
		if err := json.Unmarshal(v, &slow); err != nil {
			t.Fatal(err)
		}
		if fast.Source != slow.Source || fast.Key != slow.Key || string(fast.Set) != string(slow.Set) {
			t.Fatalf("%s: parsed %q %q %s, want %q %q %s", v, fast.Source, fast.Key, fast.Set, slow.Source, slow.Key, slow.Set)
		}
	}
	for _, v := range []string{`{"key":"k","source":"s","set":{}}`, `{"source":"s","key":"k","set":{}} `, `{"source":"s","key":"k","set":{"a":"b"}`, `{"source":"s\"`} {
		var h overlayHead
		if h.parse([]byte(v)) {
			t.Fatalf("%s: parsed", v)
		}
	}
}
