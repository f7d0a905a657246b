package push_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// BenchmarkGroupDelta pushes a change of 100 members (50 leave, 50 join) of a group of 1,000
// and of one of 100,000 members, and reports the median time of a push of such a change for
// each, and their ratio: a delivery reads and writes what changed, not the group. The target
// is a stub that accepts every request (SCIMMY's own cost grows with the group, see
// TestBigGroupDeltaSendsOnlyTheChange for the real target); the users are at the target already
// (their push states are seeded).
func BenchmarkGroupDelta(b *testing.B) {
	for b.Loop() {
		small := groupDeltaCost(b, 1000)
		big := groupDeltaCost(b, 100000)
		b.Logf("100-member change: %.2f ms in a 1k-member group, %.2f ms in a 100k-member group (%.2fx)", small, big, big/small)
		b.ReportMetric(small, "ms/change@1k")
		b.ReportMetric(big, "ms/change@100k")
		b.ReportMetric(big/small, "ratio")
	}
}

func groupDeltaCost(b *testing.B, n int) float64 {
	const change, rounds = 100, 15
	var patches, members atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/scim+json")
		switch {
		case r.Method == "POST":
			w.WriteHeader(201)
			io.WriteString(w, `{"id":"tg-1"}`)
		case r.Method == "GET":
			io.WriteString(w, `{"Resources":[]}`)
		default:
			patches.Add(1)
			members.Add(int64(strings.Count(string(body), `{"value"`) + strings.Count(string(body), "value eq")))
			io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	st, err := cache.Open(cache.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	total := n + change/2
	us := make([]*scim.Resource, total)
	for i := range us {
		us[i] = benchUser("", i)
	}
	for start := 0; start < total; start += 5000 {
		part := us[start:min(start+5000, total)]
		if _, err := st.Apply(ctx, cache.Batch{Source: "bench", Upserts: part}); err != nil {
			b.Fatal(err)
		}
		var outs []cache.PushOutcome
		for _, u := range part {
			outs = append(outs, cache.PushOutcome{ID: u.ID, State: &cache.PushState{Type: scim.UserType, TargetID: "t-" + u.ID, Hash: "seeded", Active: true}})
		}
		if err := st.RecordPush(ctx, "bench", outs); err != nil {
			b.Fatal(err)
		}
	}
	head, _ := st.JournalHead(ctx)
	if err := st.SetPushCursor(ctx, "bench", head); err != nil {
		b.Fatal(err)
	}
	gid := "99999999-0000-4000-8000-000000000002"
	g := &scim.Resource{Type: scim.GroupType, ID: gid, Attributes: map[string]any{"displayName": "bench group"}}
	for _, u := range us[:n] {
		g.Members = append(g.Members, scim.Member{Value: u.ID, Type: scim.UserType, Display: u.DisplayName()})
	}
	if _, err := st.Apply(ctx, cache.Batch{Source: "bench", Upserts: []*scim.Resource{g}}); err != nil {
		b.Fatal(err)
	}
	tc := []push.TargetConfig{{Name: "bench", URL: srv.URL, Token: confval.NewSecret("x"), Groups: true, Concurrency: benchConcurrency}}
	if errs := push.Prepare(tc, nil); len(errs) > 0 {
		b.Fatal(errs)
	}
	tg := push.NewTarget(tc[0], st, push.WorkerOptions{})
	pushAll := func() {
		for {
			k, err := tg.PushOnce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				return
			}
		}
	}
	pushAll() // creates the group with its n members
	// Each round swaps 50 members for the 50 users outside the group, and back.
	out, in := us[:change/2], us[n:]
	var times []time.Duration
	for range rounds {
		ed := cache.MemberEdit{Group: gid}
		for _, u := range out {
			ed.Remove = append(ed.Remove, u.ID)
		}
		for _, u := range in {
			ed.Set = append(ed.Set, scim.Member{Value: u.ID, Type: scim.UserType, Display: u.DisplayName()})
		}
		if _, err := st.Apply(ctx, cache.Batch{Source: "bench", MemberEdits: []cache.MemberEdit{ed}}); err != nil {
			b.Fatal(err)
		}
		out, in = in, out
		patches.Store(0)
		members.Store(0)
		start := time.Now()
		pushAll()
		times = append(times, time.Since(start))
		if members.Load() != change {
			b.Fatalf("group of %d: a change of %d members sent %d member values in %d PATCHes", n, change, members.Load(), patches.Load())
		}
	}
	slicesSortDurations(times)
	return float64(times[len(times)/2].Microseconds()) / 1000
}

func slicesSortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}
