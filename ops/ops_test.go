package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
)

func directory(t *testing.T, n int) string {
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=u%02d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%02d\ncn: User %02d\nsn: %02d\n\n", i, i, i, i)
	}
	b.WriteString("dn: cn=staff,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: staff\n")
	for i := range n {
		fmt.Fprintf(&b, "member: uid=u%02d,ou=people,dc=example,dc=com\n", i)
	}
	p := filepath.Join(t.TempDir(), "dir.ldif")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLocalAndRemoteAgree runs every operation twice against one real cache and slapd: on
// ops.Local directly, and through the admin server and admin.Client over real HTTP. Both
// must give the same values and the same error codes, so a CLI command prints the same
// whether serve runs or not.
func TestLocalAndRemoteAgree(t *testing.T) {
	ctx := context.Background()
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{directory(t, 10)}})
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := ldapsync.DefaultConfig()
	cfg.URL, cfg.BindDN, cfg.BindPassword = sl.URL, sl.RootDN, confval.NewSecret(sl.RootPassword)
	cfg.Users.BaseDN, cfg.Groups.BaseDN = "ou=people,"+sl.BaseDN, "ou=groups,"+sl.BaseDN
	cfg.Timeout = confval.Duration(10 * time.Second)
	local, err := ops.NewLocal(ops.LocalOptions{LDAP: cfg, Safety: ldapsync.SafetyConfig{MaxDeletes: 1, MaxDeletePercent: 100},
		Rules: []ldapsync.RuleConfig{{Name: "everyone", When: `userName sw "u"`, Roles: []string{"staff"}}},
		Store: st, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	acfg := admin.DefaultConfig()
	if errs := append(acfg.ResolveToken(), acfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(admin.New(admin.Options{Config: acfg, Store: st, Ops: local, CacheDir: "/c"}))
	t.Cleanup(srv.Close)
	remote := admin.NewClient(strings.TrimPrefix(srv.URL, "http://"), "")
	both := []struct {
		name string
		o    ops.Operations
	}{{"local", local}, {"remote", remote}}

	// same calls op on both and requires equal JSON and equal error codes and texts.
	same := func(what string, op func(o ops.Operations) (any, error), clean func(any)) any {
		t.Helper()
		var got [2][]byte
		var errs [2]error
		var vals [2]any
		for i, b := range both {
			v, err := op(b.o)
			if clean != nil && v != nil {
				clean(v)
			}
			vals[i], errs[i] = v, err
			got[i], _ = json.Marshal(v)
		}
		if ops.CodeOf(errs[0]) != ops.CodeOf(errs[1]) || fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
			t.Fatalf("%s: local error %v (code %d), remote %v (code %d)", what, errs[0], ops.CodeOf(errs[0]), errs[1], ops.CodeOf(errs[1]))
		}
		if string(got[0]) != string(got[1]) {
			t.Fatalf("%s differs:\nlocal  %s\nremote %s", what, got[0], got[1])
		}
		return vals[0]
	}

	if sum, err := local.Sync(ctx, true); err != nil || sum.Created != 11 {
		t.Fatalf("first pass: %+v %v", sum, err)
	}
	if sum, err := remote.Sync(ctx, false); err != nil || sum.Pass == "" || sum.Created != 0 {
		t.Fatalf("a delta pass through the admin API: %+v %v", sum, err)
	}
	for _, u := range []string{"u07", "u08", "u09"} {
		sl.Modify(t, "dn: uid="+u+",ou=people,dc=example,dc=com\nchangetype: delete\n")
	}
	noTimes := func(v any) {
		p := v.(*ops.Plan)
		p.Summary.Pass, p.Summary.Duration = "", 0
	}
	plan := same("plan", func(o ops.Operations) (any, error) { return o.Plan(ctx, ops.PlanRequest{Full: true}) }, noTimes).(*ops.Plan)
	if len(plan.Changes) != 3 {
		t.Fatalf("plan: want 3 held deletions, got %+v", plan.Changes)
	}
	same("plan of an unknown target", func(o ops.Operations) (any, error) {
		return o.Plan(ctx, ops.PlanRequest{Target: "nope"})
	}, nil)
	if sum, err := remote.Sync(ctx, true); err != nil || sum.Held != 3 {
		t.Fatalf("full pass through the admin API: %+v %v", sum, err)
	}
	holds := same("holds", func(o ops.Operations) (any, error) { return o.Holds(ctx) }, nil).([]cache.Hold)
	if len(holds) != 3 {
		t.Fatalf("holds: %+v", holds)
	}
	ex := same("explain", func(o ops.Operations) (any, error) { return o.Explain(ctx, "u01") }, nil).(*ops.Explanation)
	if ex.UserName != "u01" || len(ex.Groups) != 1 || len(ex.Rules) != 1 || !ex.Rules[0].Matched {
		t.Fatalf("explain: %+v", ex)
	}
	same("explain by id", func(o ops.Operations) (any, error) { return o.Explain(ctx, ex.ID) }, nil)
	same("explain of nobody", func(o ops.Operations) (any, error) { return o.Explain(ctx, "nobody") }, nil)
	if _, err := remote.Explain(ctx, "nobody"); ops.CodeOf(err) != ops.Invalid {
		t.Fatalf("explain of nobody: %v, want an Invalid refusal", err)
	}
	same("audit", func(o ops.Operations) (any, error) { return o.Audit(ctx, ex.ID) }, nil)
	same("audit of an unknown id", func(o ops.Operations) (any, error) { return o.Audit(ctx, "nobody") }, nil)
	same("dead letters of an unknown target", func(o ops.Operations) (any, error) { return o.DeadLetters(ctx, "okta") }, nil)
	same("replay of an unknown target", func(o ops.Operations) (any, error) { return o.ReplayDeadLetters(ctx, "okta", nil) }, nil)
	same("skip of an unknown target", func(o ops.Operations) (any, error) { return o.SkipDeadLetters(ctx, "okta", nil) }, nil)
	same("targets status", func(o ops.Operations) (any, error) { return o.TargetsStatus(ctx) }, nil)
	same("reconcile of an unknown target", func(o ops.Operations) (any, error) {
		return o.Reconcile(ctx, ops.ReconcileRequest{Target: "okta", Apply: true})
	}, nil)

	// Approving: an id that is not held changes nothing on either path.
	for _, b := range both {
		_, err := b.o.ApproveHolds(ctx, []string{holds[0].ID, "no-such-id"})
		if ops.CodeOf(err) != ops.NotFound || !strings.Contains(err.Error(), "not held: no-such-id") {
			t.Fatalf("%s: approving an id that is not held: %v", b.name, err)
		}
	}
	if left, _ := local.Holds(ctx); len(left) != 3 {
		t.Fatalf("a refused approval applied something: %d holds left", len(left))
	}
	r1, err := remote.ApproveHolds(ctx, []string{holds[0].ID})
	if err != nil || r1.Deleted != 1 {
		t.Fatalf("approve one remotely: %+v %v", r1, err)
	}
	r2, err := local.ApproveHolds(ctx, nil)
	if err != nil || r2.Deleted != 2 {
		t.Fatalf("approve the rest locally: %+v %v", r2, err)
	}
	if !reflect.DeepEqual(same("holds after approval", func(o ops.Operations) (any, error) { return o.Holds(ctx) }, nil), []cache.Hold{}) {
		t.Fatal("holds left after approving all")
	}
}
