package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// Add applies an LDIF string online as the rootdn with `ldapmodify -a`: records without a
// changetype are adds, records with one (modify, delete, modrdn) do what they say.
func (s *Slapd) Add(t testing.TB, ldif string) {
	t.Helper()
	s.ldapmodify(t, ldif, "-a")
}

// Modify applies an LDIF string online as the rootdn with ldapmodify semantics: every record
// needs a changetype, or is a modify by default.
func (s *Slapd) Modify(t testing.TB, ldif string) {
	t.Helper()
	s.ldapmodify(t, ldif)
}

func (s *Slapd) ldapmodify(t testing.TB, ldif string, extra ...string) {
	t.Helper()
	bin, err := findTool("ldapmodify")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	args := append([]string{"-x", "-H", s.URL, "-D", s.RootDN, "-w", s.RootPassword}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: ldapmodify: %v\n%s", err, out)
	}
}
