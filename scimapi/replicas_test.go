package scimapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// replica is one serve's share of the work: its own Badger cache, its own syncer on the shared
// slapd, and its own SCIM API on a real HTTP listener.
type replica struct {
	name  string
	store *cache.Store
	sync  *ldapsync.Syncer
	srv   *httptest.Server
}

func newReplica(t *testing.T, name string, sl *testenv.Slapd, lag time.Duration) *replica {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: t.TempDir(), ReplicaLag: lag})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := ldapsync.DefaultConfig()
	cfg.URL, cfg.BindDN, cfg.BindPassword = sl.URL, sl.RootDN, confval.NewSecret(sl.RootPassword)
	cfg.Users.BaseDN, cfg.Groups.BaseDN = "ou=people,"+sl.BaseDN, "ou=groups,"+sl.BaseDN
	cfg.Timeout = confval.Duration(20 * time.Second)
	s, err := ldapsync.New(cfg, ldapsync.SafetyConfig{MaxDeletes: 100000, MaxDeletePercent: 100}, st, ldapsync.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(scimapi.New(testConfig(t), st, scimapi.Options{}))
	t.Cleanup(srv.Close)
	return &replica{name: name, store: st, sync: s, srv: srv}
}

// pass runs one pass, as the replica's schedule would.
func (r *replica) pass(t *testing.T, full bool) ldapsync.Summary {
	t.Helper()
	run := r.sync.SyncOnce
	if full {
		run = r.sync.SyncFull
	}
	sum, err := run(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	return sum
}

// balancer spreads requests over the replicas in turn, one request each, as a simple
// round-robin load balancer does: consecutive pages of one pull come from different replicas.
type balancer struct {
	t        *testing.T
	replicas []*replica
	next     int
}

// get sends one request to the next replica and decodes its answer; it also checks that no
// time the replica shows is ahead of the clock.
func (b *balancer) get(target string) (map[string]any, string) {
	b.t.Helper()
	r := b.replicas[b.next%len(b.replicas)]
	b.next++
	req, err := http.NewRequest("GET", r.srv.URL+target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.t.Fatalf("%s %s: %d %v %s", r.name, target, resp.StatusCode, err, body)
	}
	answered := time.Now()
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		b.t.Fatalf("%s %s: %v", r.name, target, err)
	}
	for _, res := range listed(out) {
		if lm := lastModified(b.t, res); lm.After(answered) {
			b.t.Fatalf("%s showed lastModified %s, after the answer (%s): a client taking it as its next gt would skip changes", r.name, lm, answered)
		}
	}
	return out, r.name
}

func listed(page map[string]any) []map[string]any {
	list, _ := page["Resources"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		out = append(out, x.(map[string]any))
	}
	return out
}

func lastModified(t *testing.T, res map[string]any) time.Time {
	t.Helper()
	meta, _ := res["meta"].(map[string]any)
	lm, err := time.Parse(time.RFC3339Nano, fmt.Sprint(meta["lastModified"]))
	if err != nil {
		t.Fatalf("meta.lastModified of %v: %v", res["id"], err)
	}
	return lm
}

func version(res map[string]any) string {
	meta, _ := res["meta"].(map[string]any)
	return fmt.Sprint(meta["version"])
}

// puller is an IdP that keeps a copy of the users and groups by incremental pulls: a first
// full read, then filter=meta.lastModified gt "<t>" with cursor paging (count 2, so a pull
// takes several pages, each from the next replica). ownClock pullers take their own clock
// at the start of a pull as the next t; the others take the largest lastModified they saw.
type puller struct {
	name     string
	ownClock bool
	lb       *balancer
	t        time.Time // the next gt; zero before the first pull
	copy     map[string]map[string]map[string]any
	log      []string // which replica answered each page, for failure messages
	received int      // resources received by the last pull
}

func newPuller(name string, ownClock bool, lb *balancer) *puller {
	return &puller{name: name, ownClock: ownClock, lb: lb, copy: map[string]map[string]map[string]any{"Users": {}, "Groups": {}}}
}

func (p *puller) pull() {
	p.lb.t.Helper()
	started := time.Now()
	next := p.t
	p.received = 0
	for _, typ := range []string{"Users", "Groups"} {
		q := url.Values{"count": {"2"}}
		if !p.t.IsZero() {
			q.Set("filter", `meta.lastModified gt "`+p.t.UTC().Format(time.RFC3339Nano)+`"`)
		}
		cursor := ""
		for {
			q.Set("cursor", cursor)
			page, from := p.lb.get("/scim/v2/" + typ + "?" + q.Encode())
			p.log = append(p.log, fmt.Sprintf("%s gt %s from %s: %d", typ, p.t.Format("15:04:05.000"), from, len(listed(page))))
			for _, res := range listed(page) {
				p.received++
				p.copy[typ][res["id"].(string)] = res
				if lm := lastModified(p.lb.t, res); lm.After(next) {
					next = lm
				}
			}
			c, _ := page["nextCursor"].(string)
			if c == "" {
				break
			}
			cursor = c
		}
	}
	if p.ownClock {
		next = started
	}
	p.t = next
}

