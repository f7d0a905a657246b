package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// Badger's warnings reach the log, except the block-cache histogram it prints during any big
// write with caches as small as ours, which goes to debug.
func TestBadgerWarningsAreLoggedButNotTheCacheHistogram(t *testing.T) {
	var buf bytes.Buffer
	a := slogAdapter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	a.Warningf("Cache life expectancy (in seconds): \n -- Histogram: \nMin value: 0\n")
	a.Warningf("Block cache might be too small. Metrics: hit: 82533 miss: 2806566")
	a.Warningf("Value log GC attempt %d failed", 3)
	out := buf.String()
	if strings.Contains(out, "Cache life expectancy") || strings.Contains(out, "Block cache") || !strings.Contains(out, "level=WARN msg=\"Value log GC attempt 3 failed\"") {
		t.Fatalf("log:\n%s", out)
	}
}

// A cache another process (here: another Store) holds is ErrLocked, so the CLI can say that
// `serve` has it without reading Badger's message.
func TestOpenTwiceIsErrLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

// A kill while Badger created a memtable file leaves it empty, and Badger refuses the
// directory; Open removes the empty file and opens the cache with its data.
func TestOpenAfterACrashLeftAnEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Batch{Upserts: users(0, 3)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00009.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	defer s.Close()
	if n, err := s.Count(context.Background(), scim.UserType); err != nil || n != 3 {
		t.Fatalf("%d users (%v), want 3", n, err)
	}
}
