// Package testenv starts real directory servers for tests: a private OpenLDAP slapd per test
// (and a Samba AD DC, a SCIMMY target and a private etcd cluster). Every server lives in t.TempDir(), listens on
// 127.0.0.1 only, and is stopped by PID in t.Cleanup. Only _test.go files may import it.
//
// A missing server binary is a test failure with instructions, never a skip: a gateway whose
// directory tests silently skip in CI is untested.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/sampledata"
)

// SlapdOptions configure a private slapd. The zero value is a usable empty directory with
// dc=example,dc=com, the cn=reader service account and no size/time limits.
type SlapdOptions struct {
	// Suffix is the main database suffix; default "dc=example,dc=com".
	Suffix string
	// DefaultSizeLimit keeps slapd's default 500-entry size limit (it applies to every bind but
	// the rootdn, even with paging) for read-guard tests. False: sizelimit/timelimit unlimited.
	DefaultSizeLimit bool
	// LDIF files are loaded with `slapadd -q` before slapd starts (offline, fast). If the first
	// entry of the first file is not the suffix entry, sampledata.WriteBase's suffix and
	// cn=reader entries are loaded first (files from tools/ldifgen start with both).
	LDIF []string
	// Refint enables the refint overlay for member, uniqueMember and manager, as many production
	// directories do: deleting or renaming an entry rewrites the values that pointed at it
	// (asynchronously, a few milliseconds after the operation returns).
	Refint bool
	// TLS generates a throwaway CA and server certificate, listens on LDAPSURL as well and
	// allows StartTLS on URL.
	TLS bool
	// NoSyncprov leaves the syncprov overlay out, like a directory without RFC 4533 sync: clients
	// must fall back to modifyTimestamp.
	NoSyncprov bool
}

// Slapd is a running private slapd. Fields are read-only for tests.
type Slapd struct {
	URL      string // ldap://127.0.0.1:PORT/
	LDAPIURL string // ldapi://%2F...%2Fldapi (percent-encoded socket path)
	LDAPSURL string // ldaps://127.0.0.1:PORT2/ when TLS is on
	CAFile   string // PEM CA certificate that signed the server certificate, when TLS is on

	BaseDN         string
	RootDN         string // not subject to size limits or ACLs
	RootPassword   string
	ReaderDN       string // cn=reader,<suffix>: read access to the main database and cn=accesslog
	ReaderPassword string

	Dir string // config, data, socket and certificates

	opts     SlapdOptions
	conf     string
	listen   string
	proc     *process // nil when not running
	stderr   *Output
	cleanDir string // socket dir outside Dir when Dir's path is too long for a unix socket
}

const (
	defaultSuffix = "dc=example,dc=com"
	rootPassword  = "rootsecret"
	readyTimeout  = 10 * time.Second
	stopTimeout   = 10 * time.Second
)

// StartSlapd starts a private slapd on free 127.0.0.1 ports in t.TempDir() and stops it in
// t.Cleanup. It fails the test if slapd is not installed, does not start, or is not ready
// within 10 s (with slapd's stderr in the message).
func StartSlapd(t testing.TB, opts SlapdOptions) *Slapd {
	t.Helper()
	if opts.Suffix == "" {
		opts.Suffix = defaultSuffix
	}
	bin := findSlapd(t)
	s := &Slapd{
		BaseDN:         opts.Suffix,
		RootDN:         "cn=admin," + opts.Suffix,
		RootPassword:   rootPassword,
		ReaderDN:       "cn=reader," + opts.Suffix,
		ReaderPassword: sampledata.ReaderPassword,
		Dir:            t.TempDir(),
		opts:           opts,
	}
	t.Cleanup(func() {
		s.stop(t)
		if s.cleanDir != "" {
			os.RemoveAll(s.cleanDir)
		}
	})
	s.setupDirs(t)
	if opts.TLS {
		s.writeCerts(t)
	}
	s.writeConfig(t)
	s.load(t, bin)
	// A port picked free can be taken by someone else before slapd binds it; retry on new ones.
	for attempt := 1; ; attempt++ {
		s.pickPorts(t)
		err := s.start(bin)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.stderr.String(), "Address already in use") {
			t.Fatalf("testenv: slapd did not start: %v\nslapd stderr:\n%s", err, s.stderr.String())
		}
	}
	return s
}

// Stop sends SIGTERM to slapd and waits for it to exit (7–17 ms here). Data stays in Dir.
func (s *Slapd) Stop(t testing.TB) {
	t.Helper()
	if !s.stop(t) {
		t.Fatalf("testenv: slapd is not running")
	}
}

// Restart stops slapd and starts it again on the same ports with the same data. syncprov's
// in-memory session log is lost, so syncrepl clients get a present phase afterwards.
func (s *Slapd) Restart(t testing.TB) {
	t.Helper()
	s.stop(t)
	if err := s.start(findSlapd(t)); err != nil {
		t.Fatalf("testenv: slapd did not restart: %v\nslapd stderr:\n%s", err, s.stderr.String())
	}
}

func findSlapd(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("slapd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/slapd"); err == nil {
		return "/usr/sbin/slapd"
	}
	t.Fatalf("slapd not found: run `make test` (it installs it) or `scripts/install-deps.sh ldap`")
	return ""
}

func (s *Slapd) setupDirs(t testing.TB) {
	t.Helper()
	for _, d := range []string{"data", "accesslog"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	sock := filepath.Join(s.Dir, "ldapi")
	// sun_path holds 108 bytes; t.TempDir() under a long TMPDIR can exceed it.
	if len(sock) > 100 {
		d, err := os.MkdirTemp("/tmp", "slapd")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		s.cleanDir = d
		sock = filepath.Join(d, "ldapi")
	}
	s.LDAPIURL = "ldapi://" + url.PathEscape(sock) // PathEscape encodes "/" as %2F
}

func (s *Slapd) pickPorts(t testing.TB) {
	t.Helper()
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d/", freePort(t))
	s.listen = s.URL + " " + s.LDAPIURL
	if s.opts.TLS {
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d/", freePort(t))
		s.listen += " " + s.LDAPSURL
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs slapd in the foreground (-d 0) and waits until a rootDSE search answers.
func (s *Slapd) start(bin string) error {
	s.stderr = &Output{}
	// -d keeps slapd in the foreground; level "none" still prints errors such as
	// "bind(6) failed errno=98 (Address already in use)", which -d 0 swallows.
	cmd := exec.Command(bin, "-f", s.conf, "-h", s.listen, "-d", "none")
	cmd.Dir = s.Dir
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited, err := waitReady(cmd, s.ping, readyTimeout, 20*time.Millisecond)
	if exited != nil {
		s.proc = &process{cmd: cmd, exited: exited}
	}
	return err
}

func (s *Slapd) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(time.Second)
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 1, false, "(objectClass=*)", []string{"namingContexts"}, nil))
	return err
}

// stop terminates slapd by PID and reports whether it was running.
func (s *Slapd) stop(t testing.TB) bool {
	running := s.proc.stop(t, "slapd")
	s.proc = nil
	return running
}

func (s *Slapd) kill() {
	s.proc.kill()
	s.proc = nil
}

var errNoTool = errors.New("not found on PATH or in /usr/bin, /usr/sbin: run `scripts/install-deps.sh ldap`")

func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s %w", name, errNoTool)
}
