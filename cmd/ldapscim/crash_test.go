package main

import (
	"context"
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

	midway := 0
	for _, frac := range []float64{0.15, 0.35, 0.55, 0.75} {
		dir := t.TempDir()
		cfg := writeConfig(t, sl, dir, "")
		cmd := command(ctx, "sync", "--config", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(frac * float64(full)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		cs := testenv.ReadCache(t, filepath.Join(dir, "cache"))
		got, wm := cs.Versions, cs.Watermark
		t.Logf("killed at %.0f%%: %d resources, %d journal records, watermark %v", frac*100, len(got), len(cs.Journal), wm != nil)
		if len(got) > 0 && len(got) < len(want) {
			midway++
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
