//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// r1 collects R1's figures over every kill.
type r1 struct {
	kills, midway, gaps, ahead int
	lost, dups, extra          int
}

// testKill9 is R1: kill -9 of `serve` at random points of a first sync, of full passes, and of
// the push of one change to every user to SCIMMY. After every kill the journal has no gap and
// the stored watermark is not ahead of the data; after each phase serve runs to the end, and
// the cache equals a reference sync of the directory, and SCIMMY holds every user at its
// current title once.
func testKill9(t *testing.T, bin string, sz sizes) {
	start := time.Now()
	o := sampledata.Options{Enterprise: true, Users: sz.users, Groups: 20, Seed: 7}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, o)}})
	sc := testenv.StartScimmy(t)
	s := setup{dir: t.TempDir(), sl: sl, admin: testenv.FreeAddr(t), targetURL: sc.URL, token: sc.Token, timeout: "10s"}
	cfg := s.write(t, "serve.toml")
	ref, firstSync := refSync(t, bin, s)
	t.Logf("R1: %d resources; a first sync takes %s", len(ref), firstSync)
	per := max(1, sz.kills/3)
	var f r1
	failedBefore, runsBefore := passFailures.Load(), passRuns.Load()

	// Phase 1: the first sync (and the creates it pushes), killed and restarted on the same cache.
	for range per {
		srv := launchServe(t, bin, cfg, s)
		time.Sleep(randDur(firstSync/10, firstSync*3/2))
		srv.kill()
		cs := f.afterKill(t, sl, srv.cache, ref, nil, nil)
		cursor, head := pushProgress(t, srv.cache)
		n := len(cs.Versions)
		// Mid-work: killed while the first pass was writing, or while its creates were pushed.
		mid := n > 0 && (n < len(ref) || cursor < head)
		f.count(t, "first sync", mid, fmt.Sprintf("%d of %d resources, push cursor %d of %d", n, len(ref), cursor, head))
	}
	f.converge(t, bin, cfg, s, sc, ref)

	// Phase 2: full passes applying title changes, additions and deletions.
	srv := startServe(t, bin, cfg, s)
	fullStart := time.Now()
	if err := srv.retryPass(t, context.Background(), true); err != nil {
		t.Fatal(err)
	}
	fullPass := time.Since(fullStart)
	srv.stop(t)
	for i := range per {
		srv := startServe(t, bin, cfg, s)
		if err := srv.retryPass(t, context.Background(), false); err != nil { // after the startup pass
			t.Fatal(err)
		}
		// Changed now, the full pass below is the first to see them (the delta schedule is 24h).
		prev := ref
		dns := changeDirectory(t, sl, i, 200, 3, false)
		self := idsOf(directory(t, sl), dns)
		ref, _ = refSync(t, bin, s)
		passed := make(chan error, 1)
		go func() { passed <- srv.pass(context.Background(), true) }()
		time.Sleep(randDur(fullPass/10, fullPass*3/2))
		srv.kill()
		cs := f.afterKill(t, sl, srv.cache, ref, prev, self)
		missing, extra := cs.Diff(ref)
		// Mid-pass: the admin request for the pass died with serve instead of answering.
		err := <-passed
		f.count(t, "full pass", err != nil, fmt.Sprintf("pass answer %v; %d changes not in the cache", err, missing+extra))
	}
	f.converge(t, bin, cfg, s, sc, ref)

	// Phase 3: one title change for every user, pushed to SCIMMY, killed mid-push.
	prev := ref
	dns := retitle(t, sl, "Retitled")
	self := idsOf(directory(t, sl), dns)
	ref, _ = refSync(t, bin, s)
	for range per {
		srv := startServe(t, bin, cfg, s)
		before, err := sc.Stats()
		if err != nil {
			t.Fatal(err)
		}
		goal := before.Requests + rand.IntN(sz.users/4) + 1
		deadline := time.Now().Add(time.Minute)
		for st, err := sc.Stats(); err == nil && st.Requests < goal && time.Now().Before(deadline); st, err = sc.Stats() {
			time.Sleep(20 * time.Millisecond)
		}
		srv.kill()
		f.afterKill(t, sl, srv.cache, ref, prev, self)
		cursor, head := pushProgress(t, srv.cache)
		f.count(t, "push", cursor < head, fmt.Sprintf("push cursor %d of %d", cursor, head))
	}
	f.converge(t, bin, cfg, s, sc, ref)

	fails := f.gaps + f.ahead + f.lost + f.dups + f.extra
	if f.midway < f.kills/2 {
		t.Errorf("only %d of %d kills landed mid-work; the trials proved little", f.midway, f.kills)
		fails++
	}
	record(t, row{kind: "R1 kill -9 of serve (first sync, full pass, push)", trials: f.kills, failures: min(fails, f.kills),
		figure: fmt.Sprintf("%d mid-work; lost %d, duplicates %d, watermark ahead %d, journal gaps %d",
			f.midway, f.lost+f.extra, f.dups, f.ahead, f.gaps),
		took: time.Since(start)})
	failed := int(passFailures.Load() - failedBefore)
	record(t, row{kind: "R1 passes asked of serve between kills", trials: int(passRuns.Load() - runsBefore), failures: failed,
		figure: fmt.Sprintf("%d failed (3 delta attempts, then a full pass)", failed), took: 0})
}

