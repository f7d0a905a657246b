package hrsync_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// BenchmarkEnrich100k measures the passes of an enrich file over a cache of directory users
// (LDAPSCIM_BENCH_USERS, default 100,000), in one process: a forced re-import of the same file
// (what `import` does: one read, the walks), a scheduled pass of it (one hash), and a forced
// re-import with 100 rows changed.
//
//	go test -run '^$' -bench Enrich100k -benchtime 3x ./hrsync/  (make bench)
func BenchmarkEnrich100k(b *testing.B) {
	ctx := context.Background()
	n := 100000
	if v := os.Getenv("LDAPSCIM_BENCH_USERS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	st, err := cache.Open(cache.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < n; i += 1000 {
		var us []*scim.Resource
		for j := i; j < min(i+1000, n); j++ {
			us = append(us, dirUser(j))
		}
		if _, err := st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: us}); err != nil {
			b.Fatal(err)
		}
	}
	th := ingest.Threshold{MaxDeletes: n, MaxDeletePercent: 100}
	src, err := hrsync.New(enrichConfig(), th, st, hrsync.Options{Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	write := func(name string, changed int) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		w.WriteString(enrichHeader)
		for i := range n {
			d := fmt.Sprintf("Dept %d", i%50)
			if i < changed {
				d = "Moved"
			}
			fmt.Fprintf(w, "%d;%s;Title %d;2020-01-01;\r\n", 1000+i, d, i%300)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		return p
	}
	same, moved := write("same.csv", 0), write("moved.csv", 100)
	imp := func(p string, force bool) hrsync.Summary {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		sum, err := src.Import(ctx, f, force, false)
		if err != nil {
			b.Fatal(err)
		}
		return sum
	}
	if sum := imp(same, true); sum.Updated != n {
		b.Fatalf("first import: %+v", sum)
	}
	b.ResetTimer()
	var again, sched, hundred time.Duration
	for range b.N {
		t0 := time.Now()
		if sum := imp(same, true); sum.Unchanged != n {
			b.Fatalf("same file: %+v", sum)
		}
		t1 := time.Now()
		if sum := imp(same, false); !sum.Skipped {
			b.Fatalf("scheduled: %+v", sum)
		}
		t2 := time.Now()
		if sum := imp(moved, true); sum.Updated != 100 {
			b.Fatalf("100 changed: %+v", sum)
		}
		t3 := time.Now()
		imp(same, true) // back
		again, sched, hundred = again+t1.Sub(t0), sched+t2.Sub(t1), hundred+t3.Sub(t2)
	}
	b.ReportMetric(float64(again.Milliseconds())/float64(b.N), "same-forced-ms")
	b.ReportMetric(float64(sched.Microseconds())/1000/float64(b.N), "same-scheduled-ms")
	b.ReportMetric(float64(hundred.Milliseconds())/float64(b.N), "100changed-ms")
}
