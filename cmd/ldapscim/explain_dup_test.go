package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/internal/testenv"
)

// Two entries with uid ann: sync warns, and explain of "ann" says the name is ambiguous and
// lists both ids instead of claiming there is no such user.
func TestExplainAmbiguousUserName(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{"../../ldapsync/testdata/small.ldif"}})
	sl.Add(t, `dn: cn=Ann Other,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: ann
cn: Ann Other
sn: Other
`)
	cfg := writeConfig(t, sl, t.TempDir(), "")
	_, stderr, err := runCLI(t, "sync", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "share their userName") || !strings.Contains(stderr, "sample=[ann]") {
		t.Errorf("sync did not warn about the duplicate userName:\n%s", stderr)
	}
	_, _, err = runCLI(t, "explain", "--config", cfg, "ann")
	if err == nil || !strings.Contains(err.Error(), `ambiguous userName "ann": 2 users hold it (ids `) {
		t.Fatalf("explain of a duplicate userName: %v", err)
	}
	// Each of them can still be explained by id.
	id := strings.TrimSuffix(strings.Split(strings.SplitN(err.Error(), "(ids ", 2)[1], ", ")[0], ")")
	out, _, err := runCLI(t, "explain", "--config", cfg, id)
	if err != nil || !strings.Contains(out, "(id "+id+")") {
		t.Fatalf("explain by id %s: %v\n%s", id, err, out)
	}
}

// Through a running serve's admin API the ambiguity is the caller's mistake too (400, exit 2).
func TestExplainAmbiguousUserNameThroughServe(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{"../../ldapsync/testdata/small.ldif"}})
	sl.Add(t, "dn: cn=Ann Other,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann Other\nsn: Other\n")
	addr := freeAddr(t)
	cfg := writeConfig(t, sl, t.TempDir(), fmt.Sprintf("[schedule]\ndelta = \"@every 1h\"\nfull = \"\"\n[admin]\nlisten = %q\n", addr))
	_, stderr := startServe(t, cfg)
	waitReadyz(t, "http://"+addr, stderr)
	_, _, err := runCLI(t, "explain", "--config", cfg, "ann")
	if err == nil || !strings.Contains(err.Error(), `ambiguous userName "ann": 2 users hold it`) || exitCode(err) != 2 {
		t.Fatalf("explain of a duplicate userName through serve: %v (exit %d)", err, exitCode(err))
	}
}
