package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// measured is one timed run of a command: wall time and peak memory.
type measured struct {
	wall    time.Duration
	rss     int64 // bytes: VmHWM, the peak resident set (anonymous and file-backed pages)
	rssAnon int64 // bytes: the highest RssAnon seen by polling every 10 ms (the heap and stacks)
}

func measure(b *testing.B, cmd *exec.Cmd) measured {
	b.Helper()
	m, err := measureErr(cmd)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// measureErr runs cmd to its end and measures it; a failure is an *exitError with its stderr.
func measureErr(cmd *exec.Cmd) (measured, error) {
	r, err := startMeasured(cmd)
	if err != nil {
		return measured{}, err
	}
	return r.wait()
}

// running is a started command whose memory is being polled.
type running struct {
	cmd    *exec.Cmd
	stderr *testenv.Output
	start  time.Time
	end    time.Time
	err    error         // cmd.Wait's, once exited is closed
	exited chan struct{} // closed when the command has exited
	peak   chan measured
}

// startMeasured starts cmd (collecting its stderr) and polls its /proc/PID/status every 10 ms
// until it exits.
func startMeasured(cmd *exec.Cmd) (*running, error) {
	r := &running{cmd: cmd, stderr: &testenv.Output{}, exited: make(chan struct{}), peak: make(chan measured)}
	cmd.Stderr = r.stderr
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r.err = cmd.Wait()
		r.end = time.Now()
		close(r.exited)
	}()
	// ru_maxrss would include the benchmark's own RSS (the child starts as a vfork of it), so
	// poll the child's VmHWM, which starts afresh at exec, and its RssAnon.
	go func() {
		var m measured
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			hwm, anon := procMemory(cmd.Process.Pid)
			m.rss, m.rssAnon = max(m.rss, hwm), max(m.rssAnon, anon)
			select {
			case <-r.exited:
				r.peak <- m
				return
			case <-t.C:
			}
		}
	}()
	return r, nil
}

// wait waits for the command to exit and returns what was measured from start to exit.
func (r *running) wait() (measured, error) {
	m := <-r.peak
	m.wall = r.end.Sub(r.start)
	if r.err != nil {
		return m, &exitError{args: r.cmd.Args, err: r.err, stderr: r.stderr.String()}
	}
	return m, nil
}

// exitError is a measured command that failed.
type exitError struct {
	args   []string
	err    error
	stderr string
}

func (e *exitError) Error() string { return fmt.Sprintf("%s: %v\n%s", e.args, e.err, e.stderr) }

// firstLine is what a table shows of a failure: the program's own error line ("ldapscim: ...")
// if it printed one, else the first line of its stderr, else the error.
func firstLine(err error) string {
	var ee *exitError
	if !errors.As(err, &ee) {
		line, _, _ := strings.Cut(err.Error(), "\n")
		return line
	}
	var first string
	for _, line := range strings.Split(ee.stderr, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if strings.HasPrefix(line, "ldapscim: ") {
			return line
		}
		if first == "" {
			first = line
		}
	}
	if first == "" {
		first = ee.err.Error()
	}
	return first
}

// procMemory returns a process's VmHWM and current RssAnon in bytes, or zeros once it has exited.
func procMemory(pid int) (hwm, anon int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	kB := func(v string) int64 {
		var kb int64
		fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
		return kb * 1024
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = kB(v)
		} else if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon = kB(v)
		}
	}
	return hwm, anon
}

