package ldapsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// A delta that streams many changed users, whose manager DN names an entry gone from the
// directory and the cache, asks the directory about that DN while the stream is open. On the
// stream's own connection that deadlocked: go-ldap's reader blocks delivering the stream's
// results once its buffer is full, and the lookup's answer waits behind them.
func TestDeltaLookupsDuringAStreamDoNotHang(t *testing.T) {
	const n = 400
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	b.WriteString("dn: uid=boss,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: boss\ncn: Boss\nsn: B\n\n")
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=r%03d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: r%03d\ncn: R %03d\nsn: R\nmanager: uid=boss,ou=people,dc=example,dc=com\n\n", i, i, i)
	}
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeLDIF(t, b.String())}}, nil)
	e.sync(true)
	e.sl.Modify(t, "dn: uid=boss,ou=people,dc=example,dc=com\nchangetype: delete\n")
	e.sync(false) // the boss leaves the cache; the reports keep naming her DN (no refint)
	var mods strings.Builder
	for i := range n {
		fmt.Fprintf(&mods, "dn: uid=r%03d,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: T%d\n\n", i, i)
	}
	e.sl.Modify(t, mods.String())
	done := make(chan error, 1)
	go func() { _, err := e.s.SyncOnce(context.Background()); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("delta: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the delta hangs: a lookup on the stream's connection waits behind the stream")
	}
	if u := e.user("r123"); u.Attributes["title"] != "T123" {
		t.Fatalf("r123 after the delta: %v", u.Attributes["title"])
	}
}

// writeLDIF writes ldif to a file for slapadd and returns its path.
func writeLDIF(t *testing.T, ldif string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dir.ldif")
	if err := os.WriteFile(path, []byte(ldif), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// After a crash slapd's contextCSN is its last checkpoint, older than the cookie ldapscim stored:
// it refuses the cookie (LDAP 53, "consumer state is newer than provider!") or sends only what
// its own older contextCSN covers. The delta sees the server behind its cookie and runs a full
// reconciliation instead, and deltas work again afterwards.
func TestCookieNewerThanTheServerRunsAFullPass(t *testing.T) {
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{"testdata/small.ldif"}}, nil)
	e.sync(true)
	ctx := context.Background()
	raw, err := e.store.Watermark(ctx, ldapsync.Source)
	if err != nil {
		t.Fatal(err)
	}
	var wm map[string]any
	if err := json.Unmarshal(raw, &wm); err != nil {
		t.Fatal(err)
	}
	future := []byte("rid=000,csn=20991231000000.000000Z#000000#000#000000")
	wm["usersCookie"], wm["groupsCookie"] = future, future
	raw, _ = json.Marshal(wm)
	if _, err := e.store.Apply(ctx, cache.Batch{Source: ldapsync.Source, Pass: "test", Watermark: raw}); err != nil {
		t.Fatal(err)
	}
	e.sl.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: After the crash\n")
	if sum := e.sync(false); !sum.Full {
		t.Fatalf("the refused cookie gave %+v, want a full pass", sum)
	}
	if got := e.user("ann").Attributes["title"]; got != "After the crash" {
		t.Fatalf("ann's title %v", got)
	}
	if sum := e.sync(false); sum.Full {
		t.Fatalf("the delta after the full pass: %+v", sum)
	}
}
