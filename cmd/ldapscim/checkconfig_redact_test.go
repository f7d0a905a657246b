package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-config prints no secret of a URL: not the path of a chat webhook, not query values,
// and an ldap:// URL with credentials is an error that does not repeat them.
func TestCheckConfigRedactsURLs(t *testing.T) {
	dir := t.TempDir()
	base := "[cache]\ndir = \"/tmp/x\"\n[ldap]\nurl = %s\n[ldap.users]\nbase_dn = \"dc=x\"\n[ldap.groups]\nbase_dn = \"dc=x\"\n"
	write := func(name, ldapURL, extra string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Replace(base, "%s", ldapURL, 1)+extra), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", `"ldap://ldap.example.com"`, `[[targets]]
name = "okta"
url = "https://example.okta.com/scim/v2?api_key=s3cret-query"
token_url = "https://login.example.com/oauth2/token?code=s3cret-token"
client_id = "ldapscim"
client_secret = "s3cret-client"
[[webhooks]]
name = "ops-chat"
url = "https://hooks.slack.com/services/T000/B000/s3cret-path"
format = "slack"
`)
	out, errOut, err := runCLI(t, "check-config", "--config", good)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, errOut)
	}
	if strings.Contains(out+errOut, "s3cret") {
		t.Fatalf("check-config shows a secret:\n%s%s", out, errOut)
	}
	if !strings.Contains(out, `url = "https://hooks.slack.com/…"`) {
		t.Errorf("the webhook URL is not shown redacted:\n%s", out)
	}
	bad := write("bad.toml", `"ldap://cn=admin:s3cret-pw@ldap.example.com"`, "")
	out, errOut, err = runCLI(t, "check-config", "--config", bad)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("credentials in the ldap url: err %v, exit %d; want a config error", err, exitCode(err))
	}
	if msg := out + errOut + err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, "bind_password_file") {
		t.Fatalf("want an error naming bind_password_file and no secret:\n%s", msg)
	}
}