// BenchmarkSync100k measures the targets in one run, against one slapd loaded with 100k
// inetOrgPerson users and 1k groups (slapadd): a full sync into an empty cache and into a full one,
// each against an `ldapsearch -E pr=1000/noprompt` dump of the same entries, and delta passes
// after 100 and 1,000 changes. Run it with `make bench` (-benchtime 1x).
func BenchmarkSync100k(b *testing.B) {
	users, groups := 100000, 1000
	if v := os.Getenv("LDAPSCIM_BENCH_USERS"); v != "" {
		fmt.Sscan(v, &users)
		groups = users / 100
	}
	ldif := testenv.SampleLDIF(b, sampledata.Options{Users: users, Groups: groups, Seed: 42, NestedGroup: true, Disabled: users / 1000})
	sl := testenv.StartSlapd(b, testenv.SlapdOptions{LDIF: []string{ldif}})
	ctx := context.Background()
	// The baseline is the median of three dumps, so one disturbed run does not skew a ratio.
	ldapsearch := func() measured {
		var runs []measured
		for range 3 {
			total := measured{}
			for _, base := range []string{"ou=people,", "ou=groups,"} {
				cmd := exec.Command("ldapsearch", "-x", "-LLL", "-H", sl.URL, "-D", sl.RootDN, "-w", sl.RootPassword,
					"-b", base+sl.BaseDN, "-E", "pr=1000/noprompt")
				cmd.Stdout = nil // /dev/null
				m := measure(b, cmd)
				total.wall += m.wall
				total.rss = max(total.rss, m.rss)
			}
			runs = append(runs, total)
		}
		slices.SortFunc(runs, func(a, b measured) int { return cmp.Compare(a.wall, b.wall) })
		return runs[1]
	}
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		cfg := writeConfig(b, sl, dir, "")
		base1 := ldapsearch()
		first := measure(b, command(ctx, "sync", "--full", "--config", cfg))
		base2 := ldapsearch()
		again := measure(b, command(ctx, "sync", "--full", "--config", cfg))

		var deltas [3]measured
		for j, n := range []int{100, 1000, 100} {
			// The third delta renames: the pass also rewrites the names that reports and groups
			// copy from the renamed users.
			attr := "title"
			if j == 2 {
				attr = "displayName"
			}
			var ldif strings.Builder
			for k := 0; k < n; k++ {
				fmt.Fprintf(&ldif, "dn: %s\nchangetype: modify\nreplace: %s\n%s: Bench %d-%d\n\n", userDN(sl, k), attr, attr, i, j)
			}
			sl.Modify(b, ldif.String())
			deltas[j] = measure(b, command(ctx, "sync", "--config", cfg))
		}
		// The same number of people as an HR export, imported into an empty cache of its own.
		hrDir := b.TempDir()
		hrFile := filepath.Join(hrDir, "hr.csv")
		writeHRExport(b, hrFile, users, -1)
		hrCfg := writeConfig(b, sl, hrDir, "[admin]\nlisten = \"\"\n"+csvSection(hrFile))
		imp := measure(b, command(ctx, "import", "--config", hrCfg, "--source", "hr", hrFile))
		impAgain := measure(b, command(ctx, "import", "--config", hrCfg, "--source", "hr", hrFile))
		writeHRExport(b, hrFile, users, 100)
		imp100 := measure(b, command(ctx, "import", "--config", hrCfg, "--source", "hr", hrFile))
		// An HR file in enrich mode over the directory's cache: a row for every directory user
		// (joined by externalId, employeeNumber in the default mapping), setting two attributes.
		enrichFile := filepath.Join(hrDir, "enrich.csv")
		writeEnrichExport(b, enrichFile, users, 0)
		writeConfig(b, sl, dir, enrichSection(enrichFile))
		// Each import prints how long its pass took ("... in 1.234s"): the rest of the wall time
		// is the process opening and closing the cache.
		var passes []string
		enrichImport := func() measured {
			cmd := command(ctx, "import", "--config", cfg, "--source", "hrx", enrichFile)
			var out strings.Builder
			cmd.Stdout = &out
			m := measure(b, cmd)
			for _, line := range strings.Split(out.String(), "\n") {
				if i := strings.LastIndex(line, " in "); strings.HasPrefix(line, "import ") && i > 0 {
					passes = append(passes, line[i+4:])
				}
			}
			return m
		}
		enr := enrichImport()
		enrAgain := enrichImport()
		writeEnrichExport(b, enrichFile, users, 100)
		enr100 := enrichImport()
		b.StopTimer()
		row := func(name string, m measured, ref measured) {
			ratio := ""
			if ref.wall > 0 {
				ratio = fmt.Sprintf("%.2fx", float64(m.wall)/float64(ref.wall))
			}
			fmt.Printf("| %-44s | %9.3f s | %7.0f MB | %-22s |\n", name, m.wall.Seconds(), float64(m.rss)/(1<<20), ratio)
		}
		fmt.Printf("\n%d users, %d groups (slapadd), %d cores\n", users, groups, numCPU())
		fmt.Printf("| %-44s | %11s | %10s | %-22s |\n", "run", "wall", "peak RSS", "ratio")
		fmt.Printf("|%s|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 13), strings.Repeat("-", 12), strings.Repeat("-", 24))
		row("ldapsearch -E pr=1000/noprompt (median of 3)", base1, measured{})
		row("ldapscim sync --full, empty cache", first, base1)
		row("ldapsearch again (median of 3)", base2, measured{})
		row("ldapscim sync --full, cache up to date", again, base2)
		row("ldapscim sync, delta after 100 changes", deltas[0], measured{})
		row("ldapscim sync, delta after 1,000 changes", deltas[1], deltas[0])
		row("ldapscim sync, delta after 100 renames", deltas[2], deltas[0])
		row("ldapscim import, HR CSV, empty cache", imp, first)
		row("ldapscim import, the same file again", impAgain, imp)
		row("ldapscim import, 100 rows changed", imp100, deltas[0])
		row("ldapscim import, HR enrich, every user", enr, first)
		row("ldapscim import, HR enrich, same file again", enrAgain, deltas[0])
		row("ldapscim import, HR enrich, 100 rows changed", enr100, deltas[0])
		fmt.Printf("\nHR enrich imports, peak RssAnon (heap and stacks, polled every 10 ms): every user %.0f MB, same file again %.0f MB, 100 rows changed %.0f MB; their passes took %s\n",
			float64(enr.rssAnon)/(1<<20), float64(enrAgain.rssAnon)/(1<<20), float64(enr100.rssAnon)/(1<<20), strings.Join(passes, ", "))
		b.ReportMetric(float64(first.wall)/float64(base1.wall), "full/ldapsearch")
		b.ReportMetric(float64(first.rss)/(1<<20), "full-peak-MB")
		b.ReportMetric(float64(deltas[0].wall)/1e6, "delta100-ms")
		b.ReportMetric(float64(deltas[1].wall)/float64(deltas[0].wall), "delta1000/delta100")
		b.ReportMetric(float64(imp.wall)/float64(first.wall), "import/first-sync")
		b.ReportMetric(float64(enr100.wall)/float64(deltas[0].wall), "enrich100/delta100")
		b.StartTimer()
	}
}

