package ldapsync

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// resolverEnv is a real in-memory cache holding users a and z, and the entries of a pass.
type resolverEnv struct {
	st   *cache.Store
	ents entries
	ids  map[string]string // name → id
}

func personDN(name string) string { return "uid=" + name + ",ou=people,dc=example,dc=org" }

func newResolverEnv(t *testing.T) *resolverEnv {
	t.Helper()
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &resolverEnv{st: st, ids: map[string]string{}}
	var rs []*scim.Resource
	for i, name := range []string{"a", "b", "c", "d", "z"} {
		e.ids[name] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		if name == "a" || name == "z" || name == "b" {
			rs = append(rs, &scim.Resource{Type: scim.UserType, ID: e.ids[name], DN: personDN(name),
				Attributes: map[string]any{"userName": name, "displayName": "Cached " + name}})
		}
	}
	if _, err := st.Apply(context.Background(), cache.Batch{Source: Source, Pass: "seed", Upserts: rs}); err != nil {
		t.Fatal(err)
	}
	return e
}

// read records an entry as read by the pass, under the DN of name dnOf, with the display the
// cache has for it.
func (e *resolverEnv) read(name, dnOf string) {
	e.ents.add(cache.Ref{ID: e.ids[name], Type: scim.UserType, Display: "Cached " + name}, dnKey(personDN(dnOf)), []string{name})
}

func (e *resolverEnv) want(t *testing.T, what string, ref cache.Ref, ok bool, err error, name string) {
	t.Helper()
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case name == "" && ok:
		t.Errorf("%s resolved to %+v, want nothing", what, ref)
	case name != "" && (!ok || ref.ID != e.ids[name]):
		t.Errorf("%s resolved to %+v (%v), want %s", what, ref, ok, name)
	}
}

// In a full pass the cache's answer is tentative: a resource that used one is re-checked when
// the read is over, if the DN now names another entry; a complete read at its end never asks
// the cache.
func TestResolverFullPassTentativeReferences(t *testing.T) {
	ctx := context.Background()
	e := newResolverEnv(t)
	complete := true
	rv := newResolver(&e.ents, e.st, true, func() bool { return complete }, nil)
	e.read("c", "c")

	rv.begin()
	ref, ok, err := rv.dn(ctx, "UID=c, ou=People,dc=example,dc=org", false, nil)
	e.want(t, "a DN read in the pass", ref, ok, err, "c")
	if rv.usedTentative() {
		t.Error("a DN read in the pass is tentative")
	}
	rv.begin()
	ref, ok, err = rv.dn(ctx, personDN("a"), false, nil)
	e.want(t, "a cached DN not read yet", ref, ok, err, "a")
	if !rv.usedTentative() {
		t.Error("the cache's answer during a full read is not tentative")
	}
	rv.recheckLater(recheck{id: "g1", rf: refs{memberDNs: []string{personDN("c"), personDN("a")}}})
	rv.begin()
	ref, ok, err = rv.dn(ctx, personDN("b"), false, nil)
	e.want(t, "another cached DN", ref, ok, err, "b")
	rv.recheckLater(recheck{id: "u1", rf: refs{manager: personDN("b")}})
	ref, ok, err = rv.uid(ctx, "A", false)
	e.want(t, "a uid not read, in a full pass", ref, ok, err, "")
	ref, ok, err = rv.uid(ctx, "C", false)
	e.want(t, "a uid read (case-insensitively)", ref, ok, err, "c")

	// The read goes on: b is read under its DN, unchanged (confirmed); a's DN now names d.
	e.read("b", "b")
	e.read("d", "a")
	ref, ok, err = rv.dn(ctx, personDN("z"), true, nil)
	e.want(t, "a cached DN the complete read did not see", ref, ok, err, "")
	pre, err := rv.prefetch(ctx, []string{personDN("z")}, true)
	if err != nil || pre != nil {
		t.Errorf("a complete full pass prefetched %+v, %v", pre, err)
	}
	stale := rv.stale()
	if len(stale) != 1 || stale[0].id != "g1" {
		t.Errorf("stale %+v, want g1 only", stale)
	}
	if rv.stale() != nil {
		t.Error("stale twice")
	}

	// A partial full pass at its end falls back on the cache, and its answers are final.
	complete = false
	rv2 := newResolver(&e.ents, e.st, true, func() bool { return complete }, nil)
	rv2.begin()
	ref, ok, err = rv2.dn(ctx, personDN("z"), true, nil)
	e.want(t, "a cached DN at the end of a partial read", ref, ok, err, "z")
	ref, ok, err = rv2.uid(ctx, "z", true)
	e.want(t, "a cached uid at the end of a partial read", ref, ok, err, "z")
	if rv2.usedTentative() {
		t.Error("a final answer is tentative")
	}
}

// A delta pass asks the cache, then the directory, and nothing is tentative.
func TestResolverDeltaAsksTheCacheThenTheServer(t *testing.T) {
	ctx := context.Background()
	e := newResolverEnv(t)
	var asked []string
	server := func(_ context.Context, d string) (cache.Ref, bool, error) {
		asked = append(asked, d)
		if d == personDN("moved") {
			return cache.Ref{ID: e.ids["z"], Type: scim.UserType}, true, nil
		}
		return cache.Ref{}, false, nil
	}
	rv := newResolver(&e.ents, e.st, false, func() bool { return true }, server)
	e.read("c", "c")
	chunk := []string{personDN("c"), personDN("a"), personDN("moved"), personDN("gone")}
	pre, err := rv.prefetch(ctx, chunk, false)
	if err != nil || pre == nil {
		t.Fatalf("prefetch: %+v, %v", pre, err)
	}
	for i, want := range []string{"c", "a", "z", ""} {
		rv.begin()
		ref, ok, err := rv.dn(ctx, chunk[i], false, pre.at(i))
		e.want(t, chunk[i], ref, ok, err, want)
		if rv.usedTentative() {
			t.Errorf("%s is tentative in a delta pass", chunk[i])
		}
	}
	if len(asked) != 2 || asked[0] != personDN("moved") || asked[1] != personDN("gone") {
		t.Errorf("the directory was asked for %v, want the two DNs the cache does not know", asked)
	}
	ref, ok, err := rv.uid(ctx, "a", false)
	e.want(t, "a cached uid in a delta", ref, ok, err, "a")
	ref, ok, err = rv.uid(ctx, "nobody", false)
	e.want(t, "an unknown uid", ref, ok, err, "")
	if rv.stale() != nil {
		t.Error("a delta pass has stale references")
	}
}
