package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secretURLs = `[cache]
dir = "/tmp/x"
[ldap]
url = "ldaps://ldap.example.com:636"
[ldap.users]
base_dn = "dc=x"
[ldap.groups]
base_dn = "dc=x"
[[targets]]
name = "okta"
url = "https://example.okta.com/scim/v2?api_key=s3cret-query"
token_url = "https://login.example.com/oauth2/token?client_assertion=s3cret-token"
client_id = "ldapscim"
client_secret = "s3cret-client"
[[webhooks]]
name = "ops-chat"
url = "https://hooks.slack.com/services/T000/B000/s3cret-path"
format = "slack"
`

// check-config's output and any marshalled config show no secret of a URL.
func TestPrintRedactsURLs(t *testing.T) {
	f, err := Parse([]byte(secretURLs))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := f.Print(&b); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(f.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"Print": b.String(), "json of Redacted": string(j)} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows a secret:\n%s", what, out)
		}
	}
	for _, want := range []string{`"https://hooks.slack.com/…"`, `"https://example.okta.com/scim/v2?api_key=xxxxx"`,
		`"https://login.example.com/oauth2/token?client_assertion=xxxxx"`, `"ldaps://ldap.example.com:636"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Print lacks %s:\n%s", want, b.String())
		}
	}
	// Redacted is a copy: the workers still get the real URLs.
	if f.Webhooks[0].URL != "https://hooks.slack.com/services/T000/B000/s3cret-path" ||
		!strings.Contains(f.Targets[0].TokenURL, "s3cret-token") {
		t.Fatal("Print or Redacted changed the configuration")
	}
}

// Credentials in a URL are an error that names neither them nor the URL's secret parts.
func TestCredentialsInURLsRejected(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{`url = "ldaps://ldap.example.com:636"`, `url = "ldap://cn=admin:s3cret-pw@ldap.example.com"`},
		{`url = "ldaps://ldap.example.com:636"`, `url = "ldap://admin:s3cret/pw@ldap.example.com"`},
		{`url = "https://example.okta.com/scim/v2?api_key=s3cret-query"`, `url = "https://u:s3cret-pw@example.okta.com/scim/v2"`},
		{`url = "https://hooks.slack.com/services/T000/B000/s3cret-path"`, `url = "hxxps://hooks.slack.com/services/T000/B000/s3cret-path"`},
	} {
		raw := strings.Replace(secretURLs, c.from, c.to, 1)
		_, err := Parse([]byte(raw))
		if err == nil {
			t.Errorf("%s: no error", c.to)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows a secret:\n%v", c.to, err)
		}
		if strings.HasPrefix(c.to, `url = "ldap`) && !strings.Contains(err.Error(), "bind_password_file") {
			t.Errorf("%s: the error does not say what to use instead:\n%v", c.to, err)
		}
	}
}

// [ha]'s etcd password, read from password_file, prints as <secret>; the node defaults to the
// host name.
func TestHAPasswordRedacted(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "etcd-password")
	if err := os.WriteFile(pw, []byte("s3cret-etcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := strings.Replace(secretURLs, "[[targets]]", `[ha]
etcd_endpoints = ["https://etcd-1.example.com:2379", "https://etcd-2.example.com:2379"]
lease_ttl = "4s"
username = "ldapscim"
password_file = "`+pw+`"
[[targets]]`, 1)
	f, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if f.HA.Password.Reveal() != "s3cret-etcd" || f.HA.Election != "/ldapscim/pusher" || f.HA.LeaseTTL.D() != 4*time.Second {
		t.Fatalf("ha = %+v", f.HA)
	}
	if host, _ := os.Hostname(); f.HA.Node != host {
		t.Errorf("node = %q, want the host name %q", f.HA.Node, host)
	}
	var b bytes.Buffer
	if err := f.Print(&b); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(f.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"Print": b.String(), "json of Redacted": string(j)} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows the etcd password:\n%s", what, out)
		}
	}
	if !strings.Contains(b.String(), `password = "<secret>"`) || !strings.Contains(b.String(), `password_file = "`+pw+`"`) {
		t.Errorf("Print does not show the password as <secret>:\n%s", b.String())
	}
}
