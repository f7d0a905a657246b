package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
)

// DefaultListen is where the admin server listens when the config does not say.
const DefaultListen = "127.0.0.1:9090"

// Config is the [admin] section of the configuration file.
//
// Access rules (see Server): /healthz and /readyz are open to anyone who can reach the listener,
// because load balancers and orchestrators probe them without credentials and they reveal
// nothing but "up"/"ready". /status, /metrics and /admin/v1/* need the admin token, except from
// a loopback address while AllowLoopback is true, so an admin on the host (and a Prometheus on
// the same host) needs no set-up. Put a reverse proxy on the same host in front of the admin
// listener only with allow_loopback = false: to this server, every proxied request looks local.
//
// Because a web page in the admin's browser is a loopback client too, the protected endpoints
// also refuse (see guard.go): a loopback request without the token whose Host is not
// localhost, a loopback address, the listen host or the connection's local address (421; DNS
// rebinding; with the token any Host is accepted); any request whose Origin is not this
// server or whose Sec-Fetch-Site is not same-origin or none (403, token or not); a POST body
// not declared Content-Type: application/json (415) or with unknown fields or trailing data
// (400). A reverse proxy must therefore pass Host through unchanged.
type Config struct {
	// Listen is host:port; "" turns the admin server off.
	Listen string `toml:"listen"`
	// TokenSHA256 is the hex SHA-256 of the admin token; TokenFile a file holding the token.
	// Set one or neither (then only loopback requests reach the protected endpoints).
	TokenSHA256 string `toml:"token_sha256"`
	TokenFile   string `toml:"token_file"`
	// AllowLoopback lets requests from 127.0.0.0/8 and ::1 in without the token.
	AllowLoopback bool `toml:"allow_loopback"`
	// ReadyMaxAge is how old the last successful sync pass may be for /readyz to say ready.
	ReadyMaxAge confval.Duration `toml:"ready_max_age"`

	hash   [sha256.Size]byte // resolved by ResolveToken
	hasTok bool              // a token is configured
	// token is the raw admin token when it came from token_file: the CLI sends it to a running
	// serve. Empty with token_sha256.
	token confval.Secret
}

// DefaultConfig returns the defaults [admin] is decoded over (also when the file has no
// [admin] section: the admin server is on by default, on loopback).
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, AllowLoopback: true, ReadyMaxAge: confval.Duration(time.Hour)}
}

// ResolveToken reads token_file or decodes token_sha256. Its errors name the key and the file,
// never the token.
func (c *Config) ResolveToken() []error {
	switch {
	case c.TokenSHA256 != "" && c.TokenFile != "":
		return []error{errors.New("admin: set token_sha256 or token_file, not both")}
	case c.TokenSHA256 != "":
		b, err := hex.DecodeString(strings.TrimSpace(c.TokenSHA256))
		if err != nil || len(b) != sha256.Size {
			return []error{errors.New("admin.token_sha256: want 64 hex digits (printf %s \"$TOKEN\" | sha256sum)")}
		}
		copy(c.hash[:], b)
		c.hasTok = true
	case c.TokenFile != "":
		tok, err := confval.LoadSecret(confval.Secret{}, c.TokenFile, "")
		if err != nil {
			return []error{fmt.Errorf("admin.token_file: %v", err)}
		}
		c.hash = sha256.Sum256([]byte(tok.Reveal()))
		c.token, c.hasTok = tok, true
	}
	return nil
}

// Validate reports every problem of the section.
func (c *Config) Validate() []error {
	var errs []error
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("admin.listen: %q is not host:port (\"\" turns the admin server off)", c.Listen))
		}
	}
	if c.ReadyMaxAge.D() <= 0 {
		errs = append(errs, fmt.Errorf("admin.ready_max_age: %s must be positive", c.ReadyMaxAge.D()))
	}
	return errs
}

// Token returns the admin token read from token_file, for clients (the CLI); ok is false when
// the config has none in clear (token_sha256 only, or no token).
func (c *Config) Token() (confval.Secret, bool) { return c.token, c.token.IsSet() }
