package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// evil is a directory value that, printed raw, clears the screen, forges a row of the list
// and reverses the text after it.
const evil = "Mallory\x1b[2J\r\nFAKE ROW\u202eevil\u009b"

// checkEscaped fails unless out shows evil only in its escaped form.
func checkEscaped(t *testing.T, what, out string) {
	t.Helper()
	for _, raw := range []string{"\x1b", "\r", "\u202e", "\u009b"} {
		if strings.Contains(out, raw) {
			t.Errorf("%s prints %q raw:\n%s", what, raw, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "FAKE ROW") {
			t.Errorf("%s lets a value forge a line:\n%s", what, out)
		}
	}
	if !strings.Contains(out, `Mallory\x1b[2J\r\nFAKE ROW\u202eevil\u009b`) {
		t.Errorf("%s does not show the escaped value:\n%s", what, out)
	}
}

// evilCache writes a cache with a user and a held deletion named evil and returns the path of
// a config for it (no directory is contacted, no admin server is asked).
func evilCache(t *testing.T) (cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	st, err := cache.Open(cache.Options{Dir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	holds := []cache.Hold{{ID: "h1", Type: scim.UserType, Name: evil, DN: "cn=" + evil + ",dc=x", Pass: "p1",
		Reason: "missing from the directory", HeldAt: time.Unix(0, 0).UTC()}}
	u := &scim.Resource{Type: scim.UserType, ID: "u1", DN: "cn=" + evil + ",dc=x",
		Attributes: map[string]any{"userName": "mallory", "displayName": evil, "active": true}}
	if _, err := st.Apply(context.Background(), cache.Batch{Pass: "p1", Upserts: []*scim.Resource{u}, Holds: &holds}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("[cache]\ndir = %q\n[admin]\nlisten = \"\"\n[ldap]\nurl = \"ldap://127.0.0.1:1\"\n"+
		"[ldap.users]\nbase_dn = \"dc=x\"\n[ldap.groups]\nbase_dn = \"dc=x\"\n", filepath.Join(dir, "cache"))
	cfgPath = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

func TestCommandsEscapeDirectoryValues(t *testing.T) {
	cfg := evilCache(t)
	out, _, err := runCLI(t, "deletes", "list", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkEscaped(t, "deletes list", out)
	out, _, err = runCLI(t, "explain", "--config", cfg, "u1")
	if err != nil {
		t.Fatal(err)
	}
	checkEscaped(t, "explain", out)
}

func TestPrintersEscapeValues(t *testing.T) {
	var b bytes.Buffer
	printHolds(&b, []cache.Hold{{ID: "h1", Type: scim.UserType, Name: evil, DN: "cn=x", Reason: evil}}, "c.toml")
	checkEscaped(t, "deletes list", b.String())

	b.Reset()
	printPlan(&b, &ldapsync.PlanReport{Changes: []ldapsync.PlanEntry{{Action: ldapsync.PlanUpdate, Type: scim.UserType,
		Name: evil, DN: "cn=" + evil, Why: "changed in the directory",
		Diff: []ldapsync.AttrDiff{{Attr: "displayName", Old: "Mallory", New: evil}}}}})
	checkEscaped(t, "plan", b.String())
	if strings.Count(b.String(), `\u202e`) != 3 {
		t.Errorf("plan: want name, DN and the diff's new value escaped:\n%s", b.String())
	}

	b.Reset()
	printTargetPlans(&b, []ops.TargetPlan{{Target: "okta", Changes: []push.PlanChange{{Action: "update", Type: scim.UserType,
		Name: evil, Why: "changed", Attrs: []string{"displayName"}}}}}, false)
	checkEscaped(t, "plan (targets)", b.String())

	b.Reset()
	printExplanation(&b, &ops.Explanation{ID: "u1", UserName: evil, DN: "cn=x", ExternalID: evil,
		Attributes: map[string]any{"displayName": evil}, Rules: []ldapsync.RuleResult{{Name: "r", Matched: true,
			Groups: []string{evil}, Terms: []ldapsync.TermResult{{Expr: `displayName co "x"`, Actual: evil}}}},
		Groups: []cache.Ref{{ID: "g1", Display: evil}}, Targets: []ops.ScopeVerdict{{Target: "okta", Why: evil}}})
	checkEscaped(t, "explain", b.String())

	b.Reset()
	if err := printAudit(&b, "u1", &ops.AuditHistory{
		Sync: []cache.AuditRecord{{Seq: 1, Pass: evil, Op: "update", Diff: []cache.AttrChange{{Path: "displayName"}}}},
		Push: []cache.PushAudit{{Target: "okta", Op: "update", Method: "PUT", Status: 500, Error: evil}}}); err != nil {
		t.Fatal(err)
	}
	checkEscaped(t, "audit", b.String())

	b.Reset()
	printStatus(&b, []push.Status{{Name: "okta", Kind: "target", LastError: "500: " + evil, Quarantined: true, QuarantineReason: evil}})
	checkEscaped(t, "targets status", b.String())

	b.Reset()
	printDeadLetters(&b, []cache.DeadLetter{{ID: "u1", Type: scim.UserType, Op: "update", Error: evil, Body: evil}})
	checkEscaped(t, "targets deadletters list", b.String())
}
