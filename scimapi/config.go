package scimapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// Config is the [scim] section of the configuration file.
type Config struct {
	// Listen is the host:port the API listens on.
	Listen string `toml:"listen"`
	// BaseURL is the absolute URL of the SCIM root as clients reach it, e.g.
	// "https://scim.example.com/scim/v2"; meta.location and every $ref are built from it.
	BaseURL string `toml:"base_url"`
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// MaxResults caps a page and the matches of a filter that cannot use an index
	// (400 tooMany beyond it). It is ServiceProviderConfig's filter.maxResults.
	MaxResults int `toml:"max_results"`
	// MaxRequestBytes caps a request body (413 beyond it).
	MaxRequestBytes int64 `toml:"max_request_bytes"`
	// MaxURLBytes caps the request target, path and query (414 beyond it).
	MaxURLBytes int `toml:"max_url_bytes"`
	// MaxConcurrentRequests caps the requests served at once (503 with Retry-After beyond it):
	// a page of max_results users is a few MB, and clients that never read their answers
	// would otherwise hold one each.
	MaxConcurrentRequests int `toml:"max_concurrent_requests"`
	// Tokens are the bearer tokens the API accepts.
	Tokens []Token `toml:"tokens"`
	// Groups is what a user's "groups" lists: "direct" memberships only, or "transitive":
	// also the groups reached through nested groups, marked type "indirect" (RFC 7643 §4.1.2).
	Groups string `toml:"groups"`
}

// Token is one [[scim.tokens]] entry: a name for logs and either the hex SHA-256 of the token or
// a file holding the token itself (hashed when the file is loaded; the raw token is not kept).
type Token struct {
	Name        string `toml:"name"`
	TokenSHA256 string `toml:"token_sha256"`
	TokenFile   string `toml:"token_file"`

	hash [sha256.Size]byte // resolved by ResolveTokens
}

// Values of Config.Groups.
const (
	GroupsDirect     = "direct"
	GroupsTransitive = "transitive"
)

// DefaultConfig returns the defaults the [scim] section is decoded over.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		MaxResults:      1000,
		Groups:          GroupsDirect,
		MaxRequestBytes: 1 << 20,
		MaxURLBytes:     8 << 10,

		MaxConcurrentRequests: 64,
	}
}

// ResolveTokens reads token files and decodes token_sha256 values into hashes. Its errors name
// the token and the file, never a token's value.
func (c *Config) ResolveTokens() []error {
	var errs []error
	for i := range c.Tokens {
		t := &c.Tokens[i]
		where := fmt.Sprintf("scim.tokens[%d]", i)
		if t.Name != "" {
			where = fmt.Sprintf("scim.tokens[%d] (%s)", i, t.Name)
		}
		switch {
		case t.TokenSHA256 != "" && t.TokenFile != "":
			errs = append(errs, fmt.Errorf("%s: set token_sha256 or token_file, not both", where))
		case t.TokenSHA256 != "":
			b, err := hex.DecodeString(strings.TrimSpace(t.TokenSHA256))
			if err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("%s: token_sha256: want 64 hex digits (printf %%s \"$TOKEN\" | sha256sum)", where))
				continue
			}
			copy(t.hash[:], b)
		case t.TokenFile != "":
			raw, err := os.ReadFile(t.TokenFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: token_file: %v", where, pathError(err)))
				continue
			}
			tok := strings.TrimRight(string(raw), "\r\n")
			if tok == "" {
				errs = append(errs, fmt.Errorf("%s: token_file %s is empty", where, t.TokenFile))
				continue
			}
			t.hash = sha256.Sum256([]byte(tok))
		default:
			errs = append(errs, fmt.Errorf("%s: token_sha256 or token_file is required", where))
		}
	}
	return errs
}

// pathError keeps an *os.PathError's operation and cause (the file's contents never appear).
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %v", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// Validate reports every problem of an enabled [scim] section.
func (c *Config) Validate() []error {
	var errs []error
	if c.Groups != GroupsDirect && c.Groups != GroupsTransitive {
		errs = append(errs, fmt.Errorf("scim.groups: %q is not one of %q, %q", c.Groups, GroupsDirect, GroupsTransitive))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("scim.listen: is required"))
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("scim.listen: %q is not host:port", c.Listen))
	}
	if c.BaseURL == "" {
		errs = append(errs, errors.New("scim.base_url: is required (the SCIM root as clients reach it, e.g. https://scim.example.com/scim/v2)"))
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("scim.base_url: %q is not an absolute http(s) URL without query", c.BaseURL))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("scim.tls_cert_file and scim.tls_key_file: set both or neither"))
	}
	for _, f := range []struct{ key, path string }{{"tls_cert_file", c.TLSCertFile}, {"tls_key_file", c.TLSKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("scim.%s: %v", f.key, pathError(err)))
		}
	}
	if c.MaxResults < 1 {
		errs = append(errs, fmt.Errorf("scim.max_results: %d must be at least 1", c.MaxResults))
	}
	if c.MaxConcurrentRequests < 1 {
		errs = append(errs, fmt.Errorf("scim.max_concurrent_requests: %d must be at least 1", c.MaxConcurrentRequests))
	}
	if c.MaxRequestBytes < 1024 {
		errs = append(errs, fmt.Errorf("scim.max_request_bytes: %d must be at least 1024", c.MaxRequestBytes))
	}
	if c.MaxURLBytes < 256 {
		errs = append(errs, fmt.Errorf("scim.max_url_bytes: %d must be at least 256", c.MaxURLBytes))
	}
	if len(c.Tokens) == 0 {
		errs = append(errs, errors.New("scim.tokens: at least one [[scim.tokens]] is required"))
	}
	names := map[string]bool{}
	for i, t := range c.Tokens {
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("scim.tokens[%d]: name is required", i))
		} else if names[t.Name] {
			errs = append(errs, fmt.Errorf("scim.tokens[%d]: name %q is used twice", i, t.Name))
		}
		names[t.Name] = true
	}
	return errs
}

// baseURL returns BaseURL without a trailing slash.
func (c *Config) baseURL() string { return strings.TrimRight(c.BaseURL, "/") }
