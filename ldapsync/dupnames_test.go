package ldapsync_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// syncBuffer is a bytes.Buffer a logger may write to from the applier goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeDupLDIF writes n users in ou=people and, in ou=former, a second "u00001" (written by the
// pass in a later batch than the first) and a "Twin" beside the "twin" in ou=people (both written in one batch).
func writeDupLDIF(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dup.ldif")
	var b strings.Builder
	for _, ou := range []string{"people", "groups", "former"} {
		fmt.Fprintf(&b, "dn: ou=%s,dc=example,dc=com\nobjectClass: organizationalUnit\nou: %s\n\n", ou, ou)
	}
	user := func(uid, ou, cn string) {
		fmt.Fprintf(&b, "dn: uid=%s,ou=%s,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: x\n\n", uid, ou, uid, cn)
	}
	for i := range n {
		user(fmt.Sprintf("u%05d", i), "people", fmt.Sprintf("User %05d", i))
	}
	user("u00001", "former", "Another User 1")
	user("Twin", "former", "Twin One")
	user("twin", "people", "Twin Two")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The same uid in two OUs gives two users with one userName. A pass that writes them counts
// them in its summary and warns with a bounded sample of the names; a pass that writes neither
// says nothing.
func TestDuplicateUserNamesAreCountedAndWarned(t *testing.T) {
	const n = 2500 // more than one flush, so both the applier and the final batch are checked
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeDupLDIF(t, n)}}, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.Users.BaseDN = "dc=example,dc=com"
	})
	var logs syncBuffer
	s, err := ldapsync.New(e.cfg, e.safe, e.store, ldapsync.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.SyncFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := e.store.Lookup(context.Background(), cache.IndexUserName, "u00001")
	if err != nil || len(ids) != 2 {
		t.Fatalf("u00001: ids %v, err %v: the directory has two", ids, err)
	}
	// u00001 is counted once (its first copy was written in an earlier batch, before the
	// second existed); both twins are written in the last batch, so both see the other.
	if sum.DuplicateUserNames != 3 {
		t.Errorf("summary counts %d users with a duplicate userName, want 3: %+v", sum.DuplicateUserNames, sum)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "share their userName") ||
		!strings.Contains(out, "u00001") || !strings.Contains(strings.ToLower(out), "twin") || !strings.Contains(out, "users=3") {
		t.Errorf("no warning naming the duplicates:\n%s", lastLines(out, 5))
	}

	// Nothing changed: no user is written, so nothing is counted again.
	sum, err = s.SyncFull(context.Background())
	if err != nil || sum.DuplicateUserNames != 0 {
		t.Fatalf("unchanged pass: %d duplicates, err %v", sum.DuplicateUserNames, err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
