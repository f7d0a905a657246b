package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// A Samba AD DC for tests. Provisioning takes ≈5 s and loading data much longer, so a DC is
// provisioned once per test binary into a template directory and every test gets a `cp -a` copy
// (≈0.1 s). Samba's LDAP port is fixed at 389, so each DC runs in its own network namespace
// (`unshare -n`) and tests reach it through its unix socket DIR/private/ldapi: any number of
// DCs can run at once and none of them is reachable from the network.

// SambaOptions configure a test DC. The zero value is a freshly provisioned, empty domain.
type SambaOptions struct {
	// Template names a populated DC: the first StartSamba with this name in the test binary
	// copies the empty DC, starts it, runs Populate, stops it and keeps the result; later ones
	// copy that. Populate must be deterministic for a name.
	Template string
	Populate func(t testing.TB, s *Samba)
	// PersistDir, with Template, keeps the populated DC under PersistDir/Template across test
	// runs (benchmarks: loading 10k users takes about a minute). It is rebuilt when missing.
	PersistDir string
	// MaxRuntime is samba's --maximum-runtime, a safety net if a test binary dies without
	// cleaning up. Default 30 minutes.
	MaxRuntime time.Duration
}

// Samba is a running DC. Fields are read-only for tests.
type Samba struct {
	URL           string // ldapi://<percent-encoded DIR/private/ldapi>
	BaseDN        string // DC=example,DC=com
	Realm         string // EXAMPLE.COM
	Domain        string // EXAMPLE (NetBIOS)
	AdminDN       string // CN=Administrator,CN=Users,<BaseDN>
	AdminUPN      string // Administrator@EXAMPLE.COM
	AdminPassword string
	Dir           string // the DC's own copy: etc/smb.conf, private/, state/, log/

	maxRuntime time.Duration
	proc       *process // nil when not running
	stderr     *Output
}

const (
	sambaRealm     = "EXAMPLE.COM"
	sambaDomain    = "EXAMPLE"
	sambaBaseDN    = "DC=example,DC=com"
	sambaAdminPass = "Adm1n-Secret-42"
	sambaReady     = 30 * time.Second
)

var sambaTemplates struct {
	mu   sync.Mutex
	root string            // per-process directory holding the templates
	dirs map[string]string // template name ("" = empty DC) → directory
}

// StartSamba starts a DC copied from a template (see SambaOptions) and stops it in t.Cleanup.
// It fails the test, with an install hint, when Samba is missing, and with samba's log when the
// DC does not come up within 30 s.
func StartSamba(t testing.TB, opts SambaOptions) *Samba {
	t.Helper()
	if opts.MaxRuntime == 0 {
		opts.MaxRuntime = 30 * time.Minute
	}
	findSambaTool(t, "samba")
	findSambaTool(t, "unshare")
	tmpl := sambaTemplate(t, opts)
	// A short directory of our own: sun_path holds 108 bytes, and t.TempDir() names can be long.
	dir, err := os.MkdirTemp("", "sdc")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := newSamba(dir, opts.MaxRuntime)
	t.Cleanup(func() {
		s.stop(t)
		os.RemoveAll(dir)
	})
	if err := copyTree(tmpl, dir); err != nil {
		t.Fatalf("testenv: copying the Samba template: %v", err)
	}
	if err := s.writeConfig(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("testenv: samba did not start: %v\n%s", err, s.logs())
	}
	return s
}

func newSamba(dir string, maxRuntime time.Duration) *Samba {
	return &Samba{
		URL:           "ldapi://" + url.PathEscape(filepath.Join(dir, "private", "ldapi")),
		BaseDN:        sambaBaseDN,
		Realm:         sambaRealm,
		Domain:        sambaDomain,
		AdminDN:       "CN=Administrator,CN=Users," + sambaBaseDN,
		AdminUPN:      "Administrator@" + sambaRealm,
		AdminPassword: sambaAdminPass,
		Dir:           dir,
		maxRuntime:    maxRuntime,
	}
}

