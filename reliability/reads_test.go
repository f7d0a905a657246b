//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// latencies collects request durations and errors from several readers.
type latencies struct {
	mu     sync.Mutex
	d      []time.Duration
	errors atomic.Int64
	first  string // the first error, for the log
}

func (l *latencies) add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
	if err != nil {
		if l.errors.Add(1) == 1 {
			l.first = err.Error()
		}
	}
}

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// testReadsUnderPass is R7: four SCIM clients read (pages, filters, users and groups by id)
// while serve runs its first sync of the directory and then a full pass after 1,000 title
// changes. Every answer must be a 200 (a filter or page during the first sync may find
// fewer users, never fail); the table shows p50/p99/max.
func testReadsUnderPass(t *testing.T, bin string, sz sizes) {
	start := time.Now()
	o := sampledata.Options{Enterprise: true, Users: sz.r7Users, Groups: 200, Seed: 13}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, o)}})
	dir := directory(t, sl)
	var users, groups []entry
	for _, e := range dir {
		if e.group {
			groups = append(groups, e)
		} else {
			users = append(users, e)
		}
	}
	t.Logf("R7: %d users, %d groups loaded in %s", len(users), len(groups), time.Since(start))
	s := setup{dir: t.TempDir(), sl: sl, admin: testenv.FreeAddr(t), scim: testenv.FreeAddr(t), timeout: "5m"}
	srv := startServe(t, bin, s.write(t, "serve.toml"), s)
	base := "http://" + s.scim + "/scim/v2"

	// Phase 1: the first sync. Reads by id would 404 until the user arrives: filters and pages.
	l1 := &latencies{}
	passStart := time.Now()
	readWhile(func() error { return srv.pass(context.Background(), false) }, func(r *rand.Rand) string {
		u := users[r.IntN(len(users))]
		if r.IntN(2) == 0 {
			return base + "/Users?filter=" + url.QueryEscape(fmt.Sprintf("userName eq %q", u.uid))
		}
		return fmt.Sprintf("%s/Users?count=50&startIndex=%d", base, 1+r.IntN(1000))
	}, l1, t)
	first := time.Since(passStart)

	// Phase 2: a full pass over the synced cache, with changes to apply; reads by id too.
	var b []byte
	for i := range 1000 {
		b = fmt.Appendf(b, "dn: %s\nchangetype: modify\nreplace: title\ntitle: Under load %d\n\n", users[i*len(users)/1000].dn, i)
	}
	sl.Modify(t, string(b))
	l2 := &latencies{}
	passStart = time.Now()
	readWhile(func() error { return srv.pass(context.Background(), true) }, func(r *rand.Rand) string {
		switch r.IntN(4) {
		case 0:
			return base + "/Users/" + users[r.IntN(len(users))].id
		case 1:
			return base + "/Groups/" + groups[r.IntN(len(groups))].id + "?excludedAttributes=members"
		case 2:
			return base + "/Users?filter=" + url.QueryEscape(fmt.Sprintf("userName eq %q", users[r.IntN(len(users))].uid))
		}
		return fmt.Sprintf("%s/Users?count=50&startIndex=%d", base, 1+r.IntN(1000))
	}, l2, t)
	full := time.Since(passStart)
	srv.stop(t)
	for i, l := range []*latencies{l1, l2} {
		name := []string{"first sync", "full pass"}[i]
		if l.errors.Load() > 0 {
			t.Errorf("R7 during the %s: %d errors, the first: %s", name, l.errors.Load(), l.first)
		}
	}
	record(t, row{kind: fmt.Sprintf("R7 SCIM reads during a pass of %d users", len(users)), trials: len(l1.d) + len(l2.d),
		failures: int(l1.errors.Load() + l2.errors.Load()),
		figure: fmt.Sprintf("first sync (%s): %d reads, p50 %s p99 %s max %s; full pass (%s): %d reads, p50 %s p99 %s max %s",
			first.Round(time.Second), len(l1.d), ms(l1.quantile(0.5)), ms(l1.quantile(0.99)), ms(l1.quantile(1)),
			full.Round(time.Second), len(l2.d), ms(l2.quantile(0.5)), ms(l2.quantile(0.99)), ms(l2.quantile(1))),
		took: time.Since(start)})
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// readWhile runs four readers of next's URLs until pass returns.
func readWhile(pass func() error, next func(*rand.Rand) string, l *latencies, t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				u := next(r)
				start := time.Now()
				err := get(ctx, u)
				if ctx.Err() != nil {
					return // cut off by the end of the pass, not by the server
				}
				l.add(time.Since(start), err)
			}
		})
	}
	err := pass()
	cancel()
	wg.Wait()
	if err != nil {
		t.Errorf("R7: the pass failed: %v", err)
	}
}

func get(ctx context.Context, u string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+scimToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	return nil
}
