package cache

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
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