// userDN names the k-th generated user: sampledata's uids are unique but not sequential, so read
// them from the LDIF's directory once.
func userDN(sl *testenv.Slapd, k int) string {
	benchDNsOnce(sl)
	return benchDNs[k%len(benchDNs)]
}

var benchDNs []string

func benchDNsOnce(sl *testenv.Slapd) {
	if benchDNs != nil {
		return
	}
	out, err := exec.Command("ldapsearch", "-x", "-LLL", "-H", sl.URL, "-D", sl.RootDN, "-w", sl.RootPassword,
		"-b", "ou=people,"+sl.BaseDN, "-z", "2000", "-E", "pr=1000/noprompt", "(objectClass=inetOrgPerson)", "1.1").Output()
	if err != nil && len(out) == 0 {
		panic(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if dn, ok := strings.CutPrefix(line, "dn: "); ok {
			benchDNs = append(benchDNs, dn)
		}
	}
}

func numCPU() int {
	n, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*")
	return len(n)
}

// writeHRExport writes an HR export of n people to path (a manager chain of 8 reports each);
// the first changed rows get another title.
func writeHRExport(b testing.TB, path string, n, changed int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("Employee ID;Email;First Name;Last Name;Job Title;Manager ID;Start Date;End Date\r\n")
	for k := range n {
		title, mgr := "Engineer", ""
		if k < changed {
			title = "Staff Engineer"
		}
		if k > 0 {
			mgr = fmt.Sprintf("E%07d", k/8)
		}
		fmt.Fprintf(w, "E%07d;user%d@example.com;First%d;Last%d;%s;%s;2020-01-01;\r\n", k, k, k, k, title, mgr)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// enrichSection is an HR source in enrich mode reading path, joined by externalId.
func enrichSection(path string) string {
	return fmt.Sprintf(`[[csv]]
name = "hrx"
path = %q
mode = "enrich"
key = "Personnel No"
join = "externalId"
[csv.mapping]
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "Department"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter" = "Cost Center"
`, path)
}

// writeEnrichExport writes an enrich export of n directory users to path (keyed by the
// employeeNumber sampledata gives them); the first changed rows get another department.
func writeEnrichExport(b testing.TB, path string, n, changed int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("Personnel No;Department;Cost Center\r\n")
	for k := range n {
		dept := fmt.Sprintf("Dept %d", k%50)
		if k < changed {
			dept = "Moved"
		}
		fmt.Fprintf(w, "E%06d;%s;CC%04d\r\n", k+1, dept, k%1000)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}
