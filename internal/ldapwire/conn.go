package ldapwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/redact"
)

// DialOptions says where and how to connect.
type DialOptions struct {
	// URL is ldap://host[:port], ldaps://host[:port] or
	// ldapi://%2Fpath%2Fto%2Fsocket (the socket path percent-encoded in the
	// host, RFC 4516 style).
	URL string
	// TLSConfig is used for ldaps and StartTLS. The caller builds it (CA
	// file, ServerName, InsecureSkipVerify only when the admin opted out);
	// an empty ServerName is filled in from the URL host.
	TLSConfig *tls.Config
	// StartTLS upgrades an ldap:// (or ldapi://) connection before use.
	StartTLS bool
	// Timeout bounds the dial and TLS handshake, and how long a read or
	// write may wait for the server; 0 means no limit. It is an idle
	// timeout: a long search is fine as long as bytes keep arriving.
	Timeout time.Duration
}

// Conn is one LDAP connection. It runs one operation at a time and is not
// safe for concurrent use. After a network or protocol error, or a cancelled
// context, it is closed and every later call returns an error.
type Conn struct {
	conn    net.Conn
	rd      msgReader
	timeout time.Duration
	msgID   int32
	broken  error // set once the connection is unusable
	// inflight is the ID of the search being read, for the Abandon sent
	// when its context is cancelled.
	inflight int32
	entry    Entry // reused for every SearchResultEntry

	// mu makes "cancel: set a past deadline" and "before a read: push the
	// deadline forward" atomic with respect to each other, so a cancel is
	// never overwritten by the next read's idle deadline.
	mu          sync.Mutex
	interrupted bool
}

// Dial connects, performs StartTLS when asked, and returns a Conn ready for
// Bind. Errors are *ldap.Error with ResultCode ldap.ErrorNetwork, or the
// server's result code for a refused StartTLS.
func Dial(ctx context.Context, o DialOptions) (*Conn, error) {
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	nc, err := dial(ctx, u, o)
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("ldapwire: dial %s: %w", redact.URL(o.URL), err))
	}
	c := &Conn{conn: nc, timeout: o.Timeout}
	c.rd.br = bufio.NewReaderSize(deadlineReader{c}, readBufferSize)
	if o.StartTLS {
		if u.scheme == "ldaps" {
			c.Close()
			return nil, ldap.NewError(ldap.ErrorNetwork, errors.New("ldapwire: StartTLS on an ldaps:// connection"))
		}
		if err := c.startTLS(ctx, tlsConfig(o.TLSConfig, u.host)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// ldapURL is the part of an LDAP URL that Dial needs.
type ldapURL struct {
	scheme string
	addr   string // host:port, or the socket path for ldapi
	host   string // host name for TLS verification
}

// parseURL parses the URL by hand for ldapi: net/url rejects %2F in a host.
func parseURL(raw string) (ldapURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ldapURL{}, fmt.Errorf("ldapwire: URL %q has no scheme", raw)
	}
	scheme = strings.ToLower(scheme)
	hostport, _, _ := strings.Cut(rest, "/")
	switch scheme {
	case "ldapi":
		path, err := url.PathUnescape(hostport)
		if err != nil || path == "" {
			return ldapURL{}, fmt.Errorf("ldapwire: ldapi URL %q needs a percent-encoded socket path", raw)
		}
		return ldapURL{scheme: scheme, addr: path, host: "localhost"}, nil
	case "ldap", "ldaps":
		u, err := url.Parse(raw)
		if err != nil {
			return ldapURL{}, fmt.Errorf("ldapwire: %w", err)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"ldap": "389", "ldaps": "636"}[scheme]
		}
		return ldapURL{scheme: scheme, addr: net.JoinHostPort(u.Hostname(), port), host: u.Hostname()}, nil
	}
	return ldapURL{}, fmt.Errorf("ldapwire: unsupported URL scheme %q", scheme)
}

func dial(ctx context.Context, u ldapURL, o DialOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.Timeout}
	switch u.scheme {
	case "ldapi":
		return d.DialContext(ctx, "unix", u.addr)
	case "ldaps":
		td := &tls.Dialer{NetDialer: d, Config: tlsConfig(o.TLSConfig, u.host)}
		return td.DialContext(ctx, "tcp", u.addr)
	}
	return d.DialContext(ctx, "tcp", u.addr)
}

// tlsConfig fills in ServerName without modifying the caller's config.
func tlsConfig(cfg *tls.Config, host string) *tls.Config {
	if cfg == nil {
		return &tls.Config{ServerName: host}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	return cfg
}

// startTLS sends the StartTLS extended request and wraps the connection.
func (c *Conn) startTLS(ctx context.Context, cfg *tls.Config) error {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "")
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", ""))
	r, err := c.roundTrip(ctx, req, tagExtendedResponse)
	if err != nil {
		return err
	}
	if err := r.err("StartTLS"); err != nil {
		return err
	}
	if c.rd.br.Buffered() > c.rd.pending {
		return c.fail(ctx, errors.New("StartTLS: server sent data before the TLS handshake"))
	}
	tc := tls.Client(c.conn, cfg)
	hctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if err := tc.HandshakeContext(hctx); err != nil {
		return c.fail(ctx, fmt.Errorf("StartTLS handshake: %w", err))
	}
	c.conn = tc
	c.rd = msgReader{br: bufio.NewReaderSize(deadlineReader{c}, readBufferSize)}
	return nil
}

// Bind performs a simple bind. An empty password is refused locally (it
// would be an unauthenticated bind that "succeeds" without checking
// anything). A rejected bind is an *ldap.Error, e.g. code 49
// (ldap.LDAPResultInvalidCredentials).
func (c *Conn) Bind(ctx context.Context, dn, password string) error {
	if password == "" {
		return ldap.NewError(ldap.ErrorEmptyPassword, errors.New("ldapwire: bind with an empty password"))
	}
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(3), ""))
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, password, ""))
	r, err := c.roundTrip(ctx, req, tagBindResponse)
	if err != nil {
		return err
	}
	return r.err("bind")
}

