//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// entry is what the checks need of one directory entry.
type entry struct {
	id, dn, uid, cn, title, csn, manager string
	group                                bool
}

// directory reads every user and group of sl as the rootdn: entryUUID (the cache's id),
// entryCSN (when it last changed), uid/cn and title.
func directory(t testing.TB, sl *testenv.Slapd) map[string]entry {
	t.Helper()
	c := sl.Root(t)
	defer c.Close()
	out := map[string]entry{}
	for _, ou := range []string{"people", "groups"} {
		req := ldap.NewSearchRequest("ou="+ou+","+sl.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"entryUUID", "entryCSN", "uid", "cn", "title", "manager"}, nil)
		res, err := c.SearchWithPaging(req, 2000)
		if err != nil {
			t.Fatalf("search ou=%s: %v", ou, err)
		}
		for _, e := range res.Entries {
			id := strings.ToLower(e.GetAttributeValue("entryUUID"))
			out[id] = entry{id: id, dn: e.DN, uid: e.GetAttributeValue("uid"), cn: e.GetAttributeValue("cn"),
				title: e.GetAttributeValue("title"), csn: e.GetAttributeValue("entryCSN"),
				manager: e.GetAttributeValue("manager"), group: ou == "groups"}
		}
	}
	return out
}

// contextCSN returns the contextCSN values of sl's suffix, as the rootdn reads them.
func contextCSN(t testing.TB, sl *testenv.Slapd) []string {
	t.Helper()
	c := sl.Root(t)
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(sl.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"contextCSN"}, nil))
	if err != nil || len(res.Entries) == 0 {
		t.Fatalf("reading contextCSN: %v", err)
	}
	return res.Entries[0].GetAttributeValues("contextCSN")
}

// refSync runs `ldapscim sync --full` into a fresh cache, with s's directory settings and no
// targets, and returns the resources' versions and how long the pass took: what a cache that
// lost nothing holds.
func refSync(t testing.TB, bin string, s setup) (map[string]string, time.Duration) {
	t.Helper()
	s.dir, s.cacheDir, s.admin, s.scim, s.targetURL = t.TempDir(), "", "", "", ""
	cfg := s.write(t, "ref.toml")
	start := time.Now()
	if out, err := exec.Command(bin, "sync", "--full", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("reference sync: %v\n%s", err, out)
	}
	took := time.Since(start)
	return testenv.ReadCache(t, filepath.Join(s.dir, "cache")).Versions, took
}

var csnRE = regexp.MustCompile(`csn=([0-9.]+Z#[0-9a-f]+#[0-9a-f]+#[0-9a-f]+)`)

// watermarkCSNs returns the highest entryCSN each syncrepl cookie of a stored watermark
// covers (users, groups); empty when there is no watermark or it holds no cookie.
func watermarkCSNs(t testing.TB, raw []byte) []string {
	t.Helper()
	if raw == nil {
		return nil
	}
	var wm struct {
		Mode         string `json:"mode"`
		UsersCookie  []byte `json:"usersCookie"`
		GroupsCookie []byte `json:"groupsCookie"`
	}
	if err := json.Unmarshal(raw, &wm); err != nil {
		t.Fatalf("watermark does not decode: %v: %q", err, raw)
	}
	var csns []string
	for _, c := range [][]byte{wm.UsersCookie, wm.GroupsCookie} {
		best := ""
		for _, m := range csnRE.FindAllStringSubmatch(string(c), -1) {
			best = max(best, m[1])
		}
		csns = append(csns, best)
	}
	return csns
}

