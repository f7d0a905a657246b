package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// BenchmarkScale measures ldapscim on the enterprise shape (internal/sampledata: N users,
// 2,000 groups of 50, one all-staff group of every user, manager chains) at each size of
// $LDAPSCIM_SCALE_SIZES (default "10000,100000"; 1000000 works too), one sub-benchmark per size,
// and prints one table per size and a growth table. The real binary (go build) runs as its own
// process against a private slapd loaded by slapadd. A failing step is shown as FAILED with its
// error, and the others still run; the benchmark fails at the end. Run it with
// `make bench-scale` or
//
//	LDAPSCIM_SCALE_SIZES=10000 go test -run '^$' -bench Scale -benchtime 1x -timeout 60m ./cmd/ldapscim/
func BenchmarkScale(b *testing.B) {
	sizes, err := scaleSizes(os.Getenv("LDAPSCIM_SCALE_SIZES"))
	if err != nil {
		b.Fatal(err)
	}
	bin := buildLdapscim(b)
	var results []*scaleResult
	for _, n := range sizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r := runScale(b, bin, n)
				b.StopTimer()
				r.print(os.Stdout)
				if i == 0 {
					results = append(results, r)
				}
				for _, s := range r.steps {
					if s.err != nil {
						b.Errorf("%d users: %s: %s", n, s.name, clip(s.err.Error(), 2000))
					}
				}
				b.StartTimer()
			}
		})
	}
	printGrowth(os.Stdout, results)
}

