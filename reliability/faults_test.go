//go:build reliability

package reliability

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

var targetFaults = []testenv.Fault{testenv.Fault429, testenv.Fault500, testenv.FaultTimeout,
	testenv.FaultDropped, testenv.FaultReset, testenv.Fault401}

// testTargetFaults is R4: serve pushes a first sync and then one change per user to SCIMMY
// through a proxy that breaks every 7th request (429 with Retry-After, 500, a hang past the
// timeout, a connection dropped after the target committed, a TCP reset, a 401). After each
// round every change is at the target or a dead letter, nothing is duplicated, and once the
// faults stop `ldapscim targets deadletters replay --all` delivers every dead letter.
func testTargetFaults(t *testing.T, bin string, sz sizes) {
	start := time.Now()
	o := sampledata.Options{Enterprise: true, Users: min(sz.users, 1000), Groups: 10, Seed: 5}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, o)}})
	sc := testenv.StartScimmy(t)
	proxy := testenv.NewFaultProxy(t, sc.URL, 7, targetFaults...)
	proxy.Hang = 3 * time.Second // the target's timeout is 2 s
	s := setup{dir: t.TempDir(), sl: sl, admin: testenv.FreeAddr(t), targetURL: proxy.URL, token: sc.Token}
	cfg := s.write(t, "serve.toml")
	var lost, dups, deadLetters int
	var logs strings.Builder
	for round := range 2 {
		if round == 1 {
			retitle(t, sl, "Faulted")
		}
		srv := startServe(t, bin, cfg, s)
		if err := srv.settle(t, 10*time.Minute); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		logs.WriteString(srv.stderr.String())
		dl := deadLetterIDs(t, srv.cache)
		deadLetters = len(dl)
		r := checkTarget(t, sc, directory(t, sl))
		for _, id := range r.missing {
			if _, ok := dl[id]; !ok {
				t.Errorf("round %d: %s is neither at the target nor a dead letter", round, id)
				lost++
			}
		}
		dups += r.duplicates
	}
	statuses := map[int]int{}
	for _, st := range deadLetterIDs(t, s.dir+"/cache") {
		statuses[st]++
	}
	proxy.SetOff(true)
	if out, err := exec.Command(bin, "targets", "deadletters", "replay", "--config", cfg, "--target", "scimmy", "--all").CombinedOutput(); err != nil {
		t.Errorf("replay: %v\n%s", err, out)
	}
	r := checkTarget(t, sc, directory(t, sl))
	if len(r.missing) > 0 {
		t.Errorf("after the replay %d changes are still not at the target", len(r.missing))
	}
	dups += r.duplicates
	var injected []string
	total := 0
	for _, f := range targetFaults {
		injected = append(injected, fmt.Sprintf("%s×%d", f, proxy.Seen(f)))
		total += int(proxy.Seen(f))
	}
	quarantines := strings.Count(strings.ToLower(logs.String()), "quarantin")
	record(t, row{kind: "R4 target faults through the proxy (2 rounds)", trials: total, failures: lost + len(r.missing) + dups,
		figure: fmt.Sprintf("injected %s; duplicates %d, neither delivered nor dead-lettered %d, dead letters before the replay %d (by last status %v), undelivered after replay %d; log lines on quarantine %d",
			strings.Join(injected, " "), dups, lost, deadLetters, statuses, len(r.missing), quarantines),
		took: time.Since(start)})
}
