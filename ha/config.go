package ha

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
)

// Config is the [ha] section of the configuration file. With no etcd_endpoints there is no
// high availability: the one serve does everything, as before.
type Config struct {
	// EtcdEndpoints are the etcd members' client URLs (http:// or https://); empty: no HA.
	EtcdEndpoints []string `toml:"etcd_endpoints"`
	// Election is the etcd key prefix the replicas campaign under.
	Election string `toml:"election"`
	// LeaseTTL is the leader's etcd lease: a replica that dies leaves the leadership free this
	// long after its last keepalive. Whole seconds (etcd's unit).
	LeaseTTL confval.Duration `toml:"lease_ttl"`
	// Node names this replica in etcd and in the status; default: the host name.
	Node string `toml:"node"`
	// MaxLag is the longest a replica may take to apply a directory change after the
	// directory made it, clock skew between the machines included: the longest gap between
	// two passes of [schedule], plus a pass, plus the skew. The replicas derive
	// meta.lastModified from it (cache.Options.ReplicaLag) so that a client that a load
	// balancer spreads over them never misses a change through meta.lastModified gt.
	MaxLag confval.Duration `toml:"max_lag"`
	// TLS to etcd: a CA to verify the members with (default: the system's), and a client
	// certificate (both or neither).
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Username and PasswordFile authenticate to etcd (its RBAC). Password is read from the
	// file (never from the config itself: a password key there is an error) and prints as
	// <secret>.
	Username     string         `toml:"username"`
	PasswordFile string         `toml:"password_file"`
	Password     confval.Secret `toml:"password,omitempty"`

	tls *tls.Config // built by Resolve when a TLS key is set
}

// Election defaults.
const (
	DefaultElection = "/ldapscim/pusher"
	DefaultLeaseTTL = 10 * time.Second
	// MinLeaseTTL: the leader gives up at half its lease without a keepalive, and keeps alive
	// several times per half; below 2 s that leaves etcd no time to answer.
	MinLeaseTTL = 2 * time.Second
	// DefaultMaxLag covers the default delta schedule (every minute), a pass and clock skew
	// with room to spare; a longer lag costs only repeats: a changed resource matches
	// meta.lastModified gt for up to twice the lag after its change.
	DefaultMaxLag = 5 * time.Minute
	// MinMaxLag and MaxMaxLag bound max_lag: below a second a pass cannot keep up; above a
	// day a changed resource would come back in every incremental pull for days.
	MinMaxLag = time.Second
	MaxMaxLag = 24 * time.Hour
)

// DefaultConfig returns the defaults [ha] is decoded over.
func DefaultConfig() Config {
	return Config{Election: DefaultElection, LeaseTTL: confval.Duration(DefaultLeaseTTL), MaxLag: confval.Duration(DefaultMaxLag)}
}

// Enabled reports whether the replicas elect a pusher (etcd_endpoints is set).
func (c *Config) Enabled() bool { return len(c.EtcdEndpoints) > 0 }

// ReplicaLag is the cache's Options.ReplicaLag: max_lag with HA, else 0 (one instance, whose
// lastModified is the time of the write).
func (c *Config) ReplicaLag() time.Duration {
	if !c.Enabled() {
		return 0
	}
	return c.MaxLag.D()
}

// Resolve fills in the defaults that depend on the machine (node: the host name), reads the
// password file and the TLS files. Its errors name the key and the file, never a secret. It
// does nothing when HA is off.
func (c *Config) Resolve() []error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			errs = append(errs, fmt.Errorf("ha.node: empty and the host name is unknown (%v): set it", err))
		}
		c.Node = h
	}
	if c.Password.IsSet() {
		errs = append(errs, errors.New("ha.password: not read from the config; put the password in a file and set ha.password_file"))
	}
	if c.PasswordFile != "" {
		pw, err := confval.LoadSecret(confval.Secret{}, c.PasswordFile, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("ha.password_file: %w", err))
		}
		c.Password = pw
	}
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		t, err := c.buildTLS()
		errs = append(errs, err...)
		c.tls = t
	}
	return errs
}

func (c *Config) buildTLS() (*tls.Config, []error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	var errs []error
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("ha.ca_file: %w", err))
		} else {
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("ha.ca_file: %s holds no PEM certificate", c.CAFile))
			}
		}
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		errs = append(errs, errors.New("ha.cert_file, ha.key_file: set both (a client certificate and its key) or neither"))
	case c.CertFile != "":
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("ha.cert_file, ha.key_file: %w", err))
		} else {
			t.Certificates = []tls.Certificate{pair}
		}
	}
	return t, errs
}

// Validate reports every problem of the section; with no etcd_endpoints it accepts anything
// else, since nothing uses it.
func (c *Config) Validate() []error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("ha.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	https := false
	for i, ep := range c.EtcdEndpoints {
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			add("etcd_endpoints", "[%d] is not an http:// or https:// URL with a host:port", i)
		case u.User != nil:
			add("etcd_endpoints", "[%d]: credentials in the URL are not allowed; set username and password_file", i)
		case u.Port() == "":
			add("etcd_endpoints", "[%d] %s has no port (etcd's is usually 2379)", i, u.Scheme+"://"+u.Hostname())
		case u.Path != "" && u.Path != "/":
			add("etcd_endpoints", "[%d] %s: a member's URL has no path", i, u.Scheme+"://"+u.Host)
		}
		https = https || (err == nil && u.Scheme == "https")
	}
	if !https && (c.CAFile != "" || c.CertFile != "") {
		add("etcd_endpoints", "ca_file or cert_file is set but no endpoint is https://")
	}
	if !strings.HasPrefix(c.Election, "/") || strings.HasSuffix(c.Election, "/") {
		add("election", "%q: want an etcd key prefix that starts with / and does not end with one, like %q", c.Election, DefaultElection)
	}
	ttl := c.LeaseTTL.D()
	switch {
	case ttl < MinLeaseTTL:
		add("lease_ttl", "%s: want at least %s", ttl, MinLeaseTTL)
	case ttl%time.Second != 0:
		add("lease_ttl", "%s: want whole seconds (etcd leases count in seconds)", ttl)
	}
	if lag := c.MaxLag.D(); lag < MinMaxLag || lag > MaxMaxLag {
		add("max_lag", "%s: want between %s and %s", lag, MinMaxLag, MaxMaxLag)
	}
	if strings.ContainsFunc(c.Node, func(r rune) bool { return r < ' ' || r == 0x7f }) || len(c.Node) > 255 {
		add("node", "want a printable name of at most 255 bytes")
	}
	if c.Username == "" && c.Password.IsSet() {
		add("username", "a password is set but no username")
	}
	if c.Username != "" && !c.Password.IsSet() {
		add("password_file", "username is set but no password was given")
	}
	return errs
}

// Warnings returns what works but weakens security: a password sent in clear text.
func (c *Config) Warnings() []string {
	if !c.Enabled() || !c.Password.IsSet() {
		return nil
	}
	for _, ep := range c.EtcdEndpoints {
		if strings.HasPrefix(ep, "http://") {
			return []string{"ha.etcd_endpoints: the etcd password goes to an http:// endpoint in clear text; use https://"}
		}
	}
	return nil
}