// sambaTemplate returns the directory of the template opts ask for, building it on first use.
func sambaTemplate(t testing.TB, opts SambaOptions) string {
	t.Helper()
	sambaTemplates.mu.Lock()
	defer sambaTemplates.mu.Unlock()
	if sambaTemplates.dirs == nil {
		sambaTemplates.dirs = map[string]string{}
		root, err := makeTemplateRoot()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		sambaTemplates.root = root
	}
	if d, ok := sambaTemplates.dirs[opts.Template]; ok {
		return d
	}
	if opts.Template == "" {
		d := filepath.Join(sambaTemplates.root, "empty")
		provision(t, d)
		sambaTemplates.dirs[""] = d
		return d
	}
	if opts.Populate == nil {
		t.Fatalf("testenv: Samba template %q has no Populate function", opts.Template)
	}
	var d string
	if opts.PersistDir != "" {
		abs, err := filepath.Abs(filepath.Join(opts.PersistDir, opts.Template))
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		d = abs
		if _, err := os.Stat(filepath.Join(d, ".ready")); err == nil {
			sambaTemplates.dirs[opts.Template] = d
			return d
		}
		os.RemoveAll(d)
	} else {
		d = filepath.Join(sambaTemplates.root, "t-"+strconv.Itoa(len(sambaTemplates.dirs)))
	}
	empty, ok := sambaTemplates.dirs[""]
	if !ok {
		empty = filepath.Join(sambaTemplates.root, "empty")
		provision(t, empty)
		sambaTemplates.dirs[""] = empty
	}
	populate(t, empty, d, opts)
	sambaTemplates.dirs[opts.Template] = d
	return d
}

// makeTemplateRoot creates this process's template directory and removes those of test
// binaries that are gone (a test binary has no hook that runs after its last test).
func makeTemplateRoot() (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "ldapscim-samba-*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "ldapscim-samba-"))
		if err == nil && syscall.Kill(pid, 0) != nil {
			os.RemoveAll(d)
		}
	}
	root := filepath.Join(os.TempDir(), "ldapscim-samba-"+strconv.Itoa(os.Getpid()))
	return root, os.MkdirAll(root, 0o700)
}

