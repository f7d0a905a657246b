package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
)

var update = flag.Bool("update", false, "rewrite golden files")

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// golden compares got (ids masked) with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = uuidRE.ReplaceAllString(got, "<id>")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

const rulesTOML = `
[[targets]]
name = "app"
url = "http://127.0.0.1:9/scim/v2"
token = "never-used"
scope = 'department eq "Engineering"'
groups = true
[[rules]]
name = "engineering"
when = 'department eq "Engineering"'
roles = ["engineer"]
groups = ["Engineering (all)"]
[[rules]]
name = "managers"
when = 'title co "Manager" and active eq true'
roles = ["manager"]
`

// cacheState is what a plan must not change.
func cacheState(t *testing.T, cfgPath string) (uint64, []byte) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(cfgPath), "cache")
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	head, err := st.JournalHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wm, err := st.Watermark(context.Background(), ldapsync.Source)
	if err != nil {
		t.Fatal(err)
	}
	return head, wm
}

// planChanges makes the directory changes the golden plans show.
func planChanges(t *testing.T, sl *testenv.Slapd) {
	t.Helper()
	sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Engineering Manager

dn: uid=bob,ou=people,dc=example,dc=com
changetype: modify
add: pwdAccountLockedTime
pwdAccountLockedTime: 000001010000Z

dn: uid=carl,ou=people,dc=example,dc=com
changetype: delete
`)
	sl.Add(t, `dn: uid=dora,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dora
cn: Dora Diaz
sn: Diaz
departmentNumber: Engineering
manager: uid=ann,ou=people,dc=example,dc=com
`)
}

func TestPlanAndExplainGolden(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{"../../ldapsync/testdata/small.ldif"}})
	cfg := writeConfig(t, sl, t.TempDir(), rulesTOML)
	if _, _, err := runCLI(t, "sync", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	planChanges(t, sl)
	head, wm := cacheState(t, cfg)
	for _, full := range []bool{false, true} {
		args := []string{"plan", "--config", cfg}
		name := "plan-delta.golden"
		if full {
			args, name = append(args, "--full"), "plan-full.golden"
		}
		out, _, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		golden(t, name, out)
	}
	if h, w := cacheState(t, cfg); h != head || !bytes.Equal(w, wm) {
		t.Fatalf("plan wrote to the cache: journal head %d -> %d", head, h)
	}
	out, _, err := runCLI(t, "plan", "--config", cfg, "--json")
	if err != nil || !strings.Contains(out, `"action": "deactivate"`) {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}

	// The plan was right: the pass it planned does exactly that.
	out, _, err = runCLI(t, "sync", "--config", cfg)
	if err != nil || !strings.Contains(out, "created 1, updated 4, deactivated 1, deleted 1") {
		t.Fatalf("sync after plan: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "explain", "--config", cfg, "ann")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "explain-ann.golden", out)
	if _, _, err := runCLI(t, "explain", "--config", cfg, "nobody"); err == nil || !strings.Contains(err.Error(), `no user with id or userName "nobody"`) {
		t.Fatalf("explain of an unknown user: %v", err)
	}
}

// While serve runs it holds the cache; plan and explain then ask it through the admin API and
// print exactly what they print on their own.
func TestPlanAndExplainThroughServe(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{"../../ldapsync/testdata/small.ldif"}})
	addr := freeAddr(t)
	cfg := writeConfig(t, sl, t.TempDir(), rulesTOML+fmt.Sprintf("[schedule]\ndelta = \"@every 1h\"\nfull = \"\"\n[admin]\nlisten = %q\n", addr))
	_, stderr := startServe(t, cfg)
	waitReadyz(t, "http://"+addr, stderr)
	planChanges(t, sl)

	out, _, err := runCLI(t, "plan", "--config", cfg)
	if err != nil {
		t.Fatalf("plan through serve: %v\n%s\nserve:\n%s", err, out, stderr.String())
	}
	golden(t, "plan-delta.golden", out)
	if _, _, err := runCLI(t, "plan", "--config", cfg, "--target", "nope"); err == nil ||
		!strings.Contains(err.Error(), `plan: no [[targets]] entry is named "nope"`) || exitCode(err) != 2 {
		t.Fatalf("plan of an unknown target through serve: %v", err)
	}
	out, _, err = runCLI(t, "sync", "--config", cfg)
	if err != nil || !strings.Contains(out, "created 1, updated 4, deactivated 1, deleted 1") {
		t.Fatalf("sync after plan: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "explain", "--config", cfg, "ann")
	if err != nil {
		t.Fatalf("explain through serve: %v\n%s", err, out)
	}
	golden(t, "explain-ann.golden", out)
	if _, _, err := runCLI(t, "explain", "--config", cfg, "nobody"); err == nil || !strings.Contains(err.Error(), `no user with id or userName "nobody"`) {
		t.Fatalf("explain of an unknown user through serve: %v", err)
	}
}
