package cache

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

const bigCrashEnv = "LDAPSCIM_CACHE_BIGGROUP_CRASH"

// bigCrashMembers is above the old one-transaction limit (about 52k members).
const bigCrashMembers = 60000

func bigGroup(from, to int) *scim.Resource {
	members := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		members = append(members, i)
	}
	return group(1, members...)
}

// bigCrashBatches: "create" writes the group in one batch; "update" first creates it, then
// replaces its first 20k members with 20k new ones.
func bigCrashBatches(mode string) (setup, crash Batch) {
	create := Batch{Source: "ldap", Pass: "create", Upserts: []*scim.Resource{bigGroup(0, bigCrashMembers)}, Watermark: []byte("w1")}
	if mode == "create" {
		return Batch{}, create
	}
	return create, Batch{Source: "ldap", Pass: "update", Upserts: []*scim.Resource{bigGroup(20000, bigCrashMembers+20000)}, Watermark: []byte("w2")}
}

// TestBigGroupCrashChild is the child process of TestBigGroupCrash; it does nothing in a
// normal run.
func TestBigGroupCrashChild(t *testing.T) {
	spec := os.Getenv(bigCrashEnv)
	if spec == "" {
		t.Skip("helper process of TestBigGroupCrash")
	}
	mode, dir, _ := strings.Cut(spec, ":")
	s, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	setup, crash := bigCrashBatches(mode)
	ctx := context.Background()
	if setup.Upserts != nil {
		if _, err := s.Apply(ctx, setup); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}
	fmt.Println("setup done")
	s.afterCommit = func(chunkInfo) { fmt.Println("commit") }
	if _, err := s.Apply(ctx, crash); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("done")
	time.Sleep(time.Minute) // wait for the kill
}

// TestBigGroupCrash kills (SIGKILL) a process in the middle of writing a group too big for one
// transaction, when it is created and when a third of its members are replaced. The reopened
// store must hold a consistent group (member keys, member index, summary and journal agree, no
// watermark), and applying the batch again must finish it with exactly the wanted members,
// each journaled once.
func TestBigGroupCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess")
	}
	for _, mode := range []string{"create", "update"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			commits := killAfterCommits(t, mode, dir, 3)
			s := openDir(t, dir)
			defer s.Close()
			ctx := context.Background()
			wm, _ := s.Watermark(ctx, "ldap")
			wantWM := map[string]string{"create": "", "update": "w1"}[mode]
			if string(wm) != wantWM {
				t.Fatalf("watermark %q after %d commits of a killed batch, want %q", wm, commits, wantWM)
			}
			checkConsistent(t, s)
			n := checkGroupMembers(t, s, groupID(1))
			t.Logf("after kill: %d members, %d commits seen", n, commits)
			if mode == "update" && n < bigCrashMembers {
				t.Fatalf("a group being updated shrank to %d members before its new members were in", n)
			}

			_, crash := bigCrashBatches(mode)
			before, _ := s.JournalHead(ctx)
			if _, err := s.Apply(ctx, crash); err != nil {
				t.Fatal(err)
			}
			if wm, _ := s.Watermark(ctx, "ldap"); string(wm) != string(crash.Watermark) {
				t.Fatalf("watermark after re-apply = %q", wm)
			}
			checkConsistent(t, s)
			if n := checkGroupMembers(t, s, groupID(1)); n != bigCrashMembers {
				t.Fatalf("%d members after re-apply, want %d", n, bigCrashMembers)
			}
			want := crash.Upserts[0].Members
			got, err := s.Members(ctx, groupID(1), "", 0)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("members after re-apply differ from the batch (%d vs %d, %v)", len(got), len(want), err)
			}
			// Every member change is journaled exactly once over the killed run and the
			// re-apply: the audit trail adds each wanted member once and removes each
			// dropped one once.
			added, removed := auditedMembers(t, s, groupID(1), crash.Pass)
			if mode == "update" {
				checkOnce(t, "removed", removed, 20000)
				checkOnce(t, "added", added, 20000)
			} else if len(added) > bigCrashMembers || len(removed) != 0 {
				t.Fatalf("audit: %d added, %d removed", len(added), len(removed))
			}
			t.Logf("re-apply wrote %d journal records", mustJournalHead(t, s)-before)
		})
	}
}

// killAfterCommits runs the child in mode, SIGKILLs it after n commits of its crash batch,
// and returns how many commits it saw.
func killAfterCommits(t *testing.T, mode, dir string, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBigGroupCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), bigCrashEnv+"="+mode+":"+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	commits := 0
	lines := bufio.NewScanner(out)
	for commits < n && lines.Scan() {
		switch line := lines.Text(); {
		case strings.HasPrefix(line, "error:"):
			cmd.Process.Kill()
			t.Fatalf("child: %s", line)
		case line == "commit":
			commits++
		case line == "done":
			cmd.Process.Kill()
			t.Fatalf("child finished the batch before it was killed")
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if commits < n {
		t.Fatalf("child ended after %d commits", commits)
	}
	return commits
}

// checkGroupMembers checks that group gid's member keys, the member → group index and the
// summary in the group's value agree, and returns the number of members.
func checkGroupMembers(t *testing.T, s *Store, gid string) int {
	t.Helper()
	ctx := context.Background()
	members, err := s.Members(ctx, gid, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	err = s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, resourceKey('G', gid))
		if err != nil {
			return err
		}
		h, _, err := splitHeader(v)
		if err != nil {
			return err
		}
		if h.summary != summarize(members) {
			t.Fatalf("summary of %s: count %d, the %d member keys disagree", gid, h.summary.count, len(members))
		}
		if h.hash != versionHash(h.contentHash, h.summary) {
			t.Fatalf("version of %s does not cover its members", gid)
		}
		indexed := 0
		err = scan(ctx, txn, []byte{kindMember}, nil, true, func(k []byte, _ *badger.Item) error {
			if strings.HasSuffix(string(k), "\x00"+gid) {
				indexed++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if indexed != len(members) {
			t.Fatalf("member index has %d entries for %s, %d member keys", indexed, gid, len(members))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(members)
}

// auditedMembers returns every member id that the audit records of pass name as added to and
// removed from group gid.
func auditedMembers(t *testing.T, s *Store, gid, pass string) (added, removed []string) {
	t.Helper()
	recs, err := s.Audit(context.Background(), gid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Pass != pass {
			continue
		}
		for _, d := range r.Diff {
			if d.Path != "members" {
				continue
			}
			removed = append(removed, asIDs(d.Old)...)
			added = append(added, asIDs(d.New)...)
		}
	}
	return added, removed
}

func asIDs(v any) []string {
	var out []string
	switch x := v.(type) {
	case []string:
		out = x
	case []any:
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
	}
	return out
}

func checkOnce(t *testing.T, what string, ids []string, want int) {
	t.Helper()
	sorted := slices.Sorted(slices.Values(ids))
	if len(slices.Compact(sorted)) != len(ids) || len(ids) != want {
		t.Fatalf("audit %s %d ids (%d distinct), want %d each once", what, len(ids), len(slices.Compact(sorted)), want)
	}
}

func mustJournalHead(t *testing.T, s *Store) uint64 {
	t.Helper()
	h, err := s.JournalHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