// watermarkAhead counts the directory entries that changed before the stored watermark (their
// entryCSN is at or below the cookie's CSN) whose current state (ref) the cache lacks: a
// watermark stored ahead of its data, which a delta pass would never repair. An entry that did
// not change itself in this round (not in self) may still hold its version from before the
// round (prev): its SCIM form depends on other entries (a deleted member, a renamed manager)
// whose changes came after the watermark.
func watermarkAhead(t testing.TB, cs testenv.CacheState, dir map[string]entry, ref, prev map[string]string, self map[string]bool) int {
	t.Helper()
	csns := watermarkCSNs(t, cs.Watermark)
	if len(csns) == 0 {
		return 0
	}
	ahead := 0
	for id, e := range dir {
		wm := csns[0]
		if e.group {
			wm = csns[1]
		}
		if wm == "" || e.csn > wm || cs.Versions[id] == ref[id] {
			continue
		}
		if !self[id] && prev != nil && cs.Versions[id] == prev[id] {
			continue
		}
		t.Logf("watermark ahead: %s (%s, csn %s ≤ %s) is at version %q, want %q", id, e.dn, e.csn, wm, cs.Versions[id], ref[id])
		ahead++
	}
	return ahead
}

// idsOf maps DNs to the entries' ids (entryUUIDs).
func idsOf(dir map[string]entry, dns []string) map[string]bool {
	byDN := map[string]string{}
	for id, e := range dir {
		byDN[strings.ToLower(e.dn)] = id
	}
	out := map[string]bool{}
	for _, dn := range dns {
		if id, ok := byDN[strings.ToLower(dn)]; ok {
			out[id] = true
		}
	}
	return out
}

// pushProgress opens a stopped serve's cache and returns the target's cursor and the journal
// head.
func pushProgress(t testing.TB, dir string) (cursor, head uint64) {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatalf("opening cache: %v", err)
	}
	defer st.Close()
	ctx := context.Background()
	if cursor, err = st.PushCursor(ctx, "scimmy"); err == nil {
		head, err = st.JournalHead(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	return cursor, head
}

// deadLetterIDs returns the ids of the target's dead letters, by their last HTTP status.
func deadLetterIDs(t testing.TB, dir string) map[string]int {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatalf("opening cache: %v", err)
	}
	defer st.Close()
	dls, err := st.DeadLetters(context.Background(), "scimmy")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range dls {
		out[d.ID] = d.Status
	}
	return out
}

// targetReport compares what SCIMMY holds with the directory.
type targetReport struct {
	missing    []string // directory ids whose user or group the target lacks or holds stale
	duplicates int      // resources sharing an externalId, plus creates beyond the resources held
	extra      int      // active users at the target that the directory no longer has
}

// checkTarget: every directory user at the target with its current title and active, every
// group by displayName, deleted users not active, no two users with one externalId or
// userName, and no more creates than resources (SCIMMY counts its creates).
func checkTarget(t testing.TB, sc *testenv.Scimmy, dir map[string]entry) targetReport {
	t.Helper()
	st := sc.State(t)
	var r targetReport
	byName := map[string]map[string]any{}
	extIDs := map[string]int{}
	for _, u := range st.Users {
		name := strings.ToLower(fmt.Sprint(u["userName"]))
		if _, dup := byName[name]; dup {
			r.duplicates++
		}
		byName[name] = u
		if x, ok := u["externalId"].(string); ok && x != "" {
			if extIDs[x]++; extIDs[x] > 1 {
				r.duplicates++
			}
		}
	}
	groups := map[string]bool{}
	for _, g := range st.Groups {
		groups[fmt.Sprint(g["displayName"])] = true
	}
	if extra := st.Stats.Created - len(st.Users) - len(st.Groups); extra > 0 {
		r.duplicates += extra
	}
	live := map[string]bool{}
	for id, e := range dir {
		if e.group {
			if !groups[e.cn] {
				r.missing = append(r.missing, id)
			}
			continue
		}
		live[strings.ToLower(e.uid)] = true
		u := byName[strings.ToLower(e.uid)]
		if u == nil || fmt.Sprint(u["title"]) != e.title || u["active"] == false {
			r.missing = append(r.missing, id)
		}
	}
	for name, u := range byName {
		if !live[name] && u["active"] != false {
			r.extra++
		}
	}
	return r
}
