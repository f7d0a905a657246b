package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bind_password_file holds the password on its first line; the CR/LF that ends it and any
// later line are not part of it.
func TestBindPasswordFileFirstLine(t *testing.T) {
	for _, c := range []struct{ content, want, err string }{
		{content: "s3cret\n", want: "s3cret"},
		{content: "s3cret", want: "s3cret"},
		{content: "s3cret\r\n", want: "s3cret"},
		{content: "s3cret\nold-password-kept-for-rotation\n", want: "s3cret"},
		{content: " spaced pass \r\n# a comment\n", want: " spaced pass "},
		{content: "\ns3cret\n", err: "ldap.bind_password_file: the first line of secret file"},
	} {
		pw := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pw, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse([]byte(minimalLDAP(`bind_dn = "cn=r,dc=x"` + "\nbind_password_file = \"" + pw + "\"\n")))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%q: error %v, want one containing %q and not the file's contents", c.content, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.content, err)
		case cfg.LDAP.BindPassword.Reveal() != c.want:
			t.Errorf("%q: password %q, want %q", c.content, cfg.LDAP.BindPassword.Reveal(), c.want)
		}
	}
}

// minimalLDAP is a valid file whose [ldap] section also holds extra.
func minimalLDAP(extra string) string {
	return "[cache]\ndir = \"/tmp/x\"\n[ldap]\nurl = \"ldap://127.0.0.1:389\"\n" + extra +
		"[ldap.users]\nbase_dn = \"ou=people,dc=example,dc=com\"\n[ldap.groups]\nbase_dn = \"ou=groups,dc=example,dc=com\"\n"
}
