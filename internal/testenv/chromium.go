package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Chromium is Debian's headless Chromium, for tests of pages served on localhost. Each call
// starts a fresh browser with its own empty profile and no network access beyond the page.
type Chromium struct {
	bin string
}

// chromiumTimeout bounds one page load.
const chromiumTimeout = 60 * time.Second

// FindChromium returns the browser, or fails the test with an install hint. LDAPSCIM_CHROMIUM
// names another binary.
func FindChromium(t testing.TB) *Chromium {
	t.Helper()
	if p := os.Getenv("LDAPSCIM_CHROMIUM"); p != "" {
		return &Chromium{bin: p}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return &Chromium{bin: p}
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return &Chromium{bin: "/usr/bin/chromium"}
	}
	t.Fatalf("chromium not found: run `make test` (it installs it) or `scripts/install-deps.sh chromium`")
	return nil
}

// args are the flags every run gets: headless, no sandbox (tests run as root), and nothing
// that reaches out to Google's services, which a closed network refuses many times a second.
func (c *Chromium) args(t testing.TB) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
}

func (c *Chromium) run(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append(c.args(t), args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr Output
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// DumpDOM loads url and returns the DOM as Chromium serializes it after the page loaded.
func (c *Chromium) DumpDOM(t testing.TB, url string) string {
	t.Helper()
	return string(c.run(t, "--dump-dom", url))
}

// Screenshot loads url in a width×height window and writes a PNG to path.
func (c *Chromium) Screenshot(t testing.TB, url, path string, width, height int) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	c.run(t, "--screenshot="+abs, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), url)
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		t.Fatalf("chromium wrote no screenshot to %s: %v", abs, err)
	}
}
