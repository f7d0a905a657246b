package packaging

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// testVersion marks packages this test built: a leftover one from a killed run is purged,
	// any other installed ldapscim is left alone and fails the test.
	testVersion = "v0.0.0-pkgtest"
	// lockPath serializes the install-check-purge of parallel runs on one machine (CI and
	// developers share it): they all install the one package name.
	lockPath = "/tmp/ldapscim-deb-test.lock"

	unit    = "/lib/systemd/system/ldapscim.service"
	conf    = "/etc/ldapscim/config.toml"
	binary  = "/usr/bin/ldapscim"
	dataDir = "/var/lib/ldapscim"
)

// TestDebianPackage builds the .deb, installs it, checks the installation, removes and purges it.
func TestDebianPackage(t *testing.T) {
	requireTools(t)
	lock(t)
	purgeLeftover(t)

	deb := buildDeb(t)
	t.Cleanup(func() { // whatever failed: leave no package behind
		if out, err := dpkg("--purge", "ldapscim"); err != nil {
			t.Errorf("cleanup: dpkg --purge ldapscim: %v\n%s", err, out)
		}
	})
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", deb, err, out)
	}

	// Installing over itself runs the upgrade path of the maintainer scripts (postinst
	// configure with the old version); the checks below then hold after both.
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("dpkg -i %s over itself: %v\n%s", deb, err, out)
	}

	uid, gid := checkUser(t)
	checkFile(t, binary, 0o755, 0, 0)
	checkFile(t, unit, 0o644, 0, 0)
	checkFile(t, "/etc/ldapscim", 0o755|os.ModeDir, 0, 0)
	checkFile(t, conf, 0o640, 0, gid)
	checkFile(t, dataDir, 0o750|os.ModeDir, uid, gid)
	if out := query(t, "${Conffiles}"); !strings.Contains(out, conf+" ") {
		t.Errorf("%s is not a conffile; dpkg lists: %q", conf, out)
	}
	if b, err := os.ReadFile(conf); err != nil || !regexp.MustCompile(`(?m)^\[cache\]\n(#.*\n)*dir = "/var/lib/ldapscim"$`).Match(b) {
		t.Errorf("%s: [cache] dir is not /var/lib/ldapscim (%v)", conf, err)
	}
	checkBinary(t)
	checkUnit(t)

	// As the service runs it: the config must be readable by the ldapscim user alone.
	out, err := exec.Command("runuser", "-u", "ldapscim", "--", binary, "check-config", "--config", conf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), conf+" is valid") {
		t.Errorf("check-config as the ldapscim user: %v\n%s", err, out)
	}

	// remove keeps the config and the cache; purge deletes both, and systemd's state of the unit.
	if err := os.WriteFile(filepath.Join(dataDir, "cache-file"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := dpkg("--remove", "ldapscim"); err != nil {
		t.Fatalf("dpkg --remove: %v\n%s", err, out)
	}
	for _, p := range []string{binary, unit} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after remove %s is still there (%v)", p, err)
		}
	}
	for _, p := range []string{conf, filepath.Join(dataDir, "cache-file")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("remove must keep %s: %v", p, err)
		}
	}
	if out, err := dpkg("--purge", "ldapscim"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	for _, p := range []string{"/etc/ldapscim", dataDir, "/etc/systemd/system/ldapscim.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/ldapscim.service.dsh-also"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after purge %s is still there (%v)", p, err)
		}
	}
	if st := status(t); st != "" {
		t.Errorf("after purge dpkg still knows ldapscim: %q", st)
	}
}

// requireTools fails, saying how to fix it, when the test cannot run here.
func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the Debian package test installs and purges ldapscim with dpkg, so it must run as root: " +
			"`sudo make test`, or `sudo env PATH=$PATH go test ./packaging/` for this test alone")
	}
	for _, tp := range [][2]string{{"dpkg", "dpkg"}, {"dpkg-deb", "dpkg"}, {"dpkg-query", "dpkg"}, {"adduser", "adduser"},
		{"systemd-analyze", "systemd"}, {"file", "file"}, {"ldd", "libc-bin"}, {"runuser", "util-linux"}} {
		tool, pkg := tp[0], tp[1]
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the Debian package test needs %s, which is not on PATH: it runs on Debian or Ubuntu; "+
				"`scripts/install-deps.sh deb` (or apt-get install %s) installs it", tool, pkg)
		}
	}
}

// lock takes lockPath until the test ends; cleanups registered later (the purge) run first.
func lock(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("locking %s: %v", lockPath, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// purgeLeftover purges an ldapscim this test installed in a run that was killed; any other
// installed ldapscim is a real one and fails the test instead of being replaced.
func purgeLeftover(t *testing.T) {
	t.Helper()
	st := status(t)
	if st == "" {
		return
	}
	if !strings.Contains(st, "pkgtest") {
		t.Fatalf("ldapscim is already installed on this machine (%s); the package test would replace it: "+
			"run the test elsewhere, or `dpkg --purge ldapscim` first", st)
	}
	t.Logf("purging a leftover test package (%s)", st)
	if out, err := dpkg("--purge", "ldapscim"); err != nil {
		t.Fatalf("purging the leftover test package: %v\n%s", err, out)
	}
}

// status is dpkg's "status version" of ldapscim, "" when dpkg knows no such package.
func status(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "ldapscim").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return ""
	}
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "not-installed" && !strings.HasPrefix(s, "not-installed ") {
		return s
	}
	return ""
}