// provision creates an empty domain in dir with samba-tool (≈5 s), leaving /etc/samba alone.
func provision(t testing.TB, dir string) {
	t.Helper()
	tool := findSambaTool(t, "samba-tool")
	findSambaTool(t, "samba")
	os.RemoveAll(dir)
	cmd := exec.Command(tool, "domain", "provision", "-s", "/dev/null", "--targetdir="+dir,
		"--realm="+sambaRealm, "--domain="+sambaDomain, "--server-role=dc", "--dns-backend=NONE",
		"--use-rfc2307", "--host-name=dc1", "--adminpass="+sambaAdminPass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: samba-tool domain provision: %v\n%s", err, tail(out, 40))
	}
	for _, sub := range []string{"run", "log", "lock", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// populate builds template dst from src: copy, start, run opts.Populate, stop.
func populate(t testing.TB, src, dst string, opts SambaOptions) {
	t.Helper()
	tmp := dst + ".building"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := copyTree(src, tmp); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := newSamba(tmp, opts.MaxRuntime)
	if err := s.writeConfig(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if len(s.URL) > 100 {
		t.Fatalf("testenv: Samba template path %s is too long for a unix socket", tmp)
	}
	if err := s.start(); err != nil {
		t.Fatalf("testenv: samba did not start: %v\n%s", err, s.logs())
	}
	opts.Populate(t, s)
	s.stop(t)
	if err := os.WriteFile(filepath.Join(tmp, ".ready"), nil, 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// writeConfig writes etc/smb.conf for s.Dir: only the LDAP server, loopback only, simple binds
// over plain LDAP allowed, no TLS, no fsync.
func (s *Samba) writeConfig() error {
	d := s.Dir
	conf := fmt.Sprintf(`[global]
	netbios name = DC1
	realm = %s
	workgroup = %s
	server role = active directory domain controller
	server services = ldap
	interfaces = 127.0.0.1
	bind interfaces only = yes
	ldap server require strong auth = no
	tls enabled = no
	private dir = %s/private
	state directory = %s/state
	cache directory = %s/cache
	lock directory = %s/lock
	pid directory = %s/run
	binddns dir = %s/bind-dns
	log file = %s/log/samba.log
	log level = 0
	ldb:nosync = true
	idmap_ldb:use rfc2307 = yes
`, sambaRealm, sambaDomain, d, d, d, d, d, d, d)
	return os.WriteFile(filepath.Join(d, "etc", "smb.conf"), []byte(conf), 0o600)
}

// start runs samba in the foreground in a new network namespace and waits until its ldapi
// socket answers a rootDSE search.
func (s *Samba) start() error {
	bin, err := findTool("samba")
	if err != nil {
		return err
	}
	unshare, err := findTool("unshare")
	if err != nil {
		return err
	}
	os.Remove(filepath.Join(s.Dir, "private", "ldapi"))
	script := fmt.Sprintf("ip link set lo up 2>/dev/null; exec %s -s %s -M single -F --debug-stdout --maximum-runtime=%d",
		bin, filepath.Join(s.Dir, "etc", "smb.conf"), int(s.maxRuntime.Seconds()))
	// unshare execs sh, and sh execs samba: the PID we hold is samba's.
	cmd := exec.Command(unshare, "-n", "sh", "-c", script)
	s.stderr = &Output{}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited, err := waitReady(cmd, s.ping, sambaReady, 50*time.Millisecond)
	if exited != nil {
		s.proc = &process{cmd: cmd, exited: exited}
	}
	if err != nil && exited == nil {
		err = fmt.Errorf("%w (needs root for unshare -n)", err)
	}
	return err
}

func (s *Samba) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(2 * time.Second)
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 2, false, "(objectClass=*)", []string{"highestCommittedUSN"}, nil))
	return err
}

// Stop stops the DC by PID and waits for it to exit. Data stays in Dir; Restart starts it again.
func (s *Samba) Stop(t testing.TB) {
	t.Helper()
	if !s.stop(t) {
		t.Fatal("testenv: samba is not running")
	}
}

// Restart stops the DC (if it runs) and starts it again with the same data.
func (s *Samba) Restart(t testing.TB) {
	t.Helper()
	s.stop(t)
	if err := s.start(); err != nil {
		t.Fatalf("testenv: samba did not restart: %v\n%s", err, s.logs())
	}
}

func (s *Samba) stop(t testing.TB) bool {
	running := s.proc.stop(t, "samba")
	s.proc = nil
	return running
}

func (s *Samba) logs() string {
	out := ""
	if s.stderr != nil {
		out = s.stderr.String()
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log", "samba.log"))
	return tail([]byte(out+string(b)), 40)
}

// Admin returns a connection bound as Administrator; it is closed in t.Cleanup.
func (s *Samba) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("testenv: dial %s: %v", s.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(time.Minute)
	if err := c.Bind(s.AdminUPN, s.AdminPassword); err != nil {
		t.Fatalf("testenv: bind as %s: %v", s.AdminUPN, err)
	}
	return c
}

func findSambaTool(t testing.TB, name string) string {
	t.Helper()
	p, err := findTool(name)
	if err != nil {
		t.Fatalf("testenv: %s not found: run `make test` (it installs Samba) or `scripts/install-deps.sh samba`", name)
	}
	return p
}

// copyTree copies src to dst with `cp -a` (ldb and tdb files are sparse and memory-mapped;
// cp keeps them as they are).
func copyTree(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

func tail(b []byte, lines int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