// roundTrip sends a request expecting exactly one response with tag want.
func (c *Conn) roundTrip(ctx context.Context, op *ber.Packet, want byte) (result, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return result{}, err
	}
	defer end()
	id, err := c.send(ctx, op, nil)
	if err != nil {
		return result{}, err
	}
	m, err := c.read(ctx, id)
	if err != nil {
		return result{}, err
	}
	if m.op != want {
		return result{}, c.fail(ctx, malformed(fmt.Sprintf("unexpected response tag 0x%02x", m.op)))
	}
	r, _, err := decodeResult(m.body)
	if err != nil {
		return result{}, c.fail(ctx, malformed("LDAPResult"))
	}
	return r, nil
}

// Close sends an UnbindRequest (best effort) and closes the connection.
func (c *Conn) Close() error {
	if c.broken != nil {
		return nil
	}
	c.broken = ldap.NewError(ldap.ErrorNetwork, errors.New("ldapwire: connection closed"))
	c.nextID()
	env := envelope(c.msgID, ber.Encode(ber.ClassApplication, ber.TypePrimitive, ldap.ApplicationUnbindRequest, nil, ""), nil)
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.conn.Write(env.Bytes())
	return c.conn.Close()
}

// begin checks the Conn is usable and arms ctx: cancelling it interrupts any
// blocked read or write by moving the deadline into the past. The returned
// end disarms it; if the cancel raced with a successful finish, end restores
// the deadline so the Conn stays usable.
func (c *Conn) begin(ctx context.Context) (end func(), err error) {
	if c.broken != nil {
		return nil, c.broken
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.interrupted = true
		_ = c.conn.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		if stop() {
			return
		}
		<-fired
		c.mu.Lock()
		defer c.mu.Unlock()
		c.interrupted = false
		if c.broken == nil {
			_ = c.conn.SetDeadline(time.Time{})
		}
	}, nil
}

// deadlineReader is the Conn's byte source: it pushes the idle deadline
// forward before every read syscall (once per buffer fill, not per message).
type deadlineReader struct{ c *Conn }

func (d deadlineReader) Read(p []byte) (int, error) {
	c := d.c
	if c.timeout > 0 {
		c.mu.Lock()
		if !c.interrupted {
			_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
		}
		c.mu.Unlock()
	}
	return c.conn.Read(p)
}

func (c *Conn) nextID() int32 {
	c.msgID++
	if c.msgID <= 0 { // wrap within MessageID ::= INTEGER (0 .. maxInt), 0 is reserved
		c.msgID = 1
	}
	return c.msgID
}

// envelope wraps a protocolOp (and optional controls) in an LDAPMessage.
func envelope(id int32, op *ber.Packet, controls []ldap.Control) *ber.Packet {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(id), ""))
	env.AppendChild(op)
	if len(controls) > 0 {
		cp := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
		for _, ctrl := range controls {
			cp.AppendChild(ctrl.Encode())
		}
		env.AppendChild(cp)
	}
	return env
}

// send writes one request and returns its message ID.
func (c *Conn) send(ctx context.Context, op *ber.Packet, controls []ldap.Control) (int32, error) {
	id := c.nextID()
	b := envelope(id, op, controls).Bytes()
	if c.timeout > 0 {
		c.mu.Lock()
		if !c.interrupted {
			_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
		}
		c.mu.Unlock()
	}
	if _, err := c.conn.Write(b); err != nil {
		return 0, c.fail(ctx, fmt.Errorf("write: %w", err))
	}
	return id, nil
}

// read returns the next message, which must belong to operation id. A Notice
// of Disconnection (unsolicited, ID 0) becomes the server's error.
func (c *Conn) read(ctx context.Context, id int32) (message, error) {
	b, err := c.rd.next()
	if err != nil {
		return message{}, c.fail(ctx, err)
	}
	m, err := parseMessage(b)
	if err != nil {
		return m, c.fail(ctx, malformed("LDAPMessage envelope"))
	}
	if m.id == id {
		return m, nil
	}
	if m.id == 0 && m.op == tagExtendedResponse {
		r, _, derr := decodeResult(m.body)
		if derr == nil && r.code != 0 {
			return m, c.fail(ctx, r.err("server notice of disconnection"))
		}
	}
	return m, c.fail(ctx, malformed(fmt.Sprintf("response for message %d while waiting for %d", m.id, id)))
}

// fail closes the connection after an unrecoverable error and returns the
// error for the caller: the context's error if it was cancelled, an
// *ldap.Error (server result or ErrorNetwork) otherwise.
func (c *Conn) fail(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("ldapwire: operation aborted: %w", ctxErr)
		if c.inflight != 0 {
			c.abandon(c.inflight)
		}
	} else if _, ok := errors.AsType[*ldap.Error](err); !ok {
		err = ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("ldapwire: %w", err))
	}
	if c.broken == nil {
		c.broken = ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("ldapwire: connection closed after an earlier error: %w", err))
		_ = c.conn.Close()
	}
	return err
}

// abandon tells the server to stop sending results for id. Best effort: the
// connection is about to be closed anyway, which also stops slapd and AD.
func (c *Conn) abandon(id int32) {
	if c.broken != nil {
		return
	}
	op := ber.NewInteger(ber.ClassApplication, ber.TypePrimitive, ldap.ApplicationAbandonRequest, int64(id), "")
	c.mu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	c.mu.Unlock()
	_, _ = c.conn.Write(envelope(c.nextID(), op, nil).Bytes())
}