// count logs where a kill landed and counts it as mid-work when it interrupted something.
func (f *r1) count(t *testing.T, phase string, mid bool, where string) {
	t.Helper()
	if mid {
		f.midway++
	}
	t.Logf("kill %d (%s): mid-work %v: %s", f.kills, phase, mid, where)
}

// afterKill checks a killed serve's cache: no journal gap, no watermark ahead of the data.
func (f *r1) afterKill(t *testing.T, sl *testenv.Slapd, dir string, ref, prev map[string]string, self map[string]bool) testenv.CacheState {
	t.Helper()
	f.kills++
	cs := testenv.ReadCache(t, dir)
	if err := cs.JournalGaps(); err != nil {
		t.Errorf("kill %d: %v", f.kills, err)
		f.gaps++
	}
	if n := watermarkAhead(t, cs, directory(t, sl), ref, prev, self); n > 0 {
		t.Errorf("kill %d: the watermark is ahead of %d entries the cache lacks", f.kills, n)
		f.ahead += n
	}
	return cs
}

// converge runs serve until the pass and the push are done, then compares the cache with ref
// and SCIMMY with the directory.
func (f *r1) converge(t *testing.T, bin, cfg string, s setup, sc *testenv.Scimmy, ref map[string]string) {
	t.Helper()
	srv := startServe(t, bin, cfg, s)
	if err := srv.settle(t, 5*time.Minute); err != nil {
		t.Fatalf("serve did not settle: %v\nslapd answers: %v\nserve's log:\n%s", err, s.sl.Has(t, "(uid=*)"), srv.stderr)
	}
	cs := testenv.ReadCache(t, srv.cache)
	if missing, extra := cs.Diff(ref); missing+extra > 0 {
		t.Errorf("the cache differs from the directory: %d missing or stale, %d extra", missing, extra)
		f.lost += missing + extra
	}
	r := checkTarget(t, sc, directory(t, s.sl))
	if len(r.missing)+r.duplicates+r.extra > 0 {
		t.Errorf("SCIMMY: %d missing or stale, %d duplicates, %d active but deleted", len(r.missing), r.duplicates, r.extra)
	}
	f.lost += len(r.missing)
	f.dups += r.duplicates
	f.extra += r.extra
}

// changeDirectory changes the titles of `titles` users, adds `adds` users and deletes `adds`
// users (random ones, never one added here; with leaves, only users who manage no one), all in
// one ldapmodify, and returns the DNs it modified or added.
func changeDirectory(t testing.TB, sl *testenv.Slapd, round, titles, adds int, leaves bool) []string {
	t.Helper()
	var dns []string
	var users []entry
	dir := directory(t, sl)
	managers := map[string]bool{}
	for _, e := range dir {
		managers[strings.ToLower(e.manager)] = true
	}
	for _, e := range dir {
		if !e.group && !strings.HasPrefix(e.uid, "rel-") {
			users = append(users, e)
		}
	}
	slices.SortFunc(users, func(a, b entry) int { return strings.Compare(a.uid, b.uid) })
	rand.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
	if leaves {
		// Deletion candidates after the title changes: move managers out of their way.
		rest := users[titles:]
		slices.SortStableFunc(rest, func(a, b entry) int {
			ma, mb := managers[strings.ToLower(a.dn)], managers[strings.ToLower(b.dn)]
			switch {
			case ma == mb:
				return 0
			case mb:
				return -1
			}
			return 1
		})
	}
	var b strings.Builder
	for _, u := range users[:titles] {
		dns = append(dns, u.dn)
		fmt.Fprintf(&b, "dn: %s\nchangetype: modify\nreplace: title\ntitle: Round %d\n\n", u.dn, round)
	}
	for i := range adds {
		uid := fmt.Sprintf("rel-%d-%d", round, i)
		dns = append(dns, fmt.Sprintf("uid=%s,ou=people,%s", uid, sl.BaseDN))
		fmt.Fprintf(&b, "dn: uid=%s,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: %s\ncn: Added %s\nsn: Added\nemployeeNumber: X%d%03d\ntitle: New\n\n",
			uid, sl.BaseDN, uid, uid, round, i)
		fmt.Fprintf(&b, "dn: %s\nchangetype: delete\n\n", users[titles+i].dn)
	}
	sl.Modify(t, b.String())
	return dns
}

// retitle gives every user a new title, one change per user for the push, and returns their DNs.
func retitle(t testing.TB, sl *testenv.Slapd, title string) []string {
	t.Helper()
	var b strings.Builder
	var dns []string
	for _, e := range directory(t, sl) {
		if !e.group {
			dns = append(dns, e.dn)
			fmt.Fprintf(&b, "dn: %s\nchangetype: modify\nreplace: title\ntitle: %s %s\n\n", e.dn, title, e.uid)
		}
	}
	sl.Modify(t, b.String())
	return dns
}

// randDur is uniform in [lo, hi).
func randDur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}
