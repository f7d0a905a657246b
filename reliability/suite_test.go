//go:build reliability

package reliability

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ldapscim/ldapscim/internal/testenv"
)

// sizes are the suite's knobs, from the environment, with the numbers as defaults.
type sizes struct {
	users    int           // LDAPSCIM_REL_USERS: the directory of R1, R2 and R4
	kills    int           // LDAPSCIM_REL_KILLS: R1's kill -9 trials (a third per phase)
	faults   int           // LDAPSCIM_REL_SLAPD_FAULTS: R2's trials per fault kind
	r2Fault  string        // LDAPSCIM_REL_R2_FAULT: only R2's fault kinds whose name holds it (e.g. "kill")
	r7Users  int           // LDAPSCIM_REL_R7_USERS: the directory R7 reads during a full pass
	fuzzTime time.Duration // LDAPSCIM_REL_FUZZTIME: each fuzz target's run in R5
}

func loadSizes(t testing.TB) sizes {
	t.Helper()
	return sizes{
		users:    envInt(t, "LDAPSCIM_REL_USERS", 10000),
		kills:    envInt(t, "LDAPSCIM_REL_KILLS", 21),
		faults:   envInt(t, "LDAPSCIM_REL_SLAPD_FAULTS", 3),
		r2Fault:  os.Getenv("LDAPSCIM_REL_R2_FAULT"),
		r7Users:  envInt(t, "LDAPSCIM_REL_R7_USERS", 100000),
		fuzzTime: time.Duration(envInt(t, "LDAPSCIM_REL_FUZZSECONDS", 30)) * time.Second,
	}
}

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// row is one line of the table: a trial kind, how many trials ran, how many failed, and the
// figures measured.
type row struct {
	kind     string
	trials   int
	failures int
	figure   string
	took     time.Duration
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(t testing.TB, r row) {
	t.Helper()
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	t.Logf("%s: %d trials, %d failures, %s", r.kind, r.trials, r.failures, r.figure)
	if r.failures > 0 {
		t.Errorf("%s: %d of %d trials failed (%s)", r.kind, r.failures, r.trials, r.figure)
	}
}

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "trial kind\ttrials\tfailures\tfigures\ttime\tresult")
	for _, r := range rows {
		res := "pass"
		if r.failures > 0 {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", r.kind, r.trials, r.failures, r.figure, r.took.Round(time.Second), res)
	}
	tw.Flush()
}

// TestReliability runs every trial kind in turn (one at a time: the machine is small) and
// prints the table. Run a part with -run 'TestReliability/R1'.
func TestReliability(t *testing.T) {
	sz := loadSizes(t)
	bin := testenv.BuildLdapscim(t)
	start := time.Now()
	defer func() {
		fmt.Printf("\nldapscim reliability suite (%s, %s total; users=%d kills=%d r7_users=%d fuzz=%s)\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second),
			sz.users, sz.kills, sz.r7Users, sz.fuzzTime)
		printTable(os.Stdout)
	}()
	t.Run("R1", func(t *testing.T) { testKill9(t, bin, sz) })
	t.Run("R2", func(t *testing.T) { testSlapdFaults(t, bin, sz) })
	t.Run("R4", func(t *testing.T) { testTargetFaults(t, bin, sz) })
	t.Run("R5", func(t *testing.T) { testMalformed(t, bin, sz) })
	t.Run("R7", func(t *testing.T) { testReadsUnderPass(t, bin, sz) })
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
