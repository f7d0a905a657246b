package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// kill -9 of `ldapscim sync` mid-pass, then a rerun: the cache equals the directory, every
// resource has exactly one journal record (its creation), sequence numbers have no gaps, and a
// watermark is only ever stored together with all the data it covers.
func TestKill9MidSyncLosesAndDuplicatesNothing(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{
		testenv.SampleLDIF(t, sampledata.Options{Users: 8000, Groups: 30, Seed: 11, NestedGroup: true, Disabled: 5}),
	}})
	ctx := context.Background()

	refDir := t.TempDir()
	start := time.Now()
	if out, err := command(ctx, "sync", "--config", writeConfig(t, sl, refDir, "")).CombinedOutput(); err != nil {
		t.Fatalf("reference sync: %v\n%s", err, out)
	}
	full := time.Since(start)
	want := testenv.ReadCache(t, filepath.Join(refDir, "cache")).Versions
	t.Logf("reference: %d resources in %s", len(want), full)

	// The first sync into an empty cache is a bulk load: nothing is in the cache until its
	// tables are written (the first kill lands there, while load.incomplete exists), then
	// the rest of the pass and the watermark follow in transactions.
	midway := 0
	for _, frac := range []float64{-1, 0.15, 0.35, 0.55, 0.75} {
		dir := t.TempDir()
		cfg := writeConfig(t, sl, dir, "")
		cmd := command(ctx, "sync", "--config", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if frac < 0 {
			marker := filepath.Join(dir, "cache", "load.incomplete")
			deadline := time.Now().Add(10*full + 30*time.Second)
			for _, err := os.Stat(marker); err != nil; _, err = os.Stat(marker) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the first sync never wrote its tables as a bulk load")
				}
				time.Sleep(time.Millisecond)
			}
		} else {
			time.Sleep(time.Duration(frac * float64(full)))
		}
		cmd.Process.Signal(syscall.SIGKILL)
		when := fmt.Sprintf("at %.0f%%", frac*100)
		if frac < 0 {
			when = "while the bulk load wrote its tables"
		}
		if cmd.Wait() == nil {
			t.Logf("killed %s: the sync had finished", when)
		}

		cs := testenv.ReadCache(t, filepath.Join(dir, "cache"))
		got, wm := cs.Versions, cs.Watermark
		t.Logf("killed %s: %d resources, %d journal records, watermark %v", when, len(got), len(cs.Journal), wm != nil)
		if wm == nil {
			midway++ // killed before the pass was complete
		}
		if frac < 0 && len(got) != 0 {
			t.Errorf("%d resources after a kill while the bulk load wrote its tables; want none", len(got))
		}
		if wm != nil && len(got) != len(want) {
			t.Errorf("watermark stored with only %d of %d resources", len(got), len(want))
		}
		checkJournal(t, cs)

		if out, err := command(ctx, "sync", "--config", cfg).CombinedOutput(); err != nil {
			t.Fatalf("rerun: %v\n%s", err, out)
		}
		cs = testenv.ReadCache(t, filepath.Join(dir, "cache"))
		got, wm = cs.Versions, cs.Watermark
		if wm == nil {
			t.Error("no watermark after a complete rerun")
		}
		for id, v := range want {
			if got[id] != v {
				t.Errorf("after rerun, %s has version %q, want %q", id, got[id], v)
				break
			}
		}
		if len(got) != len(want) {
			t.Errorf("after rerun: %d resources, want %d", len(got), len(want))
		}
		checkJournal(t, cs)
		os.RemoveAll(dir)
	}
	if midway == 0 {
		t.Fatal("no kill landed in the middle of a pass; the test proved nothing")
	}
}

// checkJournal: sequence numbers 1..n without gaps, one "created" record per cached resource
// and no record for anything not cached.
func checkJournal(t *testing.T, cs testenv.CacheState) {
	t.Helper()
	if err := cs.JournalGaps(); err != nil {
		t.Fatal(err)
	}
	snap := cs.Versions
	per := map[string]int{}
	for _, r := range cs.Journal {
		if r.Op != cache.OpCreated {
			t.Errorf("journal record %d is %s %s; a load from scratch only creates", r.Seq, r.Op, r.ID)
		}
		per[r.ID]++
	}
	for id := range snap {
		if per[id] != 1 {
			t.Errorf("resource %s has %d journal records, want 1", id, per[id])
		}
	}
	if len(per) != len(snap) {
		t.Errorf("%d ids in the journal, %d resources cached", len(per), len(snap))
	}
}
