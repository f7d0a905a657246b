package ldapsync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/redact"
)

// ldapConn is the part of go-ldap's client a pass uses (the consumer declares what it calls, no more).
type ldapConn interface {
	Search(req *ldap.SearchRequest) (*ldap.SearchResult, error)
	SearchAsync(ctx context.Context, req *ldap.SearchRequest, bufferSize int) ldap.Response
	Syncrepl(ctx context.Context, req *ldap.SearchRequest, bufferSize int, mode ldap.ControlSyncRequestMode, cookie []byte, reloadHint bool) ldap.Response
	Close() error
}

// tlsConfig builds the TLS settings for ldaps:// and StartTLS: the system roots plus ca_file,
// and certificate verification unless the admin set insecure_skip_verify.
func (c *Config) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify}
	if u, err := url.Parse(c.URL); err == nil {
		cfg.ServerName = u.Hostname()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// dial connects and binds with go-ldap. Each pass dials afresh, so a connection dropped in one
// pass is simply re-made by the next.
func (s *Syncer) dial(ctx context.Context) (ldapConn, error) {
	tlsCfg, err := s.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: s.cfg.Timeout.D()}
	conn, err := ldap.DialURL(s.cfg.URL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w%s", redactURL(s.cfg.URL), err, tlsHint(s.cfg.URL, err))
	}
	conn.SetTimeout(s.cfg.Timeout.D())
	if s.cfg.StartTLS {
		if err := conn.StartTLS(tlsCfg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", redactURL(s.cfg.URL), err)
		}
	}
	switch {
	case s.cfg.BindDN != "":
		err = conn.Bind(s.cfg.BindDN, s.cfg.BindPassword.Reveal())
	case strings.HasPrefix(s.cfg.URL, "ldapi:"):
		err = conn.ExternalBind()
	}
	if err != nil {
		conn.Close()
		return nil, bindError(s.cfg.BindDN, err)
	}
	if ctx.Err() != nil {
		conn.Close()
		return nil, ctx.Err()
	}
	return conn, nil
}

// bindError describes a failed bind; for wrong credentials it says where the password comes from.
func bindError(bindDN string, err error) error {
	msg := strings.TrimSuffix(err.Error(), ": ") // go-ldap ends with ": " when the server adds nothing
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		msg += " (check ldap.bind_dn, and the password in ldap.bind_password_file, $LDAPSCIM_LDAP_BIND_PASSWORD or ldap.bind_password)"
	}
	return &wrapped{msg: fmt.Sprintf("binding as %q: %s", bindDN, msg), err: err}
}

// wrapped is an error with its own text that still unwraps to the original.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// tlsHint explains the usual cause of an ldaps:// connection the server closes at once: the
// port speaks plain LDAP (389, not 636).
func tlsHint(rawURL string, err error) string {
	if strings.HasPrefix(strings.ToLower(rawURL), "ldaps:") && errors.Is(err, io.EOF) {
		return " (the server closed the TLS handshake: is this port plain ldap://, or does it want StartTLS?)"
	}
	return ""
}

// redactURL hides any userinfo and query values of an LDAP URL before it goes into an error, a
// log or the status data.
func redactURL(raw string) string { return redact.URL(raw) }

// ldapEntry adapts go-ldap's entry to attrGetter.
type ldapEntry struct{ *ldap.Entry }

func (e ldapEntry) Get(name string) [][]byte { return e.GetEqualFoldRawAttributeValues(name) }

// errPartial marks a read that did not see everything: a size or time limit, a missing paging
// cookie, a referral, a dropped connection. Such a read never deletes (invariant 4, docs/architecture.md).
var errPartial = errors.New("partial read")

// partialError says why a read was partial.
type partialError struct{ why string }

func (e *partialError) Error() string        { return "partial read: " + e.why }
func (e *partialError) Is(target error) bool { return target == errPartial }

// pagedSearch streams every entry of req through fn with the RFC 2696 paged-results control,
// page by page, with an idle timeout between messages. It returns a *partialError for anything
// short of a complete result.
func (s *Syncer) pagedSearch(ctx context.Context, conn ldapConn, req *ldap.SearchRequest, fn func(e *ldap.Entry) error) error {
	paging := ldap.NewControlPaging(uint32(s.cfg.PageSize))
	base := req.Controls
	for {
		req.Controls = append(append([]ldap.Control{}, base...), paging)
		var done []ldap.Control
		err := s.stream(ctx, conn.SearchAsync, req, func(resp ldap.Response) error {
			if e := resp.Entry(); e != nil {
				return fn(e)
			}
			if ref := resp.Referral(); ref != "" {
				return &partialError{why: "the server returned a referral to " + ref}
			}
			done = resp.Controls()
			return nil
		})
		if err != nil {
			return err
		}
		pc, _ := ldap.FindControl(done, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if pc == nil {
			return &partialError{why: "the server ended a paged search without a paging control"}
		}
		if len(pc.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(pc.Cookie)
	}
}

type asyncSearch func(ctx context.Context, req *ldap.SearchRequest, bufferSize int) ldap.Response

// stream runs one asynchronous search and hands every response to fn. It cancels the search
// when no message arrives for the configured timeout, and turns everything that is not a
// complete, successful result into an error: go-ldap reports cancellation as success.
func (s *Syncer) stream(ctx context.Context, start asyncSearch, req *ldap.SearchRequest, fn func(ldap.Response) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(s.cfg.Timeout.D(), func() {
		cancel(&partialError{why: fmt.Sprintf("no answer from the server for %s", s.cfg.Timeout.D())})
	})
	defer idle.Stop()
	resp := start(ctx, req, 64)
	for resp.Next() {
		idle.Reset(s.cfg.Timeout.D())
		if err := fn(resp); err != nil {
			cancel(err)
			drain(resp)
			return err
		}
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if err := resp.Err(); err != nil {
		return classify(err)
	}
	return nil
}

func drain(resp ldap.Response) {
	for resp.Next() {
	}
}

// classify turns LDAP errors that mean "you did not see everything" into partial reads.
func classify(err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return &partialError{why: err.Error()}
	}
	switch le.ResultCode {
	case ldap.LDAPResultSizeLimitExceeded:
		return &partialError{why: "the server's size limit was reached (raise it for the bind account, e.g. slapd `limits ... size=unlimited`)"}
	case ldap.LDAPResultTimeLimitExceeded:
		return &partialError{why: "the server's time limit was reached"}
	case ldap.LDAPResultReferral:
		return &partialError{why: "the server answered with a referral"}
	case ldap.LDAPResultAdminLimitExceeded:
		return &partialError{why: "the server's administrative limit was reached"}
	case ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultServerDown, ldap.LDAPResultTimeout:
		return &partialError{why: "the connection failed: " + le.Error()}
	}
	return err
}
