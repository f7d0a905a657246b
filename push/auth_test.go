package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

// idp is a real OAuth2 token endpoint (client credentials, client authenticated with HTTP
// Basic) whose client secret can be rotated. The tokens it issued are what gate lets through.
type idp struct {
	srv     *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool // drop every connection without an answer

	mu     sync.Mutex
	secret string
	tokens map[string]bool
	n      int
}

const idpClient = "ldapscim-client"

func startIDP(t *testing.T, secret string) *idp {
	p := &idp{secret: secret, tokens: map[string]bool{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	if p.down.Load() {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	}
	id, sec, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	sec, _ = url.QueryUnescape(sec)
	w.Header().Set("Content-Type", "application/json")
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok || id != idpClient || sec != p.secret || r.PostFormValue("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
		return
	}
	p.n++
	tok := fmt.Sprintf("access-token-%d", p.n)
	p.tokens[tok] = true
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600})
}

// rotate makes secret the only one accepted and revokes every token issued so far.
func (p *idp) rotate(secret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.secret, p.tokens = secret, map[string]bool{}
}

func (p *idp) valid(authz string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	return ok && p.tokens[tok]
}

// gate sits in front of the SCIMMY target as its authentication layer: a request whose bearer
// token allow accepts goes through with SCIMMY's own token; others get status.
type gate struct {
	rp     *httputil.ReverseProxy
	allow  func(authz string) bool
	status int
	token  string
}

