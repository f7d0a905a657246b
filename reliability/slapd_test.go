//go:build reliability

package reliability

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// slapdFault is one way the directory fails under a pass; mid says whether it strikes while a
// pass runs (false: between two passes).
type slapdFault struct {
	kind  string
	mid   bool
	fault func(t *testing.T, sl *testenv.Slapd)
}

var slapdFaults = []slapdFault{
	{"R2 slapd kill -9 mid-pass, restarted", true, func(t *testing.T, sl *testenv.Slapd) {
		sl.Kill()
		time.Sleep(300 * time.Millisecond)
		sl.Start(t)
	}},
	{"R2 slapd frozen (SIGSTOP) 5 s mid-pass", true, func(t *testing.T, sl *testenv.Slapd) {
		sl.Freeze(t)
		time.Sleep(5 * time.Second) // past the 3 s [ldap] timeout
		sl.Thaw(t)
	}},
	{"R2 slapd restarted mid-pass (session log lost)", true, func(t *testing.T, sl *testenv.Slapd) { sl.Restart(t) }},
	{"R2 slapd restarted between passes (session log lost)", false, func(t *testing.T, sl *testenv.Slapd) { sl.Restart(t) }},
	// Its contextCSN goes back to the last checkpoint, behind the round's last changes.
	{"R2 slapd kill -9 between passes, restarted", false, func(t *testing.T, sl *testenv.Slapd) {
		sl.Kill()
		sl.Start(t)
	}},
}

// testSlapdFaults is R2: slapd killed, frozen and restarted while `ldapscim sync` runs (full
// and delta passes in turn, each after 500 title changes, 2 additions and 2 deletions), and
// restarted or killed between passes so that syncprov's session log is gone. No pass may delete or
// deactivate anyone the directory still has, and the next pass must converge to a reference
// sync.
func testSlapdFaults(t *testing.T, bin string, sz sizes) {
	o := sampledata.Options{Enterprise: true, Users: sz.users, Groups: 20, Seed: 9}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, o)}})
	s := setup{dir: t.TempDir(), sl: sl, timeout: "3s"}
	cfg := s.write(t, "sync.toml")
	if out, err := exec.Command(bin, "sync", "--full", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("first sync: %v\n%s", err, out)
	}
	// How long the passes the faults strike take here: a full pass over a synced cache, and a
	// delta after one round of changes. A fault lands at a random point inside.
	windows := map[bool]time.Duration{}
	for _, full := range []bool{true, false} {
		changeDirectory(t, sl, 900+len(windows), 500, 2, false)
		args := []string{"sync", "--config", cfg}
		if full {
			args = append(args, "--full")
		}
		start := time.Now()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		windows[full] = time.Since(start)
	}
	t.Logf("R2: a full pass takes %s, a delta %s", windows[true], windows[false])
	round := 0
	for _, f := range slapdFaults {
		if !strings.Contains(f.kind, sz.r2Fault) {
			continue
		}
		start := time.Now()
		var falseDel, unconverged, failedPasses int
		for i := range sz.faults {
			round++
			full := i%2 == 0
			fd, conv, failed := slapdTrial(t, bin, cfg, s, f, round, full, windows[full])
			falseDel += fd
			failedPasses += failed
			if !conv {
				unconverged++
			}
		}
		fails := min(sz.faults, falseDel+unconverged)
		record(t, row{kind: f.kind, trials: sz.faults, failures: fails,
			figure: fmt.Sprintf("false deletions %d, next pass not converged %d, faulted passes that failed %d", falseDel, unconverged, failedPasses),
			took:   time.Since(start)})
	}
}

// slapdTrial changes the directory, runs a pass with the fault, and returns the false
// deletions, whether the next pass converged, and 1 when the faulted pass failed.
func slapdTrial(t *testing.T, bin, cfg string, s setup, f slapdFault, round int, full bool, window time.Duration) (falseDel int, converged bool, failed int) {
	t.Helper()
	cacheDir := filepath.Join(s.dir, "cache")
	before := testenv.ReadCache(t, cacheDir)
	head := len(before.Journal)
	changeDirectory(t, s.sl, 1000+round, 500, 2, false)
	args := []string{"sync", "--config", cfg}
	if full {
		args = append(args, "--full")
	}
	if !f.mid {
		f.fault(t, s.sl)
	}
	cmd := exec.Command(bin, args...)
	out := &testenv.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if f.mid {
		time.Sleep(randDur(window/10, window*9/10))
		f.fault(t, s.sl)
	}
	select {
	case err := <-done:
		if err != nil {
			failed = 1
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s: the pass hung for 3 minutes\n%s", f.kind, out)
		failed = 1
	}
	faulted := testenv.ReadCache(t, cacheDir).Watermark
	t.Logf("%s, trial %d: faulted pass full=%v failed=%v: %s", f.kind, round, full, failed == 1, lastLine(out.String()))
	b, err := exec.Command(bin, "sync", "--config", cfg).CombinedOutput()
	// Deletions by the faulted pass and by the one after it, of entries still there.
	dir := directory(t, s.sl)
	for _, r := range testenv.ReadCache(t, cacheDir).Journal[head:] {
		if _, present := dir[r.ID]; present && (r.Op == cache.OpDeleted || r.Op == cache.OpDeactivated) {
			t.Errorf("%s: %s %s, which the directory still has", f.kind, r.Op, r.ID)
			falseDel++
		}
	}
	if err != nil {
		t.Errorf("%s: the pass after the fault failed: %v\n%s", f.kind, err, tail(string(b), 1500))
		// A full pass, as the nightly one would, so that the next trial starts from a synced cache.
		if b, err := exec.Command(bin, "sync", "--full", "--config", cfg).CombinedOutput(); err != nil {
			t.Fatalf("%s: even a full pass fails after the fault: %v\n%s", f.kind, err, b)
		}
		return falseDel, false, failed
	}
	ref, _ := refSync(t, bin, s)
	st := testenv.ReadCache(t, cacheDir)
	if missing, extra := st.Diff(ref); missing+extra > 0 {
		// Say enough to tell which path lost what: the kind of the faulted pass and a few ids.
		var some []string
		for id, v := range ref {
			if st.Versions[id] != v && len(some) < 5 {
				some = append(some, id)
			}
		}
		// And where the cookies stood: before the trial, after the faulted pass, after the next
		// one, against slapd's contextCSN now and the entryCSNs of the entries that differ.
		t.Logf("%s: stored cookies (users, groups) before %v, after the faulted pass %v, after the next %v; slapd's contextCSN now %v",
			f.kind, watermarkCSNs(t, before.Watermark), watermarkCSNs(t, faulted), watermarkCSNs(t, st.Watermark), contextCSN(t, s.sl))
		for id, v := range ref {
			if st.Versions[id] != v {
				e := dir[id]
				t.Logf("differs: %s %s entryCSN %s: cached %q, want %q", id, e.dn, e.csn, st.Versions[id], v)
			}
		}
		t.Errorf("%s: after the next pass the cache differs from the directory: %d missing or stale (e.g. %v), %d extra; faulted pass full=%v failed=%v\nits output: %s\nthe next pass: %s",
			f.kind, missing, some, extra, full, failed == 1, tail(out.String(), 1500), tail(string(b), 1500))
		return falseDel, false, failed
	}
	return falseDel, true, failed
}

// lastLine returns the last non-empty line of a pass's output, where it says how it ended.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