// state is what one replica serves: every user and group by id, read in one page each.
func state(t *testing.T, r *replica) map[string]map[string]map[string]any {
	t.Helper()
	lb := &balancer{t: t, replicas: []*replica{r}}
	out := map[string]map[string]map[string]any{}
	for _, typ := range []string{"Users", "Groups"} {
		page, _ := lb.get("/scim/v2/" + typ + "?count=1000")
		out[typ] = map[string]map[string]any{}
		for _, res := range listed(page) {
			out[typ][res["id"].(string)] = res
		}
	}
	return out
}

// missed lists what the puller's copy lacks or holds in an older version than the replica.
func (p *puller) missed(want map[string]map[string]map[string]any) []string {
	var out []string
	for _, typ := range []string{"Users", "Groups"} {
		for _, id := range slices.Sorted(maps.Keys(want[typ])) {
			got := p.copy[typ][id]
			if got == nil || version(got) != version(want[typ][id]) {
				out = append(out, fmt.Sprintf("%s %s %v", typ, id, want[typ][id]["displayName"]))
			}
		}
	}
	return out
}

// replicaRun is the scenario of TestReplicasAgree with a given [ha] max_lag: two replicas on
// one slapd whose passes run two seconds apart, a change in the directory between, and two
// pullers behind a round-robin balancer that pull before, between and after the two passes.
// It returns the pullers, the replicas and the state each serves in the end.
func replicaRun(t *testing.T, lag time.Duration, ch change) (pullers []*puller, replicas []*replica, a, b map[string]map[string]map[string]any) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 9, Groups: 3, Seed: 14})}})
	ra, rb := newReplica(t, "A", sl, lag), newReplica(t, "B", sl, lag)
	ra.pass(t, true)
	time.Sleep(time.Second)
	rb.pass(t, true)
	lbs := []*balancer{{t: t, replicas: []*replica{ra, rb}}, {t: t, replicas: []*replica{ra, rb}}}
	pullers = []*puller{newPuller("own-clock", true, lbs[0]), newPuller("max-seen", false, lbs[1])}
	for _, p := range pullers {
		p.pull()
		// Pages of two, from A and B in turn: every resource once.
		if p.received != 12 || len(p.copy["Users"]) != 9 || len(p.copy["Groups"]) != 3 {
			t.Fatalf("%s: the first pull received %d resources, %d users and %d groups, want 9 and 3 once each; pages: %v",
				p.name, p.received, len(p.copy["Users"]), len(p.copy["Groups"]), p.log)
		}
	}
	users := listed(must(lbs[0].get("/scim/v2/Users?count=100")))
	time.Sleep(1100 * time.Millisecond) // modifyTimestamp counts whole seconds
	ch.make(t, sl, users)
	if sum := ra.pass(t, false); !ch.applied(sum) {
		t.Fatalf("A's delta pass: %+v", sum)
	}
	// The pullers' next requests go to B, which has not seen the change yet...
	for _, lb := range lbs {
		lb.next = 1
	}
	time.Sleep(100 * time.Millisecond)
	for _, p := range pullers {
		p.pull()
	}
	// ... then B applies it, two seconds after A, and the pullers go on in turn, starting
	// with A.
	time.Sleep(2 * time.Second)
	if sum := rb.pass(t, false); !ch.applied(sum) {
		t.Fatalf("B's delta pass: %+v", sum)
	}
	for _, lb := range lbs {
		lb.next = 0
	}
	for range 4 {
		time.Sleep(300 * time.Millisecond)
		for _, p := range pullers {
			p.pull()
		}
	}
	// Past every lastModified the replicas stored (the change's time plus twice the lag),
	// what they serve shows no clock at all: it must be the same on both.
	time.Sleep(2*lag + time.Second)
	for _, p := range pullers {
		p.pull()
	}
	return pullers, []*replica{ra, rb}, state(t, ra), state(t, rb)
}

func must(page map[string]any, _ string) map[string]any { return page }

// change is the directory change of a scenario and how a delta pass that applies it looks.
type change struct {
	make    func(t *testing.T, sl *testenv.Slapd, users []map[string]any)
	applied func(ldapsync.Summary) bool
}

