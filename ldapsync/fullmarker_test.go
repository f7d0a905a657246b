package ldapsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// TestFailedPassMakesTheNextOneFull: after a syncrepl pass that failed midway (slapd killed:
// it restarts with a contextCSN behind its entries), the next pass is a full one, and the one
// after it a delta again.
func TestFailedPassMakesTheNextOneFull(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(true)
	if sum := e.sync(false); sum.Full {
		t.Fatalf("a delta was expected: %+v", sum)
	}
	// What a pass that failed midway leaves (Syncer.run): the marker, beside the old watermark.
	raw := []byte(`{"since":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","reason":"LDAP Result Code 200 \"Network Error\": EOF"}`)
	if _, err := e.store.Apply(context.Background(), cache.Batch{Source: ldapsync.Source + ":full-next", Watermark: raw}); err != nil {
		t.Fatal(err)
	}
	if sum := e.sync(false); !sum.Full {
		t.Fatalf("the pass after a failed one: %+v, want a full pass", sum)
	}
	if sum := e.sync(false); sum.Full {
		t.Fatalf("the marker was not cleared: %+v", sum)
	}
}
