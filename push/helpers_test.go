package push_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
)

// env is a real slapd synced into a real cache, pushed to a real SCIMMY target.
type env struct {
	t      *testing.T
	sl     *testenv.Slapd
	store  *cache.Store
	sync   *ldapsync.Syncer
	target *testenv.Scimmy
}

const base = "dc=example,dc=com"

// userLDIF is an inetOrgPerson under ou=people.
func userLDIF(uid, given, sn, dept, manager string) string {
	s := fmt.Sprintf(`dn: uid=%s,ou=people,%s
objectClass: inetOrgPerson
uid: %s
givenName: %s
sn: %s
cn: %s %s
displayName: %s %s
mail: %s@example.com
employeeNumber: E-%s
departmentNumber: %s
title: Engineer
`, uid, base, uid, given, sn, given, sn, given, sn, uid, uid, dept)
	if manager != "" {
		s += fmt.Sprintf("manager: uid=%s,ou=people,%s\n", manager, base)
	}
	return s + "\n"
}

func groupLDIF(cn string, uids ...string) string {
	s := fmt.Sprintf("dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n", cn, base, cn)
	for _, u := range uids {
		s += fmt.Sprintf("member: uid=%s,ou=people,%s\n", u, base)
	}
	return s + "\n"
}

func newEnv(t *testing.T, ldif string) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.ldif")
	head := fmt.Sprintf("dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\ndn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n", base, base)
	if err := os.WriteFile(path, []byte(head+ldif), 0o600); err != nil {
		t.Fatal(err)
	}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{path}})
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := ldapsync.DefaultConfig()
	cfg.URL, cfg.BindDN, cfg.BindPassword = sl.URL, sl.RootDN, confval.NewSecret(sl.RootPassword)
	cfg.Users.BaseDN, cfg.Groups.BaseDN = "ou=people,"+base, "ou=groups,"+base
	cfg.Timeout = confval.Duration(20 * time.Second)
	s, err := ldapsync.New(cfg, ldapsync.SafetyConfig{MaxDeletes: 100000, MaxDeletePercent: 100}, st, ldapsync.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sl: sl, store: st, sync: s, target: testenv.StartScimmy(t)}
	e.pass()
	return e
}

func (e *env) pass() {
	e.t.Helper()
	if _, err := e.sync.SyncFull(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// targetConfig is a fast-retrying target for tests; mod adjusts it before Prepare.
func (e *env) targetConfig(url string, mod func(*push.TargetConfig)) push.TargetConfig {
	e.t.Helper()
	tc := push.TargetConfig{Name: "scimmy", URL: url, Token: confval.NewSecret(e.target.Token), Groups: true,
		RetryPolicy: push.RetryPolicy{BackoffBase: confval.Duration(20 * time.Millisecond), BackoffMax: confval.Duration(200 * time.Millisecond)},
		Timeout:     confval.Duration(5 * time.Second), PollInterval: confval.Duration(50 * time.Millisecond)}
	if mod != nil {
		mod(&tc)
	}
	if errs := push.Prepare([]push.TargetConfig{tc}, nil); len(errs) > 0 {
		e.t.Fatal(errs)
	}
	// Prepare works on the slice element; do it again on the copy we return.
	list := []push.TargetConfig{tc}
	push.Prepare(list, nil)
	return list[0]
}

// drain pushes until the target's (or webhook's) cursor reaches the journal head.
func drain(t *testing.T, tg interface {
	PushOnce(context.Context) (int, error)
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		n, err := tg.PushOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// users returns the target's users by userName (lower-cased) and fails on duplicates.
func users(t *testing.T, s *testenv.Scimmy) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, u := range s.State(t).Users {
		name := strings.ToLower(fmt.Sprint(u["userName"]))
		if _, dup := out[name]; dup {
			t.Fatalf("duplicate user %q at the target", name)
		}
		out[name] = u
	}
	return out
}

func groups(t *testing.T, s *testenv.Scimmy) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, g := range s.State(t).Groups {
		out[fmt.Sprint(g["displayName"])] = g
	}
	return out
}

// memberNames returns the userNames of a target group's members, sorted, and fails on a
// member listed twice.
func memberNames(t *testing.T, s *testenv.Scimmy, g map[string]any) []string {
	t.Helper()
	byID := map[string]string{}
	for _, u := range s.State(t).Users {
		byID[fmt.Sprint(u["id"])] = fmt.Sprint(u["userName"])
	}
	var names []string
	seen := map[string]bool{}
	list, _ := g["members"].([]any)
	for _, m := range list {
		id := fmt.Sprint(m.(map[string]any)["value"])
		if seen[id] {
			t.Fatalf("group %v lists member %s twice", g["displayName"], id)
		}
		seen[id] = true
		names = append(names, byID[id])
	}
	sortStrings(names)
	return names
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func enterprise(u map[string]any) map[string]any {
	m, _ := u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	return m
}