// ownChanges are changes of the entries themselves: a user's title, a new user, a new group
// of both. Their modifyTimestamp is the time of the change.
var ownChanges = change{
	make: func(t *testing.T, sl *testenv.Slapd, users []map[string]any) {
		x := users[0]["userName"].(string)
		sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Replicated Officer\n", x, sl.BaseDN))
		sl.Add(t, fmt.Sprintf("dn: uid=ha.newcomer,ou=people,%[1]s\nobjectClass: inetOrgPerson\nuid: ha.newcomer\ncn: Ha Newcomer\nsn: Newcomer\ngivenName: Ha\ndisplayName: Ha Newcomer\nmail: ha.newcomer@example.com\n\n"+
			"dn: cn=replicated,ou=groups,%[1]s\nobjectClass: groupOfNames\ncn: replicated\nmember: uid=%[2]s,ou=people,%[1]s\nmember: uid=ha.newcomer,ou=people,%[1]s\n", sl.BaseDN, x))
	},
	applied: func(sum ldapsync.Summary) bool { return sum.Created == 2 && sum.Updated == 1 },
}

// managerRename renames a manager: her reports' manager.displayName changes though their
// entries do not (their modifyTimestamp is older than the change).
var managerRename = change{
	make: func(t *testing.T, sl *testenv.Slapd, users []map[string]any) {
		byID := map[string]string{}
		for _, u := range users {
			byID[u["id"].(string)] = u["userName"].(string)
		}
		for _, u := range users {
			ext, _ := u[scim.SchemaEnterpriseUser].(map[string]any)
			mgr, _ := ext["manager"].(map[string]any)
			if name := byID[fmt.Sprint(mgr["value"])]; name != "" {
				sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: displayName\ndisplayName: Renamed Manager\n", name, sl.BaseDN))
				return
			}
		}
		t.Fatal("no user has a manager")
	},
	applied: func(sum ldapsync.Summary) bool { return sum.Updated >= 2 },
}

