package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// info reads the replica's HA status from /admin/v1/info; ok is false when it does not answer.
func (r *replica) info() (admin.HAStatus, bool) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.admin + "/admin/v1/info")
	if err != nil {
		return admin.HAStatus{}, false
	}
	defer resp.Body.Close()
	var v struct {
		HA admin.HAStatus `json:"ha"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return admin.HAStatus{}, false
	}
	return v.HA, true
}

// leaderWatch polls every live replica's /admin/v1/info, one round every 50 ms, and records
// each round in which more than one replica said it leads. A leader stops at TTL/2 after its
// last renewal and another can win only once that lease has expired (TTL after it), so a round
// (tens of milliseconds) never legitimately sees two.
type leaderWatch struct {
	mu         sync.Mutex
	live       []*replica
	rounds     int
	violations []string
	stop       context.CancelFunc
	done       chan struct{}
}

func watchLeaders(live []*replica) *leaderWatch {
	ctx, stop := context.WithCancel(context.Background())
	w := &leaderWatch{live: slices.Clone(live), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			w.round()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *leaderWatch) round() {
	w.mu.Lock()
	live := slices.Clone(w.live)
	w.mu.Unlock()
	start := time.Now()
	var leaders []string
	for _, r := range live {
		if st, ok := r.info(); ok && st.Role == "leader" {
			leaders = append(leaders, r.name)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rounds++
	if len(leaders) > 1 {
		w.violations = append(w.violations, fmt.Sprintf("%s: %v all said they lead (round of %v)",
			start.Format("15:04:05.000"), leaders, time.Since(start).Round(time.Millisecond)))
	}
}

// drop stops polling r (about to be killed).
func (w *leaderWatch) drop(r *replica) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.live = slices.DeleteFunc(w.live, func(x *replica) bool { return x == r })
}

// finish stops the polling and fails the test for every round that saw two leaders.
func (w *leaderWatch) finish(t *testing.T) {
	t.Helper()
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rounds < 10 {
		t.Errorf("the leader watch made only %d rounds", w.rounds)
	}
	for _, v := range w.violations {
		t.Errorf("two leaders: %s", v)
	}
	t.Logf("leader watch: %d rounds of /admin/v1/info, %d with two leaders", w.rounds, len(w.violations))
}

// hakGroups are the groups the kill test adds members to.
const hakGroups = 5

// hakUserDN is the DN of the kill test's i-th added user.
func hakUserDN(sl *testenv.Slapd, i int) string {
	return fmt.Sprintf("uid=hak-%05d,ou=people,%s", i, sl.BaseDN)
}

func hakGroupDN(sl *testenv.Slapd, g int) string {
	return fmt.Sprintf("cn=ha-group-%d,ou=groups,%s", g, sl.BaseDN)
}

// hakSeedLDIF is a seed user and the hakGroups groups (groupOfNames needs a member), loaded
// with slapadd beside the sample users.
func hakSeedLDIF(t *testing.T, suffix string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "dn: uid=hak-seed,ou=people,%s\nobjectClass: inetOrgPerson\nuid: hak-seed\ncn: HA Seed\nsn: Seed\nemployeeNumber: H-seed\n\n", suffix)
	for g := range hakGroups {
		fmt.Fprintf(&b, "dn: cn=ha-group-%d,ou=groups,%s\nobjectClass: groupOfNames\ncn: ha-group-%d\nmember: uid=hak-seed,ou=people,%s\n\n", g, suffix, g, suffix)
	}
	p := filepath.Join(t.TempDir(), "hak-seed.ldif")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// addUsersAndMembers makes 2n directory changes online, one LDAP operation each: user hak-i
// is added, then made a member of group ha-group-(i mod hakGroups). It stops at the first
// error or when ctx ends.
func addUsersAndMembers(ctx context.Context, sl *testenv.Slapd, from, n int) error {
	c, err := ldap.DialURL(sl.URL)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if err := c.Bind(sl.RootDN, sl.RootPassword); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	for i := from; i < from+n && ctx.Err() == nil; i++ {
		add := ldap.NewAddRequest(hakUserDN(sl, i), nil)
		add.Attribute("objectClass", []string{"inetOrgPerson"})
		add.Attribute("uid", []string{fmt.Sprintf("hak-%05d", i)})
		add.Attribute("cn", []string{fmt.Sprintf("HA Kill %05d", i)})
		add.Attribute("sn", []string{"Kill"})
		add.Attribute("employeeNumber", []string{fmt.Sprintf("H%05d", i)})
		if err := c.Add(add); err != nil {
			return fmt.Errorf("add %d: %w", i, err)
		}
		mod := ldap.NewModifyRequest(hakGroupDN(sl, i%hakGroups), nil)
		mod.Add("member", []string{hakUserDN(sl, i)})
		if err := c.Modify(mod); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
	}
	return ctx.Err()
}

// snapshot is a user and group view to compare the directory and the target by: users by
// userName (their externalId), groups by displayName (their members' userNames, sorted, with
// repeats kept).
type snapshot struct {
	users  map[string]string
	groups map[string][]string
	dups   []string // user names or group names seen more than once
}

// directorySnapshot reads the users and groups from slapd (paged, as the rootdn).
func directorySnapshot(t *testing.T, sl *testenv.Slapd) snapshot {
	t.Helper()
	c := sl.Root(t)
	defer c.Close()
	search := func(base, filter string, attrs ...string) []*ldap.Entry {
		res, err := c.SearchWithPaging(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, filter, attrs, nil), 1000)
		if err != nil {
			t.Fatalf("search %s: %v", base, err)
		}
		return res.Entries
	}
	s := snapshot{users: map[string]string{}, groups: map[string][]string{}}
	uidOf := map[string]string{}
	for _, e := range search("ou=people,"+sl.BaseDN, "(objectClass=inetOrgPerson)", "uid", "employeeNumber") {
		uid := e.GetAttributeValue("uid")
		s.users[uid] = e.GetAttributeValue("employeeNumber")
		uidOf[strings.ToLower(e.DN)] = uid
	}
	for _, e := range search("ou=groups,"+sl.BaseDN, "(cn=ha-group-*)", "cn", "member") {
		var members []string
		for _, dn := range e.GetAttributeValues("member") {
			members = append(members, uidOf[strings.ToLower(dn)])
		}
		sort.Strings(members)
		s.groups[e.GetAttributeValue("cn")] = members
	}
	return s
}

// targetSnapshot reads every user and group from SCIMMY with paged GETs (count per page),
// checking that the pages add up to totalResults.
func targetSnapshot(t *testing.T, sc *testenv.Scimmy, count int) snapshot {
	t.Helper()
	return scimSnapshot(t, sc.URL, sc.Token, count)
}

// scimSnapshot reads every user and group of the SCIM service at base with paged GETs.
func scimSnapshot(t *testing.T, base, token string, count int) snapshot {
	t.Helper()
	type member struct {
		Value string `json:"value"`
	}
	type resource struct {
		ID          string   `json:"id"`
		UserName    string   `json:"userName"`
		ExternalID  string   `json:"externalId"`
		DisplayName string   `json:"displayName"`
		Members     []member `json:"members"`
	}
	read := func(path string) []resource {
		var all []resource
		for start := 1; ; {
			q := url.Values{"startIndex": {fmt.Sprint(start)}, "count": {fmt.Sprint(count)}}
			req, _ := http.NewRequest(http.MethodGet, base+path+"?"+q.Encode(), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			var page struct {
				TotalResults int        `json:"totalResults"`
				Resources    []resource `json:"Resources"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
			}
			all = append(all, page.Resources...)
			if len(page.Resources) == 0 || len(all) >= page.TotalResults {
				if len(all) != page.TotalResults {
					t.Fatalf("GET %s: %d resources over the pages, totalResults %d", path, len(all), page.TotalResults)
				}
				return all
			}
			start += len(page.Resources)
		}
	}
	s := snapshot{users: map[string]string{}, groups: map[string][]string{}}
	nameOf := map[string]string{}
	for _, u := range read("/Users") {
		if _, dup := s.users[u.UserName]; dup {
			s.dups = append(s.dups, "user "+u.UserName)
		}
		s.users[u.UserName] = u.ExternalID
		nameOf[u.ID] = u.UserName
	}
	for _, g := range read("/Groups") {
		if _, dup := s.groups[g.DisplayName]; dup {
			s.dups = append(s.dups, "group "+g.DisplayName)
		}
		members := []string{}
		for _, m := range g.Members {
			name, ok := nameOf[m.Value]
			if !ok {
				name = "?" + m.Value // a member that is no user at the target
			}
			members = append(members, name)
		}
		sort.Strings(members)
		s.groups[g.DisplayName] = members
	}
	return s
}

