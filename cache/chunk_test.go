package cache

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// TestWatermarkAndHoldsWithLastChunk applies a batch in 4 chunks and checks, after each commit,
// that watermark and holds only appear with the last one.
func TestWatermarkAndHoldsWithLastChunk(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	s.chunk = 3
	mustApply(t, s, Batch{Source: "ldap", Watermark: []byte("old"), Holds: &[]Hold{{ID: "stale", Type: scim.UserType}}})

	var seen []string
	s.afterCommit = func(c chunkInfo) {
		wm, err := s.Watermark(ctx, "ldap")
		if err != nil {
			t.Fatal(err)
		}
		holds, _ := s.Holds(ctx)
		seen = append(seen, string(wm)+"/"+holds[0].ID)
		if c.last != (string(wm) == "new") {
			t.Errorf("chunk last=%v sees watermark %q", c.last, wm)
		}
	}
	holds := []Hold{{ID: userID(9), Type: scim.UserType, Name: "user000009", Reason: "threshold", HeldAt: time.Unix(1, 0).UTC()}}
	res := mustApply(t, s, Batch{Source: "ldap", Pass: "p", Upserts: users(0, 8), Deletes: []string{"x", "y"},
		Watermark: []byte("new"), Holds: &holds})
	if res.Created != 8 {
		t.Fatalf("res = %+v", res)
	}
	if want := []string{"old/stale", "old/stale", "old/stale", "new/" + userID(9)}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("after each chunk: %v, want %v", seen, want)
	}
	got, _ := s.Holds(ctx)
	if !reflect.DeepEqual(got, holds) {
		t.Fatalf("Holds = %+v, want %+v", got, holds)
	}
	if wm, _ := s.Watermark(ctx, "other"); wm != nil {
		t.Fatalf("watermark of another source = %q", wm)
	}
}

func TestApplyCancelledBetweenChunks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openMem(t)
	s.chunk = 10
	s.afterCommit = func(chunkInfo) { cancel() }
	res, err := s.Apply(ctx, Batch{Source: "ldap", Upserts: users(0, 35), Watermark: []byte("w")})
	if !errors.Is(err, context.Canceled) || res.Created != 10 {
		t.Fatalf("Apply = %+v, %v; want 10 created and context.Canceled", res, err)
	}
	bg := context.Background()
	if wm, _ := s.Watermark(bg, "ldap"); wm != nil {
		t.Fatalf("watermark %q written by a cancelled batch", wm)
	}
	if n, _ := s.Count(bg, scim.UserType); n != 10 {
		t.Fatalf("Count = %d", n)
	}
	// re-applying the whole batch finishes the job; the first chunk is unchanged
	s.afterCommit = nil
	res, err = s.Apply(bg, Batch{Source: "ldap", Upserts: users(0, 35), Watermark: []byte("w")})
	if err != nil || res != (Result{Created: 25, Unchanged: 10}) {
		t.Fatalf("re-apply = %+v, %v", res, err)
	}
}

// TestTxnTooBigSplits shrinks the memtable so that a 1000-user chunk exceeds Badger's
// transaction limit: Apply must split it and still write everything, each user whole.
func TestTxnTooBigSplits(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{memTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var chunks int
	s.afterCommit = func(chunkInfo) { chunks++ }
	res, err := s.Apply(ctx, Batch{Source: "ldap", Upserts: users(0, 1000), Watermark: []byte("w")})
	if err != nil || res.Created != 1000 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if chunks < 4 {
		t.Fatalf("%d chunks; expected the 1000-user chunk to be split", chunks)
	}
	if head, _ := s.JournalHead(ctx); head != 1000 {
		t.Fatalf("head = %d", head)
	}
	if wm, _ := s.Watermark(ctx, "ldap"); string(wm) != "w" {
		t.Fatalf("watermark = %q", wm)
	}

	// a single resource that cannot fit is an error, and nothing of it is written
	members := make([]int, 5000)
	for i := range members {
		members[i] = i
	}
	_, err = s.Apply(ctx, Batch{Source: "ldap", Upserts: []*scim.Resource{group(1, members...)}, Watermark: []byte("w2")})
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("huge group: %v, want ErrTooBig", err)
	}
	if head, _ := s.JournalHead(ctx); head != 1000 {
		t.Fatalf("head = %d after failed apply", head)
	}
	if wm, _ := s.Watermark(ctx, "ldap"); string(wm) != "w" {
		t.Fatalf("watermark = %q after failed apply", wm)
	}
}

// TestConcurrentUse runs writers and readers at once (for -race) and checks the journal has no
// gaps or duplicates.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	s.chunk = 7
	done := make(chan error, 6)
	for w := 0; w < 3; w++ {
		go func() {
			_, err := s.Apply(ctx, Batch{Upserts: users(w*50, w*50+50), Pass: "w"})
			done <- err
		}()
	}
	for r := 0; r < 3; r++ {
		go func() {
			for i := 0; i < 50; i++ {
				if _, err := s.Lookup(ctx, IndexUserName, "user000001"); err != nil {
					done <- err
					return
				}
				if _, err := s.Journal(ctx, 0, 10); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 6; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	recs := mustJournal(t, s, 0)
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	if len(recs) != 150 {
		t.Fatalf("%d records", len(recs))
	}
}
