package ldapsync_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// env is one slapd, one cache and a Syncer over them.
type env struct {
	t     *testing.T
	sl    *testenv.Slapd
	store *cache.Store
	cfg   ldapsync.Config
	safe  ldapsync.SafetyConfig
	s     *ldapsync.Syncer
}

func testConfig(sl *testenv.Slapd) ldapsync.Config {
	c := ldapsync.DefaultConfig()
	c.URL = sl.URL
	c.BindDN = sl.RootDN
	c.BindPassword = confval.NewSecret(sl.RootPassword)
	c.Users.BaseDN = "ou=people," + sl.BaseDN
	c.Groups.BaseDN = "ou=groups," + sl.BaseDN
	c.Timeout = confval.Duration(10 * time.Second)
	return c
}

func openCacheForTest(t *testing.T) *cache.Store {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t *testing.T, opts testenv.SlapdOptions, tweak func(*ldapsync.Config, *ldapsync.SafetyConfig)) *env {
	t.Helper()
	sl := testenv.StartSlapd(t, opts)
	st := openCacheForTest(t)
	e := &env{t: t, sl: sl, store: st, cfg: testConfig(sl), safe: ldapsync.SafetyConfig{MaxDeletes: 1000, MaxDeletePercent: 100}}
	if tweak != nil {
		tweak(&e.cfg, &e.safe)
	}
	e.rebuild()
	return e
}

// rebuild makes the env's Syncer anew.
func (e *env) rebuild() {
	e.t.Helper()
	e.rebuildWith(ldapsync.Options{})
}

// rebuildWith makes the env's Syncer anew with opts (logging to testLogger unless opts.Log is set).
func (e *env) rebuildWith(opts ldapsync.Options) {
	e.t.Helper()
	if opts.Log == nil {
		opts.Log = testLogger(e.t)
	}
	s, err := ldapsync.New(e.cfg, e.safe, e.store, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("LDAPSCIM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *env) sync(full bool) ldapsync.Summary {
	e.t.Helper()
	run := e.s.SyncOnce
	if full {
		run = e.s.SyncFull
	}
	sum, err := run(context.Background())
	if err != nil {
		e.t.Fatalf("sync (full=%v): %v", full, err)
	}
	return sum
}

// byUserName returns the cached user with that userName, failing the test if there is none.

func (e *env) hasUser(userName string) bool {
	ids, err := e.store.Lookup(context.Background(), cache.IndexUserName, userName)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ids) > 0
}

// hasGroup reports whether the cache holds a group of that displayName.
func (e *env) hasGroup(name string) bool {
	return findOne(e.t, e.store, cache.IndexDisplayName, scim.GroupType, name) != nil
}

// memberNames returns the display names of a group's members, sorted.
func memberNames(r *scim.Resource) []string {
	var out []string
	for _, m := range r.Members {
		out = append(out, string(m.Type)+":"+m.Display)
	}
	slices.Sort(out)
	return out
}

// journal returns every journal record.
func (e *env) journal() []cache.JournalRecord {
	e.t.Helper()
	recs, err := e.store.Journal(context.Background(), 0, 1<<30)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func jsonOf(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// findOne returns the cached resource of typ whose index idx holds value, nil when there is
// none, and fails the test when there are several.
func findOne(t *testing.T, st *cache.Store, idx cache.Index, typ scim.ResourceType, value string) *scim.Resource {
	t.Helper()
	ids, err := st.Lookup(context.Background(), idx, value)
	if err != nil || len(ids) > 1 {
		t.Fatalf("%s %q: ids %v, err %v", idx, value, ids, err)
	}
	if len(ids) == 0 {
		return nil
	}
	r, err := st.Get(context.Background(), typ, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustFind is findOne for a resource that must exist.
func mustFind(t *testing.T, st *cache.Store, idx cache.Index, typ scim.ResourceType, value string) *scim.Resource {
	t.Helper()
	r := findOne(t, st, idx, typ, value)
	if r == nil {
		t.Fatalf("%s %q is not in the cache", idx, value)
	}
	return r
}

func countOf(t *testing.T, st *cache.Store, typ scim.ResourceType) int {
	t.Helper()
	n, err := st.Count(context.Background(), typ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) user(userName string) *scim.Resource {
	e.t.Helper()
	return mustFind(e.t, e.store, cache.IndexUserName, scim.UserType, userName)
}

func (e *env) group(name string) *scim.Resource {
	e.t.Helper()
	return mustFind(e.t, e.store, cache.IndexDisplayName, scim.GroupType, name)
}

func (e *env) count(typ scim.ResourceType) int { e.t.Helper(); return countOf(e.t, e.store, typ) }
