package ldapsync

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// What a pass keeps per entry read, measured: N synthetic users go through the code a steady
// full pass runs for an unchanged user (unchanged: its stored source record, remember, a
// manager check), and N more through remember alone (a changed user or a group). The heap
// that stays live, after a GC, divided by N is the cost of one entry.
//
// For comparison, legacyState replays what the pass kept before entries.go: string-keyed maps
// of cache.Refs by normalized DN, uid and id, every stored source record loaded up front, and
// a manager check with strings. It is a copy of that code's data, filled the same way.

type mapEntry map[string][][]byte

func (m mapEntry) Get(name string) [][]byte { return m[strings.ToLower(name)] }

func syntheticUser(i int) (id, entryDN string, e mapEntry) { return syntheticReport(i, i/10) }

func syntheticReport(i, mgr int) (id, entryDN string, e mapEntry) {
	h := sha256.Sum256(fmt.Appendf(nil, "user %d", i))
	id = uuidString([16]byte(h[:16]))
	entryDN = fmt.Sprintf("uid=user%07d,ou=people,dc=example,dc=com", i)
	e = mapEntry{
		"entryuuid":   {[]byte(id)},
		"uid":         {fmt.Appendf(nil, "user%07d", i)},
		"cn":          {fmt.Appendf(nil, "Given%d Family%d", i, i)},
		"displayname": {fmt.Appendf(nil, "Given%d Family%d", i, i)},
		"manager":     {fmt.Appendf(nil, "uid=user%07d,ou=people,dc=example,dc=com", mgr)},
	}
	return id, entryDN, e
}