// TestReplicasAgree: two replicas behind a round-robin client, incremental pulls see every
// change (docs/architecture.md, invariant 6). Each replica has its own cache and syncs one
// slapd; B applies a change two seconds after A. A puller whose next "gt" is its own clock
// and one whose next "gt" is the largest lastModified it saw both end with every resource
// in its current version, though pages of one pull come from different replicas, and both
// replicas serve the same ids, bodies (meta.lastModified included) and versions. Without a
// lag (one instance's rule, lastModified = each replica's own write time), the own-clock
// puller misses the change: TestReplicasWithoutLagMissAChange.
func TestReplicasAgree(t *testing.T) {
	pullers, replicas, a, b := replicaRun(t, 5*time.Second, ownChanges)
	for _, p := range pullers {
		if m := p.missed(a); len(m) > 0 {
			t.Errorf("%s puller missed %v; pages: %v", p.name, m, p.log)
		}
	}
	for _, typ := range []string{"Users", "Groups"} {
		if !slices.Equal(slices.Sorted(maps.Keys(a[typ])), slices.Sorted(maps.Keys(b[typ]))) {
			t.Fatalf("%s: the replicas serve different ids: %v and %v", typ, slices.Sorted(maps.Keys(a[typ])), slices.Sorted(maps.Keys(b[typ])))
		}
		for id, ra := range a[typ] {
			ja, _ := json.Marshal(ra)
			jb, _ := json.Marshal(b[typ][id])
			if string(ja) != string(jb) {
				t.Errorf("%s %s differs:\nA %s\nB %s", typ, id, ja, jb)
			}
		}
	}
	// The same ETag from both for every resource.
	for _, typ := range []string{"Users", "Groups"} {
		for id := range a[typ] {
			var tags []string
			for _, r := range replicas {
				req, _ := http.NewRequest("GET", r.srv.URL+"/scim/v2/"+typ+"/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				tags = append(tags, resp.Header.Get("ETag"))
			}
			if tags[0] == "" || tags[0] != tags[1] || !strings.Contains(tags[0], version(a[typ][id])) {
				t.Errorf("%s %s: ETags %q, version %s", typ, id, tags, version(a[typ][id]))
			}
		}
	}
	if len(a["Users"]) != 10 || len(a["Groups"]) != 4 {
		t.Errorf("%d users and %d groups, want 10 and 4", len(a["Users"]), len(a["Groups"]))
	}
}

// TestReplicasWithoutLagMissAChange is the same scenario with lastModified set as on one
// instance (the write's time on each replica): the own-clock puller asked B before B had the
// change, then A with a time later than A's write, then B with a time later than B's write,
// and never sees the change. This is why replicas need [ha] max_lag.
func TestReplicasWithoutLagMissAChange(t *testing.T) {
	pullers, _, a, _ := replicaRun(t, 0, ownChanges)
	if m := pullers[0].missed(a); len(m) == 0 {
		t.Errorf("the own-clock puller saw every change without a lag; pages: %v", pullers[0].log)
	}
}

// TestReplicasDerivedChange: a change not caused by the entries that show it (a manager's
// rename, which rewrites her reports' manager.displayName while their modifyTimestamp stays
// old) reaches both pullers too. Each replica dates the reports at its own write time plus the
// lag, later than needed: the replicas then show different lastModified for them, and the same
// ids, content and versions.
func TestReplicasDerivedChange(t *testing.T) {
	pullers, _, a, b := replicaRun(t, 5*time.Second, managerRename)
	renamed := 0
	for _, u := range a["Users"] {
		ext, _ := u[scim.SchemaEnterpriseUser].(map[string]any)
		if mgr, _ := ext["manager"].(map[string]any); mgr["displayName"] == "Renamed Manager" {
			renamed++
		}
	}
	if renamed == 0 {
		t.Fatal("no report shows the manager's new name")
	}
	for _, p := range pullers {
		if m := p.missed(a); len(m) > 0 {
			t.Errorf("%s puller missed %v; pages: %v", p.name, m, p.log)
		}
		if m := p.missed(b); len(m) > 0 {
			t.Errorf("%s puller lacks B's %v", p.name, m)
		}
	}
	for _, typ := range []string{"Users", "Groups"} {
		for id, ra := range a[typ] {
			rb := b[typ][id]
			if rb == nil || version(ra) != version(rb) {
				t.Errorf("%s %s: versions %s and %v", typ, id, version(ra), rb)
			}
		}
	}
	t.Logf("%d reports renamed their manager", renamed)
}

// TestReplicasOnSchedules: the replicas sync on their own delta schedules (every 3 s, B
// started 1.5 s after A), the directory changes three times while both pullers pull every
// 250 ms through the round-robin balancer, and in the end both pullers hold what both
// replicas serve, and the replicas serve the same bodies. Unlike TestReplicasAgree, nothing
// orders the pulls and the passes: whatever interleaving the schedules give must do. With a
// lag of 0 (the rule before [ha] max_lag) the bodies differ in meta.
func TestReplicasOnSchedules(t *testing.T) {
	const lag = 8 * time.Second // above the 3 s schedule, a slow pass, and modifyTimestamp's whole seconds
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 9, Groups: 3, Seed: 15})}})
	ra, rb := newReplica(t, "A", sl, lag), newReplica(t, "B", sl, lag)
	ra.pass(t, true)
	rb.pass(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	for i, r := range []*replica{ra, rb} {
		if i == 1 {
			time.Sleep(1500 * time.Millisecond)
		}
		sch, err := ldapsync.NewScheduler(ctx, r.sync, ldapsync.ScheduleConfig{Delta: "@every 3s"}, ldapsync.SchedulerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sch.Start()
		t.Cleanup(sch.Stop)
	}
	t.Cleanup(cancel) // runs before the schedulers stop
	pullers := []*puller{
		newPuller("own-clock", true, &balancer{t: t, replicas: []*replica{ra, rb}}),
		newPuller("max-seen", false, &balancer{t: t, replicas: []*replica{ra, rb}}),
	}
	users := listed(must(pullers[0].lb.get("/scim/v2/Users?count=100")))
	changes := map[int]func(){
		8: func() { // 2 s in
			sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: First Change\n", users[1]["userName"], sl.BaseDN))
		},
		20: func() { // 5 s in
			sl.Add(t, fmt.Sprintf("dn: uid=ha.scheduled,ou=people,%s\nobjectClass: inetOrgPerson\nuid: ha.scheduled\ncn: Ha Scheduled\nsn: Scheduled\ndisplayName: Ha Scheduled\n", sl.BaseDN))
		},
		32: func() { // 8 s in
			sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Third Change\n", users[2]["userName"], sl.BaseDN))
		},
	}
	for i := range 48 {
		if ch := changes[i]; ch != nil {
			ch()
		}
		for _, p := range pullers {
			p.pull()
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2*lag + 4*time.Second) // both replicas have passed since, and every stored time is past
	for _, p := range pullers {
		p.pull()
		p.pull()
	}
	a, b := state(t, ra), state(t, rb)
	if len(a["Users"]) != 10 {
		t.Fatalf("A serves %d users, want 10", len(a["Users"]))
	}
	for _, p := range pullers {
		for _, want := range []map[string]map[string]map[string]any{a, b} {
			if m := p.missed(want); len(m) > 0 {
				t.Errorf("%s puller missed %v; pages: %v", p.name, m, p.log)
			}
		}
	}
	for _, typ := range []string{"Users", "Groups"} {
		for id, ra := range a[typ] {
			ja, _ := json.Marshal(ra)
			jb, _ := json.Marshal(b[typ][id])
			if string(ja) != string(jb) {
				t.Errorf("%s %s differs:\nA %s\nB %s", typ, id, ja, jb)
			}
		}
	}
}
