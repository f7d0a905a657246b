package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-config and the start of every command that opens the cache warn about a
// world-readable config with an inline password, a bind in clear text and an unverified
// certificate, without printing the password.
func TestConfigWarnings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	raw := fmt.Sprintf(`[cache]
dir = %q
[ldap]
url = "ldap://dc1.example.com:389"
bind_dn = "cn=reader,dc=example,dc=com"
bind_password = "inline-pw-4242"
ca_file = ""
insecure_skip_verify = true
[ldap.users]
base_dn = "ou=people,dc=example,dc=com"
[ldap.groups]
base_dn = "ou=groups,dc=example,dc=com"
`, filepath.Join(dir, "cache"))
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	wants := []string{"readable by every local user and holds ldap.bind_password inline",
		"over ldap:// without start_tls", "ldap.insecure_skip_verify"}

	out, _, err := runCLI(t, "check-config", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wants {
		if !strings.Contains(out, "# WARNING: ") || !strings.Contains(out, w) {
			t.Errorf("check-config does not warn %q:\n%s", w, out)
		}
	}
	var stderr strings.Builder
	_, _, st, err := setup(path, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, w := range wants {
		if !strings.Contains(stderr.String(), "level=WARN") || !strings.Contains(stderr.String(), w) {
			t.Errorf("start-up does not warn %q:\n%s", w, stderr.String())
		}
	}
	if strings.Contains(out+stderr.String(), "inline-pw-4242") {
		t.Error("a warning prints the password")
	}
}