// diff lists how the target differs from the directory, at most max lines.
func (dir snapshot) diff(target snapshot, max int) []string {
	var out []string
	add := func(format string, a ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, a...))
		}
	}
	for _, d := range target.dups {
		add("duplicate at the target: %s", d)
	}
	for name, ext := range dir.users {
		got, ok := target.users[name]
		switch {
		case !ok:
			add("user %s missing at the target", name)
		case got != ext:
			add("user %s: externalId %q at the target, %q in the directory", name, got, ext)
		}
	}
	for name := range target.users {
		if _, ok := dir.users[name]; !ok {
			add("user %s at the target only", name)
		}
	}
	for name, members := range dir.groups {
		got, ok := target.groups[name]
		if !ok {
			add("group %s missing at the target", name)
			continue
		}
		if dup := repeated(got); len(dup) > 0 {
			add("group %s: members %v more than once at the target", name, dup[:min(len(dup), 5)])
		}
		if !slices.Equal(got, members) {
			add("group %s: %d members at the target, %d in the directory (first differences: %v)",
				name, len(got), len(members), firstDiffs(members, got, 5))
		}
	}
	return out
}

// repeated returns the values of a sorted slice that occur more than once.
func repeated(sorted []string) []string {
	var out []string
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] && (len(out) == 0 || out[len(out)-1] != sorted[i]) {
			out = append(out, sorted[i])
		}
	}
	return out
}

