package push

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/scim"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"X-Rate-Limit-Reset": {"1767323105"}}, 60 * time.Second}, // now+60s in unix seconds
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{}, 0},
	} {
		if got := retryAfter(c.h, now); got != c.want {
			t.Errorf("%v: %v, want %v", c.h, got, c.want)
		}
	}
}

func TestBackoffGrowsWithJitterAndHonoursRetryAfter(t *testing.T) {
	p := RetryPolicy{BackoffBase: confval.Duration(time.Second), BackoffMax: confval.Duration(time.Minute)}
	for n := 1; n < 10; n++ {
		d := p.delay(n, 0)
		hi := min(time.Second<<(n-1), time.Minute)
		if d < hi/2 || d > hi {
			t.Errorf("attempt %d: %v outside [%v, %v]", n, d, hi/2, hi)
		}
	}
	if d := p.delay(1, 30*time.Second); d != 30*time.Second {
		t.Errorf("Retry-After must win: %v", d)
	}
}

func TestProfilesShapeRequests(t *testing.T) {
	old := document{"userName": "a", "active": true, "name": map[string]any{"givenName": "A", "familyName": "B"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "X"}}
	new := document{"userName": "a", "active": true, "name": map[string]any{"givenName": "A", "familyName": "C"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Y"}, "title": "T"}
	ops := profileFor(ProfileRFC).diffOps(old, new)
	got := []string{}
	for _, o := range ops {
		got = append(got, o.Op+" "+o.Path)
	}
	want := "replace name.familyName|replace title|replace urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
	if strings.Join(got, "|") != want {
		t.Fatalf("rfc ops %v", got)
	}
	if ops := profileFor(ProfileEntra).diffOps(old, new); ops[0].Op != "Replace" {
		t.Fatalf("entra capitalises ops: %v", ops)
	}
	okta := profileFor(ProfileOkta).activeOps(false)
	if len(okta) != 1 || okta[0].Path != "" || okta[0].Value.(map[string]any)["active"] != false {
		t.Fatalf("okta deactivates path-less: %+v", okta)
	}
	ids := make([]string, 250)
	for i := range ids {
		ids[i] = string(rune('a'+i%26)) + strings.Repeat("x", i)
	}
	if reqs := profileFor(ProfileAWS).memberOps(ids, nil, 100); len(reqs) != 3 {
		t.Fatalf("aws: 250 adds in %d requests, want 3", len(reqs))
	}
	rm := profileFor(ProfileRFC).memberOps(nil, []string{"x", "y"}, 100)
	if len(rm) != 1 || rm[0][0].Path != `members[value eq "x"]` || len(rm[0]) != 2 {
		t.Fatalf("rfc removal %+v", rm)
	}
	rm = profileFor(ProfileEntra).memberOps(nil, []string{"x", "y"}, 100)
	if rm[0][0].Op != "Remove" || rm[0][0].Path != "members" {
		t.Fatalf("entra removal %+v", rm)
	}
}

func TestPrepareReportsEverythingWithoutSecrets(t *testing.T) {
	ts := []TargetConfig{
		{Name: "a", URL: "ftp://x", Token: confval.NewSecret("tok-SECRET-1"), Profile: "zz", Deprovision: "explode", Scope: `userName eq`},
		{Name: "A", URL: "https://user:pw-SECRET-2@x/scim"},
		{Name: "o", URL: "https://x", Token: confval.NewSecret("t"), Profile: ProfileOkta, Deprovision: Delete},
	}
	ws := []WebhookConfig{{Name: "w", URL: "https://h", Events: []string{"user.exploded"}}}
	errs := Prepare(ts, ws)
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	msg := b.String()
	for _, want := range []string{"targets[0].url", "targets[0].profile", "targets[0].deprovision", "targets[0].scope",
		"targets[1].name", "credentials in the URL", "targets[1].auth", "okta profile never deletes",
		"webhooks[0].secret", "webhooks[0].events"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "SECRET") {
		t.Fatalf("a secret leaked:\n%s", msg)
	}
}

// A webhook body shows no time later than the clock: with [ha] the cache stores lastModified
// ahead of it (cache.Options.ReplicaLag), and a receiver may pull with meta.lastModified gt it.
func TestRenderShowsNoFutureTime(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC()
	future := time.Now().Add(time.Hour)
	r := &scim.Resource{ID: "u1", Type: scim.UserType, Meta: scim.Meta{Created: past, LastModified: future, Version: "v"}}
	before := time.Now()
	meta := render(r)["meta"].(map[string]any)
	lm := meta["lastModified"].(time.Time)
	if meta["created"].(time.Time) != past || lm.Before(before) || lm.After(time.Now()) || meta["version"] != "v" {
		t.Errorf("meta %v: want created %v and lastModified now", meta, past)
	}
}
