package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

const benchConcurrency = 8

func benchUser(prefix string, i int) *scim.Resource {
	return &scim.Resource{Type: scim.UserType, ID: fmt.Sprintf("%08d-0000-4000-8000-%012d", i, i), ExternalID: fmt.Sprintf("E%06d", i),
		Attributes: map[string]any{
			"userName":                fmt.Sprintf("%suser%06d@example.com", prefix, i),
			"name":                    map[string]any{"givenName": "Given", "familyName": fmt.Sprintf("Family%d", i), "formatted": "Given Family"},
			"displayName":             fmt.Sprintf("Given Family%d", i),
			"emails":                  []any{map[string]any{"value": fmt.Sprintf("user%06d@example.com", i), "type": "work", "primary": true}},
			"title":                   "Engineer",
			"active":                  true,
			scim.SchemaEnterpriseUser: map[string]any{"department": "Engineering", "employeeNumber": fmt.Sprintf("E%06d", i)},
		}}
}

func fillStore(b *testing.B, st *cache.Store, from, n int) {
	for start := from; start < from+n; start += 5000 {
		var rs []*scim.Resource
		for i := start; i < min(start+5000, from+n); i++ {
			rs = append(rs, benchUser("", i))
		}
		if _, err := st.Apply(context.Background(), cache.Batch{Source: "bench", Upserts: rs}); err != nil {
			b.Fatal(err)
		}
	}
}

// plainLoop POSTs the documents with benchConcurrency goroutines and a plain http.Client.
func plainLoop(b *testing.B, url, token string, docs [][]byte) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency + 2}}
	start := time.Now()
	for range benchConcurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if int(i) >= len(docs) {
					return
				}
				req, _ := http.NewRequest("POST", url+"/Users", bytes.NewReader(docs[i]))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/scim+json")
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					b.Errorf("plain POST: %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPush10kCreates pushes 10k new users to a local SCIMMY and compares the rate with a
// plain Go HTTP client loop that POSTs the same documents with the same concurrency to the
// same target (other userNames, so they do not collide) in the same run.
func BenchmarkPush10kCreates(b *testing.B) {
	const n = 10000
	sc := testenv.StartScimmy(b)
	for b.Loop() {
		st, err := cache.Open(cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fillStore(b, st, 0, n)
		docs := make([][]byte, n)
		for i := range docs {
			u := benchUser(fmt.Sprintf("plain%d-", time.Now().UnixNano()), i)
			d := map[string]any{"schemas": []string{scim.SchemaUser, scim.SchemaEnterpriseUser}, "externalId": u.ExternalID}
			for k, v := range u.Attributes {
				d[k] = v
			}
			docs[i], _ = json.Marshal(d)
		}
		plainLoop(b, sc.URL, sc.Token, docs[:500]) // warm up node's JIT
		plain := plainLoop(b, sc.URL, sc.Token, docs[500:])
		plainRate := float64(n-500) / plain.Seconds()

		tc := []push.TargetConfig{{Name: "bench", URL: sc.URL, Token: confval.NewSecret(sc.Token), Concurrency: benchConcurrency}}
		if errs := push.Prepare(tc, nil); len(errs) > 0 {
			b.Fatal(errs)
		}
		tg := push.NewTarget(tc[0], st, push.WorkerOptions{})
		start := time.Now()
		for {
			k, err := tg.PushOnce(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
		pushed := time.Since(start)
		pushRate := float64(n) / pushed.Seconds()
		if s, _ := st.PushSummary(context.Background(), "bench"); s.Resources != n || s.DeadLetters != 0 {
			b.Fatalf("pushed %d, dead letters %d", s.Resources, s.DeadLetters)
		}
		st.Close()
		b.ReportMetric(plainRate, "plain-creates/s")
		b.ReportMetric(pushRate, "push-creates/s")
		b.ReportMetric(100*pushRate/plainRate, "%-of-plain")
	}
}

// BenchmarkOutboxTargetDown lets the journal grow to 100k changes while the target is down
// and reports the Go heap in use after 10k and after 100k changes, with the push worker
// running and, as a baseline, without it (the rest is Badger's memtables and caches): the
// outbox is the journal on disk, so the worker's memory does not grow with it.
func BenchmarkOutboxTargetDown(b *testing.B) {
	for b.Loop() {
		at10k, at100k, backlog := outboxHeap(b, true)
		base10k, base100k, _ := outboxHeap(b, false)
		b.ReportMetric(at10k, "heapMB@10k")
		b.ReportMetric(at100k, "heapMB@100k")
		b.ReportMetric(base10k, "noworker-heapMB@10k")
		b.ReportMetric(base100k, "noworker-heapMB@100k")
		b.ReportMetric(float64(backlog), "backlog")
	}
}

func outboxHeap(b *testing.B, worker bool) (at10k, at100k float64, backlog uint64) {
	st, err := cache.Open(cache.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	down := "http://127.0.0.1:1/scim/v2" // nothing listens on port 1
	tc := []push.TargetConfig{{Name: "down", URL: down, Token: confval.NewSecret("x"), Concurrency: benchConcurrency,
		RetryPolicy: push.RetryPolicy{BackoffBase: confval.Duration(10 * time.Millisecond), BackoffMax: confval.Duration(100 * time.Millisecond),
			QuarantineAfter: 5, QuarantineRetry: confval.Duration(200 * time.Millisecond), MaxAttempts: 3},
		PollInterval: confval.Duration(50 * time.Millisecond)}}
	if errs := push.Prepare(tc, nil); len(errs) > 0 {
		b.Fatal(errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tg := push.NewTarget(tc[0], st, push.WorkerOptions{})
	done := make(chan struct{})
	if worker {
		go func() { tg.Run(ctx); close(done) }()
	} else {
		close(done)
	}
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapInuse) / (1 << 20)
	}
	fillStore(b, st, 0, 10000)
	time.Sleep(time.Second)
	at10k = heap()
	for from := 10000; from < 100000; from += 10000 {
		fillStore(b, st, from, 10000)
	}
	time.Sleep(time.Second)
	at100k = heap()
	s := tg.Status(context.Background())
	cancel()
	<-done
	if worker && (!s.Quarantined || s.JournalHead < 100000) {
		b.Fatalf("want a quarantined target with 100k changes waiting: %+v", s)
	}
	return at10k, at100k, s.JournalHead - s.Cursor
}
