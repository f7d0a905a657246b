package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/redact"
)

// authenticator supplies the Authorization header of a target's requests. Implementations are
// safe for concurrent use.
type authenticator interface {
	// header returns the Authorization value to send. Its errors are *credentialError (or
	// ctx's error).
	header(ctx context.Context) (string, error)
	// renew replaces the credential behind refused, an Authorization value that header
	// returned and that the target answered with 401 or 403: a cached OAuth2 token is dropped
	// and a new one fetched, a secret file is read again. It reports whether sending the
	// request again may help (false: the credential is unchanged). Errors: *credentialError.
	renew(ctx context.Context, refused string) (bool, error)
}

// credentialError is a failure to get the credential a target's requests need: its OAuth2
// token endpoint refused the client or could not be reached, or a secret file could not be
// read. It is the target's failure, never a change's: it does not count as an attempt, and
// when refused it quarantines the target at once (see client.account).
type credentialError struct {
	// refused: the token endpoint answered 4xx (invalid_client after a secret rotation, a
	// wrong token_url) or the secret file is unreadable. Retrying soon cannot help.
	refused bool
	msg     string
}

func (e *credentialError) Error() string { return e.msg }

// targetLevel reports whether err is a failure of the target as a whole rather than of one
// change: its credentials were refused (401 or 403, or by the token endpoint) or could not be
// got. Such a failure never counts towards a change's max_attempts.
func targetLevel(err error) bool {
	var ce *credentialError
	var he *HTTPError
	return errors.As(err, &ce) || (errors.As(err, &he) && he.unauthorized())
}

// newAuthenticator returns the authenticator of a target that passed Prepare: OAuth2 client
// credentials when token_url is set, else its bearer token. hc carries the target's timeout
// and TLS settings to the token endpoint too.
func newAuthenticator(cfg TargetConfig, hc *http.Client) authenticator {
	if cfg.TokenURL != "" {
		return &oauthClient{tokenURL: cfg.TokenURL, clientID: cfg.ClientID, scopes: cfg.Scopes,
			secret: cfg.ClientSecret, secretFile: cfg.ClientSecretFile, http: hc}
	}
	return &bearer{file: cfg.TokenFile, value: "Bearer " + cfg.Token.Reveal()}
}

// bearer authenticates with a static token; a token_file is read again when the target
// refuses the token, so fixing the file ends a quarantine without a restart.
type bearer struct {
	file string

	mu    sync.Mutex
	value string // "Bearer TOKEN"
}

func (b *bearer) header(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.value, nil
}

func (b *bearer) renew(_ context.Context, refused string) (bool, error) {
	if b.file == "" {
		return false, nil
	}
	tok, err := confval.LoadSecret(confval.Secret{}, b.file, "")
	if err != nil {
		return false, &credentialError{refused: true, msg: fmt.Sprintf("token_file: %v", err)}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.value = "Bearer " + tok.Reveal()
	return b.value != refused, nil
}

// oauthClient gets and caches an OAuth2 access token with the client credentials grant
// (RFC 6749 §4.4), through golang.org/x/oauth2/clientcredentials. The cache is ours rather
// than oauth2.ReuseTokenSource's because a token source binds the context it was made with,
// while each fetch here must end with the request that needed it, and because a token the
// target refused must be dropped before it expires.
type oauthClient struct {
	tokenURL, clientID string
	scopes             []string
	secret             confval.Secret
	secretFile         string // read again at every fetch: a fixed file ends a quarantine
	http               *http.Client

	// mu is held during a fetch, so concurrent requests wait for one token instead of each
	// fetching their own.
	mu      sync.Mutex
	value   string // "Bearer TOKEN"; "" when none is cached
	renewAt time.Time
}

func (o *oauthClient) header(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.value != "" && time.Now().Before(o.renewAt) {
		return o.value, nil
	}
	return o.fetch(ctx)
}

func (o *oauthClient) renew(ctx context.Context, refused string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.value != "" && o.value != refused {
		return true, nil // another request renewed it meanwhile
	}
	o.value = ""
	if _, err := o.fetch(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// fetch gets a new token; o.mu is held.
func (o *oauthClient) fetch(ctx context.Context) (string, error) {
	sec, err := confval.LoadSecret(o.secret, o.secretFile, "")
	if err != nil {
		return "", &credentialError{refused: true, msg: fmt.Sprintf("client_secret_file: %v", err)}
	}
	// AuthStyleInHeader (HTTP Basic, RFC 6749 §2.3.1) as before: auto-detection would send
	// the secret a second way after every refusal.
	conf := &clientcredentials.Config{ClientID: o.clientID, ClientSecret: sec.Reveal(), TokenURL: o.tokenURL,
		Scopes: o.scopes, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := conf.Token(context.WithValue(ctx, oauth2.HTTPClient, o.http))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", o.tokenError(err)
	}
	life := time.Until(tok.Expiry)
	if tok.Expiry.IsZero() {
		life = time.Hour // no expires_in: assume an hour; a 401 renews it sooner
	}
	// Renew a minute early (or at 90% of the life of a short-lived token).
	o.value = tok.Type() + " " + tok.AccessToken
	o.renewAt = time.Now().Add(life - min(time.Minute, life/10))
	return o.value, nil
}

// tokenError describes a failed token request by the token endpoint's status and OAuth2
// error code, never by our request: no secret, and token_url redacted.
func (o *oauthClient) tokenError(err error) *credentialError {
	where := "OAuth2 token request to " + redact.URL(o.tokenURL)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return &credentialError{msg: fmt.Sprintf("%s: %v", where, scrub(err))}
	}
	s := re.Response.StatusCode
	msg := fmt.Sprintf("%s: HTTP %d", where, s)
	if re.ErrorCode != "" {
		msg += " " + clip(re.ErrorCode, 100)
	}
	if re.ErrorDescription != "" {
		msg += ": " + clip(re.ErrorDescription, 200)
	}
	// 408 and 429 say "later"; other 4xx refuse this client (a rotated secret, a wrong
	// client_id or token_url). 5xx: the endpoint is down.
	refused := s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
	return &credentialError{refused: refused, msg: msg}
}

// clip shortens a text the token endpoint chose to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