func newStatePass(t testing.TB) *pass {
	cfg := DefaultConfig()
	cfg.URL = "ldap://127.0.0.1:1/"
	cfg.Users.BaseDN = "ou=people,dc=example,dc=com"
	cfg.Groups.BaseDN = "ou=groups,dc=example,dc=com"
	s, err := New(cfg, DefaultSafety(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s.newPass(nil, true)
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

type stateInput struct {
	id, dn string
	e      mapEntry
	src    []byte
}

// Users as the reader would hand them, each with the source record a steady full pass finds
// stored: unchanged, with a manager. Half the users have a manager read before them (user
// i/10), half one read after them (as a first sync that reads in creation order would meet
// managers created after their reports).
func stateInputs(n int) []stateInput {
	ins := make([]stateInput, n)
	for i := range ins {
		m := i / 10
		if i%2 == 1 {
			m = (i*7 + 3) % n
		}
		id, d, e := syntheticReport(i, m)
		mid, _, _ := syntheticUser(m)
		ins[i] = stateInput{id, d, e, encodeSrc([16]byte{1}, cache.Ref{ID: mid, Display: fmt.Sprintf("Given%d Family%d", m, m)})}
	}
	return ins
}

// measure returns the heap that fill leaves live, per input.
func measure(n int, fill func() any) float64 {
	before := liveHeap()
	keep := fill()
	after := liveHeap()
	runtime.KeepAlive(keep)
	return float64(int64(after)-int64(before)) / float64(n)
}

// measureState returns the bytes per entry of the pass state (new) and of legacyState (old)
// after n unchanged users with a manager (a steady full pass), and after n users remembered
// without a check (a first sync, or changed users).
func measureState(t testing.TB, n int) (newSkipped, newRead, oldSkipped, oldRead float64) {
	ins := stateInputs(n)
	newSkipped = measure(n, func() any {
		p := newStatePass(t)
		for _, x := range ins {
			p.srcBatch = map[string][]byte{x.id: x.src}
			same, err := p.unchanged(t.Context(), x.id, x.dn, x.e, [16]byte{1})
			if err != nil || !same {
				t.Fatalf("unchanged: %v %v", same, err)
			}
		}
		p.srcBatch = nil
		if got, ok := p.ents.byDNKey(dnKey(ins[n/2].dn)); !ok || got.ID != ins[n/2].id {
			t.Fatalf("lookup by DN: %+v %v", got, ok)
		}
		if p.sum.Unchanged != n || p.mgrChecks.n == 0 || p.mgrChecksDN.n == 0 {
			t.Fatalf("%d unchanged, %d+%d manager checks", p.sum.Unchanged, p.mgrChecks.n, p.mgrChecksDN.n)
		}
		if p.mgrChecks.n+p.mgrChecksDN.n != uint32(n) {
			t.Fatalf("%d+%d manager checks", p.mgrChecks.n, p.mgrChecksDN.n)
		}
		return p
	})
	newRead = measure(n, func() any {
		p := newStatePass(t)
		for _, x := range ins {
			p.remember(cache.Ref{ID: x.id, Type: scim.UserType, Display: p.s.users.display(x.e)}, x.dn, x.e)
		}
		return p
	})
	oldSkipped = measure(n, func() any {
		// Every source record loaded up front, then the unchanged users.
		l := newLegacyState()
		for _, x := range ins {
			r, _ := decodeSrc(x.src)
			l.src[x.id] = r
		}
		s := newStatePass(t).s
		for _, x := range ins {
			stored := l.src[x.id]
			l.remember(cache.Ref{ID: x.id, Type: scim.UserType, Display: s.users.display(x.e)}, x.dn, x.e)
			l.mgrChecks = append(l.mgrChecks, legacyMgrCheck{id: x.id, mgrDN: s.users.managerDN(x.e), want: stored.Manager, digest: stored.Digest})
		}
		return l
	})
	oldRead = measure(n, func() any {
		l := newLegacyState()
		s := newStatePass(t).s
		for _, x := range ins {
			l.remember(cache.Ref{ID: x.id, Type: scim.UserType, Display: s.users.display(x.e)}, x.dn, x.e)
		}
		return l
	})
	runtime.KeepAlive(ins)
	return
}

type legacyMgrCheck struct {
	id     string
	mgrDN  string
	want   cache.Ref
	digest [16]byte
}

type legacyState struct {
	byDN      map[string]cache.Ref
	byUID     map[string]cache.Ref
	seen      map[string]struct{}
	src       map[string]ingest.SourceRecord
	mgrChecks []legacyMgrCheck
}

func newLegacyState() *legacyState {
	return &legacyState{byDN: map[string]cache.Ref{}, byUID: map[string]cache.Ref{}, seen: map[string]struct{}{}, src: map[string]ingest.SourceRecord{}}
}

func (l *legacyState) remember(ref cache.Ref, entryDN string, e attrGetter) {
	l.byDN[dn.Normalize(entryDN)] = ref
	l.seen[ref.ID] = struct{}{}
	if ref.Type == scim.UserType {
		for _, u := range e.Get("uid") {
			l.byUID[strings.ToLower(str(u))] = ref
		}
	}
}

func TestPassStateBytesPerEntry(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	newSkipped, newRead, oldSkipped, oldRead := measureState(t, n)
	t.Logf("pass state, bytes per entry at %d entries: unchanged user with a manager %.0f (before: %.0f), user read %.0f (before: %.0f)",
		n, newSkipped, oldSkipped, newRead, oldRead)
	if newSkipped > 120 || newRead > 100 {
		t.Errorf("pass state: %.0f / %.0f bytes per entry, want at most 120 / 100", newSkipped, newRead)
	}
}

func BenchmarkPassStateBytesPerEntry(b *testing.B) {
	for b.Loop() {
		newSkipped, newRead, oldSkipped, oldRead := measureState(b, 200_000)
		b.ReportMetric(newSkipped, "B/unchanged-user")
		b.ReportMetric(newRead, "B/read-entry")
		b.ReportMetric(oldSkipped, "old-B/unchanged-user")
		b.ReportMetric(oldRead, "old-B/read-entry")
	}
}

func TestEntriesTable(t *testing.T) {
	var es entries
	ids := map[string]bool{}
	for i := range 5000 {
		id, d, e := syntheticUser(i)
		if i%7 == 0 {
			id = fmt.Sprintf("not-a-uuid-%d", i) // other servers' ids are kept as text
		}
		typ := scim.UserType
		var uids []string
		if i%3 == 0 {
			typ = scim.GroupType
		} else {
			uids = []string{str(e.Get("uid")[0]), fmt.Sprintf("Alias%d", i)}
		}
		es.add(cache.Ref{ID: id, Type: typ, Display: fmt.Sprintf("Name %d", i)}, dnKey(d), uids)
		ids[id] = true
	}
	for i := range 5000 {
		id, d, _ := syntheticUser(i)
		if i%7 == 0 {
			id = fmt.Sprintf("not-a-uuid-%d", i)
		}
		ref, ok := es.byDNKey(dnKey(strings.ToUpper(d)))
		if !ok || ref.ID != id || ref.Display != fmt.Sprintf("Name %d", i) || (ref.Type == scim.GroupType) != (i%3 == 0) {
			t.Fatalf("%d: %+v %v", i, ref, ok)
		}
		if !es.read(id) {
			t.Fatalf("%d: not read", i)
		}
		u, ok := es.byUIDValue(fmt.Sprintf("USER%07d", i))
		if ok != (i%3 != 0) || ok && u.ID != id {
			t.Fatalf("%d: uid: %+v %v", i, u, ok)
		}
		if u, ok := es.byUIDValue(fmt.Sprintf("alias%d", i)); ok != (i%3 != 0) || ok && u.ID != id {
			t.Fatalf("%d: second uid: %+v %v", i, u, ok)
		}
	}
	if es.read("00000000-0000-0000-0000-000000000000") || es.read("x") {
		t.Fatal("unknown id read")
	}
	if _, ok := es.byDNKey(dnKey("cn=nobody")); ok {
		t.Fatal("unknown DN found")
	}
	// A DN read again names the newer entry; a uid as well, whichever position it had.
	_, d, _ := syntheticUser(1)
	es.add(cache.Ref{ID: "new-id", Type: scim.UserType, Display: "Renamed"}, dnKey(d), []string{"other", "user0000002"})
	if ref, _ := es.byDNKey(dnKey(d)); ref.ID != "new-id" || ref.Display != "Renamed" {
		t.Fatalf("re-read DN: %+v", ref)
	}
	if ref, _ := es.byUIDValue("user0000002"); ref.ID != "new-id" {
		t.Fatalf("re-read uid: %+v", ref)
	}
	// A display longer than an arena chunk.
	long := strings.Repeat("x", 3<<20)
	es.add(cache.Ref{ID: "long", Type: scim.GroupType, Display: long}, dnKey("cn=long"), nil)
	es.add(cache.Ref{ID: "after", Type: scim.GroupType, Display: "after"}, dnKey("cn=after"), nil)
	if ref, _ := es.byDNKey(dnKey("cn=long")); ref.Display != long {
		t.Fatal("long display")
	}
	if ref, _ := es.byDNKey(dnKey("cn=after")); ref.Display != "after" || ref.ID != "after" {
		t.Fatalf("after long: %+v", ref)
	}
}

// Pending resources beyond pendingSpillAfter go to a temporary file and come back in order.
func TestPendingSpill(t *testing.T) {
	p := newStatePass(t)
	defer p.spill.close()
	old := pendingSpillAfter
	pendingSpillAfter = 2
	defer func() { pendingSpillAfter = old }()
	var want []pendingResource
	for i := range 5 {
		pr := pendingResource{raw: fmt.Appendf(nil, `{"id":"%d"}`, i), digest: [16]byte{byte(i)},
			rf: refs{manager: fmt.Sprintf("uid=m%d", i)}}
		if i%2 == 0 {
			pr.rf = refs{memberDNs: []string{"cn=a", ""}, memberUIDs: []string{"x"}}
		}
		want = append(want, pr)
		if err := p.addPending(pr); err != nil {
			t.Fatal(err)
		}
	}
	if p.spill == nil || p.pending != nil {
		t.Fatalf("not spilled: %d in memory", len(p.pending))
	}
	var got []pendingResource
	if err := p.spill.each(func(pr pendingResource) error { got = append(got, pr); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
