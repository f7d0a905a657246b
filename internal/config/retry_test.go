package config

import (
	"bytes"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

const retryBase = `[cache]
dir = "/tmp/x"
[ldap]
url = "ldap://127.0.0.1:389"
[ldap.users]
base_dn = "ou=people,dc=example,dc=com"
[ldap.groups]
base_dn = "ou=groups,dc=example,dc=com"
`

// The retry keys decode into the same push.RetryPolicy in [[targets]] and [[webhooks]], with
// the same defaults in both, and check-config prints them as the keys of each entry.
func TestRetryKeysOfTargetsAndWebhooks(t *testing.T) {
	raw := retryBase + `
[[targets]]
name = "set"
url = "https://scim.example.com/v2"
token = "t"
max_attempts = 3
backoff_base = "250ms"
backoff_max = "1m"
quarantine_after = 7
quarantine_retry = "30s"
[[targets]]
name = "unset"
url = "https://scim.example.com/v2"
token = "t"
[[webhooks]]
name = "hook-set"
url = "https://hooks.example.com/x"
secret = "s"
MAX_ATTEMPTS = 4
backoff_base = "2s"
backoff_max = "10m"
quarantine_after = 9
quarantine_retry = "1h"
[[webhooks]]
name = "hook-unset"
url = "https://hooks.example.com/y"
format = "slack"
`
	cfg, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []push.RetryPolicy{
		{MaxAttempts: 3, BackoffBase: confval.Duration(250 * time.Millisecond), BackoffMax: confval.Duration(time.Minute),
			QuarantineAfter: 7, QuarantineRetry: confval.Duration(30 * time.Second)},
		push.DefaultRetryPolicy(),
		{MaxAttempts: 4, BackoffBase: confval.Duration(2 * time.Second), BackoffMax: confval.Duration(10 * time.Minute),
			QuarantineAfter: 9, QuarantineRetry: confval.Duration(time.Hour)},
		push.DefaultRetryPolicy(),
	}
	got := func(cfg *File) []push.RetryPolicy {
		return []push.RetryPolicy{cfg.Targets[0].RetryPolicy, cfg.Targets[1].RetryPolicy,
			cfg.Webhooks[0].RetryPolicy, cfg.Webhooks[1].RetryPolicy}
	}
	for i, p := range got(cfg) {
		if p != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, p, want[i])
		}
	}
	// The defaults are those the example documents for targets (8, 1s, 5m, 20, 5m).
	d := push.DefaultRetryPolicy()
	if d.MaxAttempts != 8 || d.BackoffBase.D() != time.Second || d.BackoffMax.D() != 5*time.Minute ||
		d.QuarantineAfter != 20 || d.QuarantineRetry.D() != 5*time.Minute {
		t.Errorf("defaults %+v", d)
	}

	// What check-config prints decodes to the same policies.
	var out bytes.Buffer
	if err := cfg.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"max_attempts = 3", "backoff_base = \"250ms\"", "quarantine_retry = \"1h0m0s\""} {
		if !bytes.Contains(out.Bytes(), []byte(key)) {
			t.Errorf("check-config does not print %s:\n%s", key, out.String())
		}
	}
	printed := bytes.ReplaceAll(out.Bytes(), []byte(`"<secret>"`), []byte(`"s"`))
	printed = bytes.ReplaceAll(printed, []byte("https://hooks.example.com/…"), []byte("https://hooks.example.com/x"))
	again, err := Parse(printed)
	if err != nil {
		t.Fatalf("the printed config does not parse: %v\n%s", err, printed)
	}
	for i, p := range got(again) {
		if p != want[i] {
			t.Errorf("printed entry %d: %+v, want %+v", i, p, want[i])
		}
	}
}
