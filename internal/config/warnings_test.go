package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Settings that work but weaken security are warned about by key, never with the secret.
func TestWarnings(t *testing.T) {
	const secret = "inline-s3cret-77"
	for _, c := range []struct {
		name, ldap string
		mode       os.FileMode
		want       []string // substrings, one warning each; none when empty
	}{
		{"inline password, world-readable", `bind_dn = "cn=r,dc=x"` + "\nbind_password = \"" + secret + "\"\n", 0o644,
			[]string{"is readable by every local user and holds ldap.bind_password inline"}},
		{"inline password, private file", `bind_dn = "cn=r,dc=x"` + "\nbind_password = \"" + secret + "\"\n", 0o600, nil},
		{"no inline secret, world-readable", "", 0o644, nil},
		{"simple bind in clear text", `url = "ldap://dc1.example.com:389"` + "\n" + `bind_dn = "cn=r,dc=x"` + "\nbind_password = \"" + secret + "\"\n", 0o600,
			[]string{`ldap: simple bind as "cn=r,dc=x" over ldap:// without start_tls`}},
		{"simple bind with StartTLS", `url = "ldap://dc1.example.com:389"` + "\nstart_tls = true\n" + `bind_dn = "cn=r,dc=x"` + "\nbind_password = \"" + secret + "\"\n", 0o600, nil},
		{"simple bind over ldaps", `url = "ldaps://dc1.example.com"` + "\n" + `bind_dn = "cn=r,dc=x"` + "\nbind_password = \"" + secret + "\"\n", 0o600, nil},
		{"anonymous in clear text", `url = "ldap://dc1.example.com:389"` + "\n", 0o644, nil},
		{"certificate not verified", `url = "ldaps://dc1.example.com"` + "\ninsecure_skip_verify = true\n", 0o600,
			[]string{"ldap.insecure_skip_verify: the server certificate is not verified"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.toml")
			raw := "[cache]\ndir = \"/tmp/x\"\n[ldap]\n" + c.ldap
			if !strings.Contains(c.ldap, "url =") {
				raw += "url = \"ldap://127.0.0.1:389\"\n"
			}
			raw += "[ldap.users]\nbase_dn = \"dc=x\"\n[ldap.groups]\nbase_dn = \"dc=x\"\n"
			if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil { // whatever the umask
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Warnings()
			if len(got) != len(c.want) {
				t.Fatalf("warnings %q, want %d", got, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q does not contain %q", got[i], w)
				}
				if strings.Contains(got[i], secret) {
					t.Errorf("warning %q quotes the secret", got[i])
				}
			}
		})
	}
}

func TestWarningsOfTargets(t *testing.T) {
	raw := minimalLDAP("") + "[[targets]]\nname = \"okta\"\nurl = \"https://okta.example.com/scim/v2\"\ntoken = \"tok-123456\"\ntls_insecure_skip_verify = true\n"
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(raw), 0o600)
	os.Chmod(path, 0o604)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(cfg.Warnings(), "\n")
	if !strings.Contains(w, "holds targets[0].token inline") || !strings.Contains(w, "targets[0] (okta).tls_insecure_skip_verify") || strings.Contains(w, "tok-123456") {
		t.Fatalf("warnings:\n%s", w)
	}
}