func query(t *testing.T, format string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f="+format, "ldapscim").Output()
	if err != nil {
		t.Fatalf("dpkg-query %s: %v", format, err)
	}
	return string(out)
}

// dpkgLocked matches dpkg's complaints that another dpkg or apt runs.
var dpkgLocked = regexp.MustCompile(`locked by another process|unable to lock|database is locked`)

// dpkg runs dpkg, waiting while another dpkg or apt holds dpkg's lock (another run's
// install-deps.sh): dpkg itself fails at once then.
func dpkg(args ...string) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil || !dpkgLocked.Match(out) || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(2 * time.Second)
	}
}

// buildDeb runs scripts/build-deb.sh into a directory of this test's own.
func buildDeb(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("../scripts/build-deb.sh", t.TempDir())
	cmd.Env = append(os.Environ(), "VERSION="+testVersion, "COMMIT=0123456789ab")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/build-deb.sh: %v\n%s", err, stderr.String())
	}
	deb := strings.TrimSpace(string(out))
	if want := "ldapscim_0.0.0+pkgtest_amd64.deb"; filepath.Base(deb) != want {
		t.Fatalf("build-deb.sh wrote %q, want %s", deb, want)
	}
	return deb
}

// checkUser checks the ldapscim system user and group, and returns their ids.
func checkUser(t *testing.T) (uid, gid uint32) {
	t.Helper()
	out, err := exec.Command("getent", "passwd", "ldapscim").Output()
	if err != nil {
		t.Fatalf("no ldapscim user after install: %v", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(f) != 7 {
		t.Fatalf("getent passwd ldapscim: %q", out)
	}
	u, _ := strconv.ParseUint(f[2], 10, 32)
	g, _ := strconv.ParseUint(f[3], 10, 32)
	// adduser --system takes ids from FIRST_SYSTEM_UID..LAST_SYSTEM_UID, 100..999 by default.
	if u == 0 || u >= 1000 {
		t.Errorf("ldapscim has uid %d, not a system user's", u)
	}
	if f[6] != "/usr/sbin/nologin" && f[6] != "/bin/false" {
		t.Errorf("ldapscim has the login shell %q", f[6])
	}
	if f[5] != dataDir {
		t.Errorf("ldapscim's home is %q, want %s", f[5], dataDir)
	}
	grp, err := user.LookupGroupId(f[3])
	if err != nil || grp.Name != "ldapscim" {
		t.Errorf("ldapscim's primary group %s is not the ldapscim group: %v %v", f[3], grp, err)
	}
	if out, err := exec.Command("passwd", "-S", "ldapscim").Output(); err == nil {
		if s := strings.Fields(string(out)); len(s) > 1 && s[1] == "P" {
			t.Error("ldapscim has a usable password")
		}
	}
	return uint32(u), uint32(g)
}

func checkFile(t *testing.T, path string, mode os.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("after install: %v", err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

// checkBinary runs the installed binary and checks it is static (the image's is built alike).
func checkBinary(t *testing.T) {
	t.Helper()
	out, err := exec.Command(binary, "version").Output()
	if want := "ldapscim " + testVersion + " (commit 0123456789ab, go"; err != nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("%s version: %v %q, want it to start with %q", binary, err, out, want)
	}
	out, err = exec.Command("file", "-L", binary).Output()
	if err != nil || !strings.Contains(string(out), "statically linked") {
		t.Errorf("file %s: %v %s (want statically linked)", binary, err, out)
	}
	out, err = exec.Command("ldd", binary).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a dynamic executable") {
		t.Errorf("ldd %s: %v %s (want not a dynamic executable)", binary, err, out)
	}
}

// checkUnit verifies the installed unit offline: systemd-analyze needs no running systemd
// (PID 1 here may be anything), and checks the directives, the ExecStart binaries and the user.
func checkUnit(t *testing.T) {
	t.Helper()
	pid1, _ := os.ReadFile("/proc/1/comm")
	t.Logf("PID 1 is %s", bytes.TrimSpace(pid1))
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	// The sandbox as systemd scores it (0 = locked down, 10 = exposed); 1.6 when written.
	out, err = exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for ldapscim\.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", unit, err, out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.0 {
		t.Errorf("the unit's exposure level is %.1f, want at most 2.0:\n%s", score, out)
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"User=ldapscim", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"PrivateDevices=yes", "NoNewPrivileges=yes", "StateDirectory=ldapscim", "CapabilityBoundingSet=\n",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
		"Restart=on-failure", "ExecStart=" + binary + " serve --config " + conf} {
		if !bytes.Contains(b, []byte("\n"+d)) {
			t.Errorf("%s lacks %s", unit, strings.TrimSpace(d))
		}
	}
}