// firstDiffs returns up to n values in exactly one of the sorted slices want and got, as
// "-missing" or "+extra".
func firstDiffs(want, got []string, n int) []string {
	var out []string
	i, j := 0, 0
	for (i < len(want) || j < len(got)) && len(out) < n {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			out = append(out, "-"+want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			out = append(out, "+"+got[j])
			j++
		default:
			i++
			j++
		}
	}
	return out
}

// Three serve replicas on one slapd, one SCIMMY target and a 3-member etcd (issue 14): 5,000
// directory changes (2,500 users added, each then added to one of five groups) are pushed by
// the leader; it is killed with -9 when the target has some but not all of them; another
// replica takes over within lease_ttl + 5 s and finishes. Throughout, no two replicas say they
// lead (/admin/v1/info polled every 50 ms); the replica that never led sent nothing; at the end
// the target, read with paged GETs, equals the directory: the same users (userName and
// externalId), none twice, and each group the same members, none twice; so does the cache of
// each live replica (its SCIM API).
func TestHAThreeReplicasKillDuringPush(t *testing.T) {
	const (
		seedUsers = 100
		added     = 2500 // users added, and as many member adds: 5,000 changes
		ttl       = 3 * time.Second
		killAt    = 400 // new users at the target when the leader is killed
	)
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{
		testenv.SampleLDIF(t, sampledata.Options{Users: seedUsers, Seed: 14}),
		hakSeedLDIF(t, sampledata.DefaultSuffix),
	}})
	sc := testenv.StartScimmy(t)
	etcd := testenv.StartEtcd(t, 3)
	reps := startHAReplicas(t, sl, sc, etcd.Endpoints, haReplicas{
		names: []string{"replica-a", "replica-b", "replica-c"}, ttl: ttl, target: "groups = true\n", scim: true})
	watch := watchLeaders(reps)
	leader := waitLeader(t, reps, 30*time.Second)

	// The directory as loaded reaches the target first.
	baseline := seedUsers + 1 + hakGroups
	waitCreated(t, sc, baseline, 60*time.Second, leader)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan error, 1)
	changeStart := time.Now()
	go func() { changes <- addUsersAndMembers(ctx, sl, 0, added) }()

	// kill -9 the leader in the middle of pushing them.
	waitCreated(t, sc, baseline+killAt, 60*time.Second, leader)
	watch.drop(leader)
	killed := time.Now()
	leader.cmd.Process.Kill()
	leader.cmd.Wait()
	st, _ := sc.Stats()
	if st.Created >= baseline+added {
		t.Fatalf("the target had every change (%d created) when the leader was killed", st.Created)
	}
	t.Logf("killed %s %v after the changes began, with %d of %d new users at the target",
		leader.name, killed.Sub(changeStart).Round(time.Millisecond), st.Created-baseline, added)

	var rest []*replica
	for _, r := range reps {
		if r != leader {
			rest = append(rest, r)
		}
	}
	next := waitLeader(t, rest, ttl+5*time.Second)
	took := time.Since(killed)
	if took > ttl+5*time.Second {
		t.Errorf("%s took over %v after the kill, more than lease_ttl + 5 s", next.name, took)
	}
	t.Logf("%s took over %v after kill -9 of the leader (lease_ttl %v)", next.name, took.Round(time.Millisecond), ttl)

	if err := <-changes; err != nil {
		t.Fatalf("directory changes: %v", err)
	}
	t.Logf("5,000 directory changes made in %v", time.Since(changeStart).Round(time.Millisecond))

	// The new leader finishes: the target converges on the directory.
	dir := directorySnapshot(t, sl)
	if len(dir.users) != seedUsers+1+added {
		t.Fatalf("the directory holds %d users, want %d", len(dir.users), seedUsers+1+added)
	}
	deadline := time.Now().Add(120 * time.Second)
	var diffs []string
	for {
		diffs = dir.diff(targetSnapshot(t, sc, 1000), 20)
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	watch.finish(t)
	if len(diffs) > 0 {
		// Whose fault: the new leader's cache, or what it pushed?
		cached := dir.diff(scimSnapshot(t, "http://"+next.scim+"/scim/v2", haSCIMToken, 1000), 20)
		t.Fatalf("the target differs from the directory 120 s after the changes:\n%s\nthe new leader's cache (its SCIM API) against the directory: %d differences\n%s\nnew leader:\n%s",
			strings.Join(diffs, "\n"), len(cached), strings.Join(cached, "\n"), next.stderr)
	}
	t.Logf("the target equals the directory %v after the kill", time.Since(killed).Round(time.Millisecond))
	// Every live replica's cache, read through its own SCIM API, equals the directory too: any
	// of them may lead next.
	for _, r := range rest {
		if d := dir.diff(scimSnapshot(t, "http://"+r.scim+"/scim/v2", haSCIMToken, 1000), 20); len(d) > 0 {
			t.Errorf("%s's cache differs from the directory:\n%s", r.name, strings.Join(d, "\n"))
		}
	}
	if st, _ := sc.Stats(); st.Created != len(dir.users)+len(dir.groups) {
		t.Errorf("the target created %d resources for %d users and %d groups", st.Created, len(dir.users), len(dir.groups))
	}
	for _, r := range rest {
		if r == next {
			continue
		}
		if n := r.pushRequests(t); n != 0 {
			t.Errorf("%s never led but sent %v push requests", r.name, n)
		}
		if st, ok := r.info(); !ok || st.Role != "follower" || st.Leader != next.name {
			t.Errorf("%s: %+v (answers: %v)", r.name, st, ok)
		}
	}
}