// scaleSizes parses a comma-separated list of user counts.
func scaleSizes(v string) ([]int, error) {
	if v == "" {
		v = "10000,100000"
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 {
			return nil, fmt.Errorf("LDAPSCIM_SCALE_SIZES=%q: %q is not a user count ≥ 100", v, f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// buildLdapscim builds the real binary (not the test binary acting as it) into a temp dir.
func buildLdapscim(b *testing.B) string {
	b.Helper()
	// go test puts its own GOROOT/bin first in the PATH of the test binary.
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go command: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "ldapscim")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The steps of one size, in table order.
const (
	stepSearch  = "ldapsearch -E pr=1000/noprompt, users + groups (median of 3)"
	stepFirst   = "ldapscim sync --full, empty cache (first sync)"
	stepFull    = "ldapscim sync --full, cache up to date"
	stepAttr    = "ldapscim sync, delta after 100 title changes"
	stepMembers = "ldapscim sync, delta after 100 all-staff member removals"
	stepServe   = "ldapscim serve: page every user, GET all-staff"
)

type scaleStep struct {
	name string
	m    measured
	err  error
	note string
}

type scaleResult struct {
	users, groups int
	load          time.Duration // generate + slapadd
	steps         []*scaleStep
}

func (r *scaleResult) step(name string) *scaleStep {
	for _, s := range r.steps {
		if s.name == name {
			return s
		}
	}
	return &scaleStep{name: name, err: errors.New("not run")}
}

// scaleOptions is the enterprise shape with n users.
func scaleOptions(n int) sampledata.Options {
	return sampledata.Options{Enterprise: true, AllStaff: true, Users: n, Groups: 2000, Seed: 42, Disabled: n / 1000}
}

// runScale loads a fresh slapd with n users and runs every step against it. Only the setup
// (generating, slapadd, starting slapd) is fatal.
func runScale(b *testing.B, bin string, n int) *scaleResult {
	b.Helper()
	o := scaleOptions(n)
	r := &scaleResult{users: n, groups: o.Groups + 1}
	start := time.Now()
	ldif := filepath.Join(b.TempDir(), "scale.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		b.Fatal(err)
	}
	if err := sampledata.Write(f, o); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	sl := testenv.StartSlapd(b, testenv.SlapdOptions{LDIF: []string{ldif}})
	os.Remove(ldif) // slapd has it; 1M users are 530 MB
	r.load = time.Since(start)
	ctx := context.Background()
	dir := b.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	syncCfg := scaleConfig(b, sl, dir, "sync.toml", cacheDir, "[admin]\nlisten = \"\"\n")
	run := func(name string, args ...string) *scaleStep {
		s := &scaleStep{name: name}
		s.m, s.err = measureErr(exec.CommandContext(ctx, bin, args...))
		r.steps = append(r.steps, s)
		return s
	}

	search := &scaleStep{name: stepSearch}
	search.m, search.err = dumpMedian(sl)
	r.steps = append(r.steps, search)
	run(stepFirst, "sync", "--full", "--config", syncCfg)
	run(stepFull, "sync", "--full", "--config", syncCfg)

	var titles strings.Builder
	for k := range 100 {
		dn := sampledata.UserDN(o, k*(n/100))
		fmt.Fprintf(&titles, "dn: %s\nchangetype: modify\nreplace: title\ntitle: Scale %d\n\n", dn, k)
	}
	if err := ldapmodify(sl, titles.String()); err != nil {
		r.steps = append(r.steps, &scaleStep{name: stepAttr, err: err})
	} else {
		run(stepAttr, "sync", "--config", syncCfg)
	}

	var members strings.Builder
	fmt.Fprintf(&members, "dn: %s\nchangetype: modify\ndelete: member\n", sampledata.AllStaffDN(o))
	for k := range 100 {
		fmt.Fprintf(&members, "member: %s\n", sampledata.UserDN(o, k*(n/100)+1))
	}
	if err := ldapmodify(sl, members.String()); err != nil {
		r.steps = append(r.steps, &scaleStep{name: stepMembers, err: err})
	} else {
		run(stepMembers, "sync", "--config", syncCfg)
	}

	r.steps = append(r.steps, serveStep(b, bin, sl, dir, cacheDir, n))
	return r
}

// dumpMedian is the baseline: an `ldapsearch -E pr=1000/noprompt` dump of ou=people and
// ou=groups (all attributes) to /dev/null, the median of three.
func dumpMedian(sl *testenv.Slapd) (measured, error) {
	var runs []measured
	for range 3 {
		total := measured{}
		for _, base := range []string{"ou=people,", "ou=groups,"} {
			cmd := exec.Command("ldapsearch", "-x", "-LLL", "-H", sl.URL, "-D", sl.RootDN, "-w", sl.RootPassword,
				"-b", base+sl.BaseDN, "-E", "pr=1000/noprompt")
			m, err := measureErr(cmd) // Stdout nil: /dev/null
			if err != nil {
				return m, err
			}
			total.wall += m.wall
			total.rss, total.rssAnon = max(total.rss, m.rss), max(total.rssAnon, m.rssAnon)
		}
		runs = append(runs, total)
	}
	slices.SortFunc(runs, func(a, b measured) int { return cmp.Compare(a.wall, b.wall) })
	return runs[1], nil
}

// ldapmodify applies LDIF as the rootdn; unlike Slapd.Modify its failure is not fatal.
func ldapmodify(sl *testenv.Slapd, ldif string) error {
	cmd := exec.Command("ldapmodify", "-x", "-H", sl.URL, "-D", sl.RootDN, "-w", sl.RootPassword)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("ldapmodify: %v: %s", err, line)
	}
	return nil
}

// scaleConfig writes a config for the scale runs: root bind, generous timeouts, and safety
// thresholds that hold nothing.
func scaleConfig(b *testing.B, sl *testenv.Slapd, dir, name, cacheDir, extra string) string {
	b.Helper()
	pw := filepath.Join(dir, "bind.pw")
	if err := os.WriteFile(pw, []byte(sl.RootPassword+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := fmt.Sprintf(`[cache]
dir = %q
[log]
level = "warn"
[ldap]
url = %q
bind_dn = %q
bind_password_file = %q
timeout = "5m"
[ldap.users]
base_dn = "ou=people,%s"
[ldap.groups]
base_dn = "ou=groups,%s"
[schedule]
delta = "@every 24h"
full = ""
[safety]
max_deletes = 100000000
max_delete_percent = 100.0
%s`, cacheDir, sl.URL, sl.RootDN, pw, sl.BaseDN, sl.BaseDN, extra)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

const scaleToken = "scale-bench-token"

// serveStep runs `ldapscim serve` on the synced cache, waits for its first pass (/readyz),
// pages every user through the SCIM API with cursors (count=max_results), reads the all-staff
// group once, and stops it with SIGTERM. wall is the paging and the group read; the memory
// columns are the whole process's.
func serveStep(b *testing.B, bin string, sl *testenv.Slapd, dir, cacheDir string, users int) *scaleStep {
	b.Helper()
	s := &scaleStep{name: stepServe}
	scimAddr, adminAddr := freeAddr(b), freeAddr(b)
	sum := sha256.Sum256([]byte(scaleToken))
	cfg := scaleConfig(b, sl, dir, "serve.toml", cacheDir, fmt.Sprintf(`[admin]
listen = %q
[scim]
listen = %q
base_url = "http://%s/scim/v2"
max_results = 1000
[[scim.tokens]]
name = "bench"
token_sha256 = %q
`, adminAddr, scimAddr, scimAddr, hex.EncodeToString(sum[:])))
	proc, err := startMeasured(exec.Command(bin, "serve", "--config", cfg))
	if err != nil {
		s.err = err
		return s
	}
	var start time.Time
	work := func() error {
		if err := waitServeReady("http://"+adminAddr, proc, 2*time.Minute+time.Duration(users)*200*time.Microsecond); err != nil {
			return err
		}
		start = time.Now()
		base := "http://" + scimAddr + "/scim/v2"
		paged, err := pageUsers(base)
		if err != nil {
			return err
		}
		if paged != users {
			return fmt.Errorf("paged %d users, want %d", paged, users)
		}
		members, err := readAllStaff(base)
		if err != nil {
			return err
		}
		s.note = fmt.Sprintf("%d users paged; all-staff: %d members", paged, members)
		return nil
	}
	werr := work()
	wall := time.Since(start)
	proc.cmd.Process.Signal(syscall.SIGTERM)
	s.m, err = proc.wait()
	if start.IsZero() {
		wall = 0
	}
	s.m.wall = wall
	s.err = cmp.Or(werr, err)
	if werr != nil && err == nil && !strings.Contains(werr.Error(), "first pass failed") {
		// The serve itself did not fail, but it may have said why in its log.
		if line, _, _ := strings.Cut(strings.TrimSpace(proc.stderr.String()), "\n"); line != "" {
			s.err = fmt.Errorf("%v (serve: %s)", werr, line)
		}
	}
	return s
}

// waitServeReady polls /readyz until serve's first pass is in; it gives up when serve exits,
// logs that the pass failed (the schedule would only retry in 24 h), or after timeout.
func waitServeReady(adminBase string, proc *running, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-proc.exited:
			return errors.New("serve exited before it was ready")
		default:
		}
		for _, line := range strings.Split(proc.stderr.String(), "\n") {
			if strings.Contains(line, `msg="pass failed"`) {
				return fmt.Errorf("serve's first pass failed: %s", line)
			}
		}
		resp, err := http.Get(adminBase + "/readyz")
		if err == nil {
			var rd map[string]any
			json.NewDecoder(resp.Body).Decode(&rd)
			resp.Body.Close()
			if resp.StatusCode == 200 && rd["ready"] == true {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve not ready after %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scimGet(u string, into any) error {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+scaleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// pageUsers reads every user, 1,000 a page, following nextCursor (RFC 9865).
func pageUsers(base string) (int, error) {
	n, cursor := 0, ""
	for {
		var page struct {
			NextCursor string            `json:"nextCursor"`
			Resources  []json.RawMessage `json:"Resources"`
		}
		if err := scimGet(base+"/Users?count=1000&cursor="+url.QueryEscape(cursor), &page); err != nil {
			return n, err
		}
		n += len(page.Resources)
		if page.NextCursor == "" || len(page.Resources) == 0 {
			return n, nil
		}
		cursor = page.NextCursor
	}
}

// readAllStaff finds the all-staff group by displayName and GETs it whole; it returns its
// member count.
func readAllStaff(base string) (int, error) {
	var found struct {
		Resources []struct {
			ID string `json:"id"`
		} `json:"Resources"`
	}
	filter := url.QueryEscape(fmt.Sprintf("displayName eq %q", sampledata.AllStaffName))
	if err := scimGet(base+"/Groups?attributes=id&filter="+filter, &found); err != nil {
		return 0, err
	}
	if len(found.Resources) != 1 {
		return 0, fmt.Errorf("%d groups named %s", len(found.Resources), sampledata.AllStaffName)
	}
	var group struct {
		Members []json.RawMessage `json:"members"`
	}
	if err := scimGet(base+"/Groups/"+found.Resources[0].ID, &group); err != nil {
		return 0, err
	}
	return len(group.Members), nil
}

func (r *scaleResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n%d users, %d groups (2,000 of 50 and all-staff of %d), manager chains; slapadd and slapd start %.1f s; %d cores\n",
		r.users, r.groups, r.users, r.load.Seconds(), numCPU())
	fmt.Fprintf(w, "| %-62s | %10s | %12s | %10s | %-28s |\n", "run", "wall", "RssAnon peak", "VmHWM", "ratio")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 64), strings.Repeat("-", 12), strings.Repeat("-", 14),
		strings.Repeat("-", 12), strings.Repeat("-", 30))
	ratio := func(a, b, what string) string {
		x, y := r.step(a), r.step(b)
		if x.err != nil || y.err != nil || y.m.wall == 0 {
			return ""
		}
		return fmt.Sprintf("%.2fx %s", float64(x.m.wall)/float64(y.m.wall), what)
	}
	ratios := map[string]string{
		stepFirst:   ratio(stepFirst, stepSearch, "ldapsearch"),
		stepFull:    ratio(stepFull, stepSearch, "ldapsearch"),
		stepMembers: ratio(stepMembers, stepAttr, "the title delta"),
	}
	for _, s := range r.steps {
		if s.err != nil {
			fmt.Fprintf(w, "| %-62s | FAILED: %s\n", s.name, clip(firstLine(s.err), 240))
			continue
		}
		fmt.Fprintf(w, "| %-62s | %8.3f s | %9.0f MB | %7.0f MB | %-28s |\n", s.name, s.m.wall.Seconds(),
			mb(s.m.rssAnon), mb(s.m.rss), ratios[s.name])
		if s.note != "" {
			fmt.Fprintf(w, "|   %-60s |\n", s.note)
		}
	}
}

// clip shortens s to about n bytes: some errors carry a hex dump of a whole cache value.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + " …"
}

func mb(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// printGrowth prints, per step, each column's ratio between consecutive sizes.
func printGrowth(w io.Writer, results []*scaleResult) {
	if len(results) < 2 {
		return
	}
	fmt.Fprintf(w, "\ngrowth between consecutive sizes (wall / RssAnon peak / VmHWM)\n")
	fmt.Fprintf(w, "| %-62s |", "run")
	for i := 1; i < len(results); i++ {
		fmt.Fprintf(w, " %-26s |", sizeName(results[i].users)+"/"+sizeName(results[i-1].users))
	}
	fmt.Fprintf(w, "\n|%s|", strings.Repeat("-", 64))
	for i := 1; i < len(results); i++ {
		fmt.Fprintf(w, "%s|", strings.Repeat("-", 28))
	}
	fmt.Fprintln(w)
	x := func(a, b int64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fx", float64(a)/float64(b))
	}
	for _, name := range []string{stepSearch, stepFirst, stepFull, stepAttr, stepMembers, stepServe} {
		fmt.Fprintf(w, "| %-62s |", name)
		for i := 1; i < len(results); i++ {
			cur, prev := results[i].step(name), results[i-1].step(name)
			cell := "FAILED"
			if cur.err == nil && prev.err == nil {
				cell = fmt.Sprintf("%s / %s / %s", x(int64(cur.m.wall), int64(prev.m.wall)), x(cur.m.rssAnon, prev.m.rssAnon), x(cur.m.rss, prev.m.rss))
			}
			fmt.Fprintf(w, " %-26s |", cell)
		}
		fmt.Fprintln(w)
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}
