package cache

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

const crashDirEnv = "LDAPSCIM_CACHE_CRASH_DIR"

const (
	crashChunk = 100
	crashBase  = 1000 // users of batch 1
)

// crashBatch2 updates every user of batch 1, creates 2000 more and deletes 100: 31 chunks,
// each of which changes exactly crashChunk resources.
func crashBatch2() Batch {
	up := users(0, crashBase+2000)
	for _, u := range up[:crashBase] {
		u.Attributes["title"] = "Director"
	}
	del := make([]string, 0, 100)
	for i := 0; i < 100; i++ {
		del = append(del, userID(i*7))
	}
	return Batch{Source: "ldap", Pass: "batch2", Upserts: up, Deletes: del, Watermark: []byte("w2")}
}

// TestCrashChild is the child process of TestCrashSafety; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashSafety")
	}
	s, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	s.chunk = crashChunk
	ctx := context.Background()
	if _, err := s.Apply(ctx, Batch{Source: "ldap", Pass: "batch1", Upserts: users(0, crashBase), Watermark: []byte("w1")}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("batch1 done")
	s.afterCommit = func(c chunkInfo) { fmt.Println("chunk") }
	if _, err := s.Apply(ctx, crashBatch2()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("batch2 done")
	time.Sleep(time.Minute) // wait for the kill
}

// TestCrashSafety kills a writer with SIGKILL in the middle of a chunked Apply and checks that
// the reopened store is consistent: whole chunks only, journal without gaps, watermark only with
// the last chunk.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	chunks, finished := 0, false
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "error:"):
			cmd.Process.Kill()
			t.Fatalf("child: %s", line)
		case line == "chunk":
			chunks++
		case line == "batch2 done":
			finished = true
		}
		if chunks == 3 || finished {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	if chunks < 3 {
		t.Fatalf("child ended after %d chunks of batch 2", chunks)
	}

	s := openDir(t, dir)
	defer s.Close()
	ctx := context.Background()
	head, _ := s.JournalHead(ctx)
	wm, _ := s.Watermark(ctx, "ldap")
	t.Logf("after kill: journal head %d, watermark %q (child reported %d chunks)", head, wm, chunks)
	if head < crashBase || (head-crashBase)%crashChunk != 0 {
		t.Fatalf("journal head %d: batch 2 left a partial chunk", head)
	}
	done := (head - crashBase) / crashChunk
	if (string(wm) == "w2") != (done == 31) || (string(wm) != "w2" && string(wm) != "w1") {
		t.Fatalf("watermark %q after %d of 31 chunks", wm, done)
	}
	checkConsistent(t, s)

	// the sync re-reads from the old watermark: re-applying finishes the job
	res, err := s.Apply(ctx, crashBatch2())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("re-apply: %+v", res)
	if wm, _ := s.Watermark(ctx, "ldap"); string(wm) != "w2" {
		t.Fatalf("watermark after re-apply = %q", wm)
	}
	if head, _ := s.JournalHead(ctx); head != crashBase+3100 {
		t.Fatalf("journal head after re-apply = %d, want %d", head, crashBase+3100)
	}
	checkConsistent(t, s)
}

// checkConsistent checks invariant 3 on a whole store: journal seqs are 1..head without gaps;
// a resource exists iff its id's last journal record is not a delete, and its lastModified is
// that record's time; counters match; userName index entries point at the right users.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	recs := mustJournal(t, s, 0)
	head, _ := s.JournalHead(ctx)
	if uint64(len(recs)) != head {
		t.Fatalf("%d journal records, head %d", len(recs), head)
	}
	last := map[string]JournalRecord{}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("journal record %d has seq %d", i, r.Seq)
		}
		last[r.ID] = r
	}
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		all, err := s.List(ctx, typ, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			j, ok := last[r.ID]
			if !ok || j.Op == OpDeleted {
				t.Fatalf("%s %s present without a journal record (last: %+v)", typ, r.ID, j)
			}
			if !j.Time.Equal(r.Meta.LastModified) {
				t.Fatalf("%s lastModified %v, last journal record at %v", r.ID, r.Meta.LastModified, j.Time)
			}
			if un := r.UserName(); un != "" {
				if ids := lookup(t, s, IndexUserName, un); len(ids) != 1 || ids[0] != r.ID {
					t.Fatalf("userName index %q = %v, want %s", un, ids, r.ID)
				}
			}
		}
		n, _ := s.Count(ctx, typ)
		if n != len(all) {
			t.Fatalf("Count(%s) = %d, %d stored", typ, n, len(all))
		}
		for id, j := range last {
			if j.Type != typ || j.Op == OpDeleted {
				continue
			}
			if _, err := s.Get(ctx, typ, id); err != nil {
				t.Fatalf("journal says %s %s exists: %v", typ, id, err)
			}
		}
	}
	if got := countKeys(t, s, kindModified); got != len(last)-countDeleted(last) {
		t.Fatalf("%d lastModified keys for %d resources", got, len(last)-countDeleted(last))
	}
}

func countDeleted(last map[string]JournalRecord) int {
	n := 0
	for _, j := range last {
		if j.Op == OpDeleted {
			n++
		}
	}
	return n
}