// waitCreated waits up to d until the target has created at least n resources.
func waitCreated(t testing.TB, sc *testenv.Scimmy, n int, d time.Duration, leader *replica) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, err := sc.Stats()
		if err == nil && st.Created >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the target created %d resources in %v, want %d (err %v):\n%s", st.Created, d, n, err, leader.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scimTitle reads user name's title from the replica's own SCIM API; ok is false when the
// replica does not answer or does not hold the user.
func (r *replica) scimTitle(name string) (title string, ok bool) {
	c := http.Client{Timeout: 2 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.scim+"/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+name+`"`), nil)
	req.Header.Set("Authorization", "Bearer "+haSCIMToken)
	resp, err := c.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var list struct {
		Resources []struct {
			Title string `json:"title"`
		} `json:"Resources"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil || len(list.Resources) != 1 {
		return "", false
	}
	return list.Resources[0].Title, true
}

// Two serve replicas on a 3-member etcd lose its quorum (two members stopped): the leader
// stops leading within lease_ttl/2 (+ the time a raft leader takes to notice), then no replica
// sends a push request, while both keep syncing the directory, answering SCIM reads with the
// change and staying ready. With the members back, a replica leads again and pushes the change.
func TestHAEtcdQuorumLossStopsPushingKeepsServing(t *testing.T) {
	const users = 10
	const ttl = 4 * time.Second
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: users, Seed: 14})}})
	sc := testenv.StartScimmy(t)
	etcd := testenv.StartEtcd(t, 3)
	reps := startHAReplicas(t, sl, sc, etcd.Endpoints, haReplicas{names: []string{"replica-a", "replica-b"}, ttl: ttl, scim: true})
	leader := waitLeader(t, reps, 30*time.Second)
	waitCreated(t, sc, users, 30*time.Second, leader)

	lost := time.Now()
	etcd.Stop(t, 1)
	etcd.Stop(t, 2)
	// A raft leader member that lost its quorum goes on renewing leases until it steps down
	// (up to two election timeouts, 2 s with etcd's defaults), then the leader stops at its
	// last renewal + TTL/2.
	deadline := time.Now().Add(ttl/2 + 3*time.Second)
	for {
		leading := 0
		for _, r := range reps {
			if st, ok := r.info(); !ok || st.Role == "leader" {
				leading++
			}
		}
		if leading == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a replica still leads (or does not answer) %v after etcd lost its quorum:\n%s", time.Since(lost), leader.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("no replica leads %v after two of three etcd members stopped (lease_ttl %v)", time.Since(lost).Round(time.Millisecond), ttl)
	before := map[string]float64{}
	for _, r := range reps {
		before[r.name] = r.pushRequests(t)
	}
	name := fmt.Sprint(sc.State(t).Users[0]["userName"]) // (reading the state counts as a request)
	stats, _ := sc.Stats()

	// A change in the directory: every replica syncs and serves it; none pushes it.
	sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: No Quorum\n", name, sl.BaseDN))
	for _, r := range reps {
		deadline := time.Now().Add(15 * time.Second)
		for {
			if title, ok := r.scimTitle(name); ok && title == "No Quorum" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not serve the change over SCIM without an etcd quorum:\n%s", r.name, r.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(3 * time.Second) // several delta passes and push polls
	for _, r := range reps {
		if n := r.pushRequests(t); n != before[r.name] {
			t.Errorf("%s sent %v push request(s) without an etcd quorum", r.name, n-before[r.name])
		}
		rd, ok := r.readiness()
		if !ok || !rd.Ready || rd.HA.Role != "follower" || rd.HA.Leader != "" {
			t.Errorf("%s without an etcd quorum: ready %v, %+v (answers: %v)", r.name, rd.Ready, rd.HA, ok)
		}
	}
	if after, _ := sc.Stats(); after.Requests != stats.Requests {
		t.Errorf("the target got %d request(s) without an etcd quorum", after.Requests-stats.Requests)
	}

	// The quorum back: a replica leads again and pushes the change.
	back := time.Now()
	etcd.Start(t, 1)
	etcd.Start(t, 2)
	etcd.WaitHealthy(t)
	waitLeader(t, reps, ttl+10*time.Second)
	waitTitle(t, sc, name, "No Quorum", back, ttl+15*time.Second, func() string { return leader.stderr.String() })
}
