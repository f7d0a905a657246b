package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
)

// tokenEndpoint answers the client credentials grant with answer, counting requests and
// checking what the client sends.
func tokenEndpoint(t *testing.T, tls bool, answer func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		// RFC 6749 §2.3.1: id and secret are form-encoded inside HTTP Basic.
		id, sec, ok := r.BasicAuth()
		_ = r.ParseForm()
		if !ok || id != "client%2Fone" || sec != "s3cret%2Bvalue" || r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("scope") != "scim.write scim.read" {
			t.Errorf("token request: basic %v %q %q, form %v", ok, id, sec, r.PostForm)
		}
		w.Header().Set("Content-Type", "application/json")
		answer(w)
	})
	srv := httptest.NewUnstartedServer(h)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &n
}

func testOAuth(srv *httptest.Server, hc *http.Client) *oauthClient {
	return &oauthClient{tokenURL: srv.URL + "/token?api_key=s3cret-query", clientID: "client/one",
		scopes: []string{"scim.write", "scim.read"}, secret: confval.NewSecret("s3cret+value"), http: hc}
}

// The token request goes through the target's HTTP client (its TLS settings and timeout);
// the token is cached until shortly before it expires.
func TestOAuthUsesTargetClientAndCaches(t *testing.T) {
	srv, n := tokenEndpoint(t, true, func(w http.ResponseWriter) {
		fmt.Fprint(w, `{"access_token":"tok-1","token_type":"bearer","expires_in":30}`)
	})
	ctx := context.Background()
	if _, err := testOAuth(srv, newHTTPClient(time.Second, 1, false)).header(ctx); err == nil ||
		strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "api_key=xxxxx") {
		t.Fatalf("an untrusted certificate must fail, with token_url redacted: %v", err)
	}
	o := testOAuth(srv, newHTTPClient(time.Second, 1, true))
	for range 3 {
		if h, err := o.header(ctx); err != nil || h != "Bearer tok-1" {
			t.Fatalf("header %q, %v", h, err)
		}
	}
	if got := n.Load(); got != 1 { // the refused handshake never reached the handler
		t.Fatalf("want one token request for three headers, got %d", got)
	}
	if life := time.Until(o.renewAt); life < 26*time.Second || life > 27*time.Second {
		t.Fatalf("a 30 s token is renewed at 90%% of its life, not after %s", life)
	}
}

// Token endpoint failures: a 4xx refuses the client (quarantine at once), a 5xx or a timeout
// is the endpoint being down. No message holds the secret or the token_url's query.
func TestOAuthTokenErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		answer  func(w http.ResponseWriter)
		refused bool
		want    string
	}{
		{"invalid client", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"secret expired"}`)
		}, true, "HTTP 401 invalid_client: secret expired"},
		{"bad request", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"unauthorized_client"}`)
		}, true, "HTTP 400 unauthorized_client"},
		{"rate limited", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }, false, "HTTP 429"},
		{"down", func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }, false, "HTTP 502"},
		{"timeout", func(w http.ResponseWriter) { time.Sleep(500 * time.Millisecond) }, false, "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := tokenEndpoint(t, false, c.answer)
			_, err := testOAuth(srv, newHTTPClient(200*time.Millisecond, 1, false)).header(context.Background())
			var ce *credentialError
			if !errors.As(err, &ce) || ce.refused != c.refused || !strings.Contains(ce.msg, c.want) {
				t.Fatalf("got %#v, want refused=%v and %q", err, c.refused, c.want)
			}
			if strings.Contains(ce.msg, "s3cret") || !strings.Contains(ce.msg, "/token?api_key=xxxxx") {
				t.Fatalf("message %q: a secret or the token_url's query leaked", ce.msg)
			}
			if !targetLevel(err) {
				t.Fatal("a token failure must never count against a change")
			}
		})
	}
}

// 401 and 403 are the target's failure, not the change's: never permanent.
func TestUnauthorizedIsNotPermanent(t *testing.T) {
	for status, want := range map[int]bool{400: true, 401: false, 403: false, 404: false, 409: false, 422: true, 429: false, 500: false} {
		he := &HTTPError{Status: status}
		if he.Permanent() != want {
			t.Errorf("HTTP %d: Permanent() = %v", status, !want)
		}
		if targetLevel(he) != (status == 401 || status == 403) {
			t.Errorf("HTTP %d: targetLevel = %v", status, !(status == 401 || status == 403))
		}
	}
}
