package ldapsync_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// The AD benchmarks run against a Samba DC with 10k users and 100 groups of 100 members each.
// Loading it takes about a minute, so the populated DC is kept in .cache/samba-templates and
// copied per benchmark; delete that directory to rebuild it.
//
//	make bench   (or: go test -run '^$' -bench BenchmarkAD -benchtime 3x ./ldapsync/)

const benchUsers, benchGroups = 10000, 100

func benchTemplate() testenv.SambaOptions {
	return testenv.SambaOptions{
		Template:   fmt.Sprintf("ad-bench-%dk", benchUsers/1000),
		PersistDir: filepath.Join("..", ".cache", "samba-templates"),
		Populate: func(t testing.TB, dc *testenv.Samba) {
			c := dc.Admin(t)
			addOU(t, c, adStaff)
			addOU(t, c, adGroups)
			for i := range benchUsers {
				extra := map[string][]string{
					"title": {"Engineer"}, "department": {fmt.Sprintf("Dept %d", i%20)}, "company": {"Example Corp"},
					"telephoneNumber": {fmt.Sprintf("+1 555 %04d", i)}, "employeeID": {fmt.Sprintf("E%05d", i)},
				}
				if i%10 != 0 {
					extra["manager"] = []string{benchUserDN(i - i%10)}
				}
				addUser(t, c, adStaff, benchCN(i), fmt.Sprintf("u%05d", i), extra)
			}
			for g := range benchGroups {
				var members []string
				for i := g; i < benchUsers; i += benchGroups {
					members = append(members, benchUserDN(i))
				}
				addGroup(t, c, fmt.Sprintf("g%03d", g), members...)
			}
		},
	}
}

func benchCN(i int) string     { return fmt.Sprintf("User %05d", i) }
func benchUserDN(i int) string { return "CN=" + benchCN(i) + "," + adStaff }
func benchStore(b *testing.B) *cache.Store {
	st, err := cache.Open(cache.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func benchSyncer(b *testing.B, dc *testenv.Samba, st *cache.Store) *ldapsync.Syncer {
	s, err := ldapsync.New(adConfig(dc), ldapsync.SafetyConfig{MaxDeletes: 100000, MaxDeletePercent: 100}, st, ldapsync.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkADFullSync: a first full sync of 10k users and 100 groups into an empty cache,
// against an `ldapsearch` paged dump of the same entries and attributes (the reference).
func BenchmarkADFullSync(b *testing.B) {
	dc := testenv.StartSamba(b, benchTemplate())
	dump := ldapsearchDump(b, dc)
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		st := benchStore(b)
		s := benchSyncer(b, dc, st)
		b.StartTimer()
		start := time.Now()
		sum, err := s.SyncFull(context.Background())
		total += time.Since(start)
		if err != nil || sum.Created != benchUsers+benchGroups+1 { // +1: Administrator is under CN=Users, not Staff
			if err != nil || sum.Created < benchUsers+benchGroups {
				b.Fatalf("full sync: %v %+v", err, sum)
			}
		}
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(dump.Milliseconds()), "ldapsearch-ms")
	b.ReportMetric(float64(per.Milliseconds()), "sync-ms")
	b.ReportMetric(float64(per)/float64(dump), "x-ldapsearch")
}

// ldapsearchDump times `ldapsearch -E pr=1000/noprompt` of the users and groups with the
// attributes a pass reads, output to /dev/null (best of three).
func ldapsearchDump(b *testing.B, dc *testenv.Samba) time.Duration {
	bin, err := exec.LookPath("ldapsearch")
	if err != nil {
		b.Fatal("ldapsearch not found: scripts/install-deps.sh ldap")
	}
	cfg := adConfig(dc)
	s, _ := ldapsync.New(cfg, ldapsync.DefaultSafety(), nil, ldapsync.Options{})
	uattrs, gattrs := ldapsync.ReadAttributes(s)
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		for _, q := range []struct {
			base, filter string
			attrs        []string
		}{{cfg.Users.BaseDN, cfg.Users.Filter, uattrs}, {cfg.Groups.BaseDN, cfg.Groups.Filter, gattrs}} {
			args := append([]string{"-x", "-LLL", "-H", dc.URL, "-D", dc.AdminUPN, "-w", dc.AdminPassword,
				"-E", "pr=1000/noprompt", "-b", q.base, q.filter}, q.attrs...)
			cmd := exec.Command(bin, args...)
			devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = devnull, &stderr
			err = cmd.Run()
			devnull.Close()
			if err != nil {
				b.Fatalf("ldapsearch: %v %s", err, stderr.String())
			}
		}
		best = min(best, time.Since(start))
	}
	return best
}

// BenchmarkADDelta10Changes: a delta pass after 10 users changed.
func BenchmarkADDelta10Changes(b *testing.B) {
	dc := testenv.StartSamba(b, benchTemplate())
	st := benchStore(b)
	s := benchSyncer(b, dc, st)
	if _, err := s.SyncFull(context.Background()); err != nil {
		b.Fatal(err)
	}
	c := dc.Admin(b)
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		for i := range 10 {
			m := ldap.NewModifyRequest(benchUserDN(i*997%benchUsers), nil)
			m.Replace("title", []string{fmt.Sprintf("Title %d", round)})
			if err := c.Modify(m); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		sum, err := s.SyncOnce(context.Background())
		if err != nil || sum.Full || sum.Updated != 10 {
			b.Fatalf("delta: %v %+v", err, sum)
		}
	}
}