func newGate(t *testing.T, target, token string, status int, allow func(string) bool) string {
	u, _ := url.Parse(target)
	g := &gate{rp: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host}), allow: allow,
		status: status, token: token}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv.URL + u.Path
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.allow(r.Header.Get("Authorization")) {
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(g.status)
		fmt.Fprintf(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"%d","detail":"bad token"}`, g.status)
		return
	}
	r.Header.Set("Authorization", "Bearer "+g.token)
	g.rp.ServeHTTP(w, r)
}

// alerts collects the alerts a target sends.
type alerts struct {
	mu   sync.Mutex
	list []push.Alert
}

func (a *alerts) add(x push.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, x)
}

func (a *alerts) of(kind string) []push.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []push.Alert
	for _, x := range a.list {
		if x.Kind == kind {
			out = append(out, x)
		}
	}
	return out
}

// running is a target's Run in the background, stopped and waited for at cleanup.
func running(t *testing.T, tg *push.Target) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tg.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// writeSecret replaces a secret file's content.
func writeSecret(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// joiners adds users to the directory and syncs them into the cache: changes to push.
func (e *env) joiners(uids ...string) {
	var ldif strings.Builder
	for _, uid := range uids {
		ldif.WriteString(userLDIF(uid, "New", uid, "Sales", ""))
	}
	e.sl.Add(e.t, ldif.String())
	e.pass()
}

// assertQueued checks that a refusing target's changes are held, not lost: quarantined for
// the reason want, no dead letter, the cursor behind the journal head, and a
// target_unauthorized alert naming the target and the status without any secret.
func assertQueued(t *testing.T, e *env, tg *push.Target, got *alerts, want string, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "a target_unauthorized alert", func() bool {
		return len(got.of("target_unauthorized")) > 0 || tg.Status(ctx).DeadLetters > 0
	})
	noDeadLetters(t, e, tg)
	st := tg.Status(ctx)
	if !st.Quarantined || !strings.Contains(st.QuarantineReason, want) || st.Cursor >= st.JournalHead {
		t.Fatalf("status: quarantined %v, reason %q (want %q), cursor %d of %d", st.Quarantined, st.QuarantineReason, want, st.Cursor, st.JournalHead)
	}
	a := got.of("target_unauthorized")[0]
	if a.Target != "scimmy" || !strings.Contains(a.Text, "scimmy") || !strings.Contains(a.Text, want) {
		t.Fatalf("alert %+v: want the target and %q", a, want)
	}
	time.Sleep(600 * time.Millisecond) // several probes: still refused, still nothing lost
	noDeadLetters(t, e, tg)
	b, _ := json.Marshal(struct {
		A []push.Alert
		S push.Status
	}{got.of("target_unauthorized"), tg.Status(ctx)})
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Fatalf("%q leaked into the alert or status: %s", s, b)
		}
	}
}

// noDeadLetters fails when the target made a dead letter.
func noDeadLetters(t *testing.T, e *env, tg *push.Target) {
	t.Helper()
	ctx := context.Background()
	if dls, err := e.store.DeadLetters(ctx, "scimmy"); err != nil || len(dls) != 0 {
		t.Fatalf("a target that refuses or lacks credentials must not dead-letter changes: %v %+v", err, dls)
	}
	if n := tg.Status(ctx).DeadLetters; n != 0 {
		t.Fatalf("%d dead letters since start", n)
	}
}

// assertDelivered waits until the target caught up, then checks every user arrived exactly
// once (created once, no duplicates) and the quarantine ended with a recovery alert.
func assertDelivered(t *testing.T, e *env, tg *push.Target, got *alerts, want []string) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "the queue to drain", func() bool {
		st := tg.Status(ctx)
		return !st.Quarantined && st.Cursor == st.JournalHead
	})
	u := users(t, e.target) // fails on a duplicate
	for _, uid := range want {
		if u[uid] == nil {
			t.Errorf("%s never arrived", uid)
		}
	}
	if s := e.target.State(t); len(u) != len(want) || s.Stats.Created != len(want) {
		t.Fatalf("want %d users created once each, got %d users, %d creations", len(want), len(u), s.Stats.Created)
	}
	if dls, _ := e.store.DeadLetters(ctx, "scimmy"); len(dls) != 0 {
		t.Fatalf("dead letters: %+v", dls)
	}
	if tg.Status(ctx).QuarantineReason != "" {
		t.Fatal("a recovered target still shows a quarantine reason")
	}
	waitFor(t, "a recovery alert", func() bool {
		for _, a := range got.of("quarantine") {
			if strings.Contains(a.Text, "recovered") {
				return true
			}
		}
		return false
	})
}

// oauthTarget configures the test target for client credentials from secretFile at p, with
// a token_url whose query carries a key that must never be printed.
func oauthTarget(e *env, url string, p *idp, secretFile string, mod func(*push.TargetConfig)) push.TargetConfig {
	return e.targetConfig(url, func(tc *push.TargetConfig) {
		tc.Token = confval.Secret{}
		tc.TokenURL = p.srv.URL + "/oauth2/token?api_key=s3cret-query-key"
		tc.ClientID = idpClient
		tc.ClientSecretFile = secretFile
		tc.MaxAttempts = 2
		tc.QuarantineRetry = confval.Duration(100 * time.Millisecond)
		if mod != nil {
			mod(tc)
		}
	})
}

// A rotated client secret: the target refuses the cached token, the token endpoint refuses the
// old secret. The target is quarantined with a target_unauthorized alert and no change is
// dead-lettered; once the secret file holds the new secret, every queued change arrives once.
func TestRotatedSecretQuarantinesAndKeepsChanges(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Ops", "")+userLDIF("bob", "Bob", "Brown", "Ops", ""))
	p := startIDP(t, "secret-one")
	secretFile := filepath.Join(t.TempDir(), "client.secret")
	writeSecret(t, secretFile, "secret-one")
	url := newGate(t, e.target.URL, e.target.Token, http.StatusUnauthorized, p.valid)
	got := &alerts{}
	tg := push.NewTarget(oauthTarget(e, url, p, secretFile, nil), e.store, push.WorkerOptions{Alert: got.add})
	drain(t, tg)
	if n := len(users(t, e.target)); n != 2 {
		t.Fatalf("before the rotation: %d users", n)
	}

	p.rotate("secret-two")
	e.joiners("carol", "dave", "erin")
	running(t, tg)
	assertQueued(t, e, tg, got, "HTTP 401 invalid_client", "secret-one", "secret-two", "s3cret-query-key", "access-token-")

	writeSecret(t, secretFile, "secret-two")
	assertDelivered(t, e, tg, got, []string{"alice", "bob", "carol", "dave", "erin"})
}

// A target that revokes its tokens (the secret unchanged): the 401 drops the cached token and
// the request is sent again with a new one. One token request for every concurrent refusal,
// no quarantine, no dead letter.
func TestRevokedTokenIsRenewedOnce(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Ops", ""))
	p := startIDP(t, "secret-one")
	secretFile := filepath.Join(t.TempDir(), "client.secret")
	writeSecret(t, secretFile, "secret-one")
	url := newGate(t, e.target.URL, e.target.Token, http.StatusUnauthorized, p.valid)
	got := &alerts{}
	tg := push.NewTarget(oauthTarget(e, url, p, secretFile, nil), e.store, push.WorkerOptions{Alert: got.add})
	drain(t, tg)

	p.rotate("secret-one") // revokes the tokens only
	e.joiners("carol", "dave", "erin", "fred", "gina", "hank")
	drain(t, tg)
	if n := p.fetches.Load(); n != 2 {
		t.Fatalf("want 2 token requests (the first and one renewal), got %d", n)
	}
	if a := append(got.of("quarantine"), got.of("target_unauthorized")...); len(a) != 0 || tg.Status(context.Background()).Quarantined {
		t.Fatalf("a renewed token must not quarantine the target: %+v", a)
	}
	if dls, _ := e.store.DeadLetters(context.Background(), "scimmy"); len(dls) != 0 {
		t.Fatalf("dead letters: %+v", dls)
	}
	if n := len(users(t, e.target)); n != 7 {
		t.Fatalf("want 7 users, got %d", n)
	}
}

// A static bearer token the target stops accepting (403): quarantine, alert, nothing
// dead-lettered; the token file is read again, so writing the new token ends it.
func TestForbiddenBearerTokenQuarantinesAndKeepsChanges(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Ops", ""))
	tokenFile := filepath.Join(t.TempDir(), "target.token")
	writeSecret(t, tokenFile, "old-bearer-token")
	var accepted atomic.Value
	accepted.Store("Bearer old-bearer-token")
	url := newGate(t, e.target.URL, e.target.Token, http.StatusForbidden, func(a string) bool { return a == accepted.Load() })
	got := &alerts{}
	cfg := e.targetConfig(url, func(tc *push.TargetConfig) {
		tc.Token, tc.TokenFile = confval.Secret{}, tokenFile
		tc.MaxAttempts = 2
		tc.QuarantineRetry = confval.Duration(100 * time.Millisecond)
	})
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{Alert: got.add})
	drain(t, tg)

	accepted.Store("Bearer new-bearer-token") // rotated at the target
	e.joiners("carol", "dave")
	running(t, tg)
	assertQueued(t, e, tg, got, "HTTP 403", "old-bearer-token", "new-bearer-token")

	writeSecret(t, tokenFile, "new-bearer-token")
	assertDelivered(t, e, tg, got, []string{"alice", "carol", "dave"})
}

// A token endpoint that cannot be reached: the changes wait (no attempt counts, so nothing is
// dead-lettered); the target is quarantined after quarantine_after failures and drains once
// the endpoint is back.
func TestTokenEndpointDownKeepsChanges(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Ops", "")+userLDIF("bob", "Bob", "Brown", "Ops", ""))
	p := startIDP(t, "secret-one")
	p.down.Store(true)
	secretFile := filepath.Join(t.TempDir(), "client.secret")
	writeSecret(t, secretFile, "secret-one")
	url := newGate(t, e.target.URL, e.target.Token, http.StatusUnauthorized, p.valid)
	got := &alerts{}
	tg := push.NewTarget(oauthTarget(e, url, p, secretFile, nil), e.store, push.WorkerOptions{Alert: got.add})
	running(t, tg)

	ctx := context.Background()
	waitFor(t, "the quarantine", func() bool { st := tg.Status(ctx); return st.Quarantined || st.DeadLetters > 0 })
	noDeadLetters(t, e, tg)
	st := tg.Status(ctx)
	if !strings.Contains(st.QuarantineReason, "OAuth2 token request") || strings.Contains(st.QuarantineReason, "s3cret-query-key") {
		t.Fatalf("quarantine reason %q", st.QuarantineReason)
	}
	time.Sleep(600 * time.Millisecond)
	noDeadLetters(t, e, tg)
	if n := len(users(t, e.target)); n != 0 {
		t.Fatalf("%d users arrived without a token", n)
	}
	if len(got.of("quarantine")) == 0 {
		t.Fatal("no quarantine alert")
	}

	p.down.Store(false)
	assertDelivered(t, e, tg, got, []string{"alice", "bob"})
}

// A webhook receiver that refuses our signature (401, its secret rotated first) is the same
// target-level failure: the webhook is quarantined, no event is dead-lettered, and every event
// arrives exactly once when the receiver accepts again.
func TestWebhookUnauthorizedKeepsEvents(t *testing.T) {
	e := newEnv(t, userLDIF("fay", "Fay", "Fox", "Ops", "")+userLDIF("gus", "Gus", "Gray", "Ops", ""))
	var refuse atomic.Bool
	refuse.Store(true)
	var mu sync.Mutex
	var seqs []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev push.Event
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		seqs = append(seqs, ev.Seq)
		mu.Unlock()
	}))
	defer srv.Close()
	hooks := []push.WebhookConfig{{Name: "hook", URL: srv.URL, Secret: confval.NewSecret("s3cret-hook"),
		RetryPolicy:  push.RetryPolicy{MaxAttempts: 2, BackoffBase: confval.Duration(20 * time.Millisecond), QuarantineRetry: confval.Duration(100 * time.Millisecond)},
		PollInterval: confval.Duration(50 * time.Millisecond)}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	got := &alerts{}
	wh := push.NewWebhook(hooks[0], e.store, push.WorkerOptions{Alert: got.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = wh.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the quarantine", func() bool { st := wh.Status(ctx); return st.Quarantined || st.DeadLetters > 0 })
	time.Sleep(400 * time.Millisecond)
	if dls, _ := e.store.DeadLetters(ctx, "hook"); len(dls) != 0 || wh.Status(ctx).DeadLetters != 0 {
		t.Fatalf("a 401 must not dead-letter events: %+v", dls)
	}
	refuse.Store(false)
	waitFor(t, "the events", func() bool { st := wh.Status(ctx); return !st.Quarantined && st.Cursor == st.JournalHead })
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != 2 || seqs[0] == seqs[1] { // two users: in parallel, each in order
		t.Fatalf("want both user.created events once: %v", seqs)
	}
}
