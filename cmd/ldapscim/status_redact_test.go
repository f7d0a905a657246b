package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
)

// The status data serve gives the admin /status page and the status file (the directory's
// endpoint, each target's and webhook's status) shows no secret of a configured URL.
func TestStatusDataRedactsURLs(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`[cache]
dir = "` + filepath.Join(dir, "cache") + `"
[ldap]
url = "ldap://127.0.0.1:1/?mail?sub?(token=s3cret-ldap)"
[ldap.users]
base_dn = "dc=x"
[ldap.groups]
base_dn = "dc=x"
[[targets]]
name = "okta"
url = "https://example.okta.com/scim/v2?api_key=s3cret-query"
token = "s3cret-token"
[[webhooks]]
name = "ops-chat"
url = "https://hooks.slack.com/services/T000/B000/s3cret-path"
format = "slack"
[[webhooks]]
name = "events"
url = "https://hooks.example.com/in/s3cret-path2?sig=s3cret-sig"
secret = "s3cret-hmac"
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := cache.Open(cache.Options{Dir: cfg.Cache.Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := ldapsync.New(cfg.LDAP, cfg.Safety, st, ldapsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	statuses := push.New(cfg.Targets, cfg.Webhooks, st, push.Options{}).Status(context.Background())
	b, err := json.Marshal(map[string]any{"source": s.Endpoint(), "push": statuses})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") {
		t.Fatalf("the status data shows a secret:\n%s", b)
	}
	for _, want := range []string{`"https://example.okta.com/scim/v2?api_key=xxxxx"`, `"https://hooks.example.com/…"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the status data lacks %s:\n%s", want, b)
		}
	}
}
