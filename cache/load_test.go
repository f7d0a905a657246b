package cache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/ldapscim/ldapscim/scim"
)

// dump returns every key and value of s, in key order, as text for a comparison.
func dump(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%q = %q", it.Item().Key(), v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDump(t *testing.T, want, got []string) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%d keys through Apply, %d through the load", len(want), len(got))
	}
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("key %d differs:\nApply: %s\nload:  %s", i, want[i], got[i])
		}
	}
}

// loadBatches is a first sync's worth of batches in the worst shapes a pass hands over: users
// with managers, two users whose userNames differ only in case, a user without a DN, odd
// characters, groups with users and groups as members, source hashes.
func loadBatches() []Batch {
	var batches []Batch
	for b := range 3 {
		batch := Batch{Source: "ldap", Pass: "full-1", SourceHashes: map[string][]byte{}}
		if b == 1 {
			batch.Source, batch.Own = "csv:hr", true // an HR file's users, which it owns
		}
		for i := b * 100; i < (b+1)*100; i++ {
			u := user(i)
			switch i {
			case 7:
				u.Attributes["userName"] = "User000042" // user000042 differs only in case
			case 8:
				u.DN = ""
			case 9:
				u.Attributes["displayName"] = "Zoë \"quoted\" \\ \x01 ☃"
			case 250:
				u.DN = strings.ToUpper(user(3).DN) // the DN of user 3, in another batch
			}
			batch.Upserts = append(batch.Upserts, u)
			batch.SourceHashes[u.ID] = []byte(fmt.Sprintf("src-%d", i))
		}
		batches = append(batches, batch)
	}
	groups := Batch{Source: "ldap", Pass: "full-1"}
	for g := range 20 {
		var members []int
		for m := g; m < 300; m += 7 {
			members = append(members, m)
		}
		groups.Upserts = append(groups.Upserts, group(g, members...))
	}
	nested := group(20, 1, 2)
	nested.Members = append(nested.Members, scim.Member{Value: groupID(3), Type: scim.GroupType, Display: "Group 3"})
	groups.Upserts = append(groups.Upserts, nested)
	return append(batches, groups)
}

func fixedClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return func() time.Time { return t }
}

func TestLoadWritesWhatApplyWrites(t *testing.T) {
	ctx := context.Background()
	a, b := openDir(t, t.TempDir()), openDir(t, t.TempDir())
	defer a.Close()
	defer b.Close()
	a.now, b.now = fixedClock(), fixedClock()

	// A key without a resource that the store had before the load survives it.
	for _, s := range []*Store{a, b} {
		if _, err := s.Apply(ctx, Batch{Source: "csv:hr", Watermark: []byte("before")}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := b.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.sorter.limit = 4096 // many runs, and a value bigger than the buffer
	var want, got Result
	for _, batch := range loadBatches() {
		ra, err := a.Apply(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		want.add(ra)
		rb, err := l.Apply(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		got.add(rb)
	}
	if n, _ := b.Count(ctx, scim.UserType); n != 0 {
		t.Fatalf("%d users visible before Commit", n)
	}
	if len(l.sorter.runs) < 10 {
		t.Fatalf("only %d runs: the test does not merge many", len(l.sorter.runs))
	}
	if err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("load result %+v, Apply result %+v", got, want)
	}
	// The last batch of a pass: a watermark, which the load cannot take; it goes to the store.
	last := Batch{Source: "ldap", Pass: "full-1", Watermark: []byte("wm"), Upserts: []*scim.Resource{user(300)}}
	if _, err := a.Apply(ctx, last); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, last); err != nil {
		t.Fatal(err)
	}
	sameDump(t, dump(t, a), dump(t, b))
	if d := l.Duplicates(); d.Users != 1 || len(d.Sample) != 1 || d.Sample[0] != "user000042" {
		t.Errorf("duplicates %+v, want the one case-folded user000042", d)
	}
	if a.head.Load() != b.head.Load() || b.head.Load() == 0 {
		t.Errorf("journal heads %d and %d", a.head.Load(), b.head.Load())
	}
	if _, err := os.Stat(filepath.Join(b.dir, loadDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run files left behind: %v", err)
	}
	// Reopened (Badger reads the streamed tables back from its manifest), it is the same.
	dir := b.dir
	b.Close()
	b = openDir(t, dir)
	sameDump(t, dump(t, a), dump(t, b))
}

func TestLoadEndsAtABatchItCannotTake(t *testing.T) {
	ctx := context.Background()
	a, b := openDir(t, t.TempDir()), openDir(t, t.TempDir())
	defer a.Close()
	defer b.Close()
	a.now, b.now = fixedClock(), fixedClock()
	l, err := b.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changed := user(5)
	changed.Attributes["title"] = "Manager"
	deleted := user(6)
	batches := []Batch{
		{Source: "ldap", Pass: "p", Upserts: []*scim.Resource{user(4), user(5), deleted}},
		{Source: "ldap", Pass: "p", Upserts: []*scim.Resource{changed, user(7)}}, // 5 again: an update
		{Source: "ldap", Pass: "p", Upserts: []*scim.Resource{user(8)}},
		{Source: "ldap", Pass: "p", Deletes: []string{deleted.ID}},
	}
	for i, batch := range batches {
		ra, err := a.Apply(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := l.Apply(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if ra != rb {
			t.Errorf("batch %d: Apply %+v, load %+v", i, ra, rb)
		}
		if i == 0 && b.head.Load() != 0 {
			t.Fatal("the first batch is visible before the load ends")
		}
	}
	sameDump(t, dump(t, a), dump(t, b))
	if err := l.Commit(ctx); err != nil {
		t.Fatalf("Commit after the load ended: %v", err)
	}
}

func TestLoadBigGroup(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	defer s.Close()
	l, err := s.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60000 // above what one transaction takes (the old limit was ~52k members)
	users := Batch{Source: "ldap", Pass: "p"}
	members := make([]int, n)
	for i := range n {
		users.Upserts = append(users.Upserts, user(i))
		members[i] = i
	}
	if _, err := l.Apply(ctx, users); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, Batch{Source: "ldap", Pass: "p", Upserts: []*scim.Resource{group(1, members...)}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MemberCount(ctx, groupID(1)); err != nil || got != n {
		t.Fatalf("member count %d, %v; want %d", got, err, n)
	}
	if gs, err := s.GroupsOf(ctx, userID(n-1)); err != nil || len(gs) != 1 || gs[0].ID != groupID(1) {
		t.Fatalf("GroupsOf the last member: %v, %v", gs, err)
	}
	// The normal write path takes over from the streamed tables: remove k members.
	res, err := s.Apply(ctx, Batch{Source: "ldap", Pass: "q", MemberEdits: []MemberEdit{{Group: groupID(1), Remove: []string{userID(1), userID(2)}}}})
	if err != nil || res.MembersRemoved != 2 {
		t.Fatalf("member edit: %+v, %v", res, err)
	}
	if got, _ := s.MemberCount(ctx, groupID(1)); got != n-2 {
		t.Fatalf("member count after the edit %d, want %d", got, n-2)
	}
	recs, err := s.Journal(ctx, 0, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n+2 || recs[n].Op != OpCreated || recs[n].Type != scim.GroupType || recs[n+1].Op != OpUpdated {
		t.Fatalf("journal: %d records, want %d creates and one update", len(recs), n+1)
	}
}

func TestBeginLoadRefusesAStoreWithResources(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	defer s.Close()
	mustApply(t, s, Batch{Upserts: []*scim.Resource{user(1)}})
	if _, err := s.BeginLoad(ctx); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("BeginLoad of a store with a user: %v, want ErrNotEmpty", err)
	}
	if _, err := openMem(t).BeginLoad(ctx); !errors.Is(err, ErrInvalid) {
		t.Fatalf("BeginLoad in memory: %v, want ErrInvalid", err)
	}
}

func TestAbortedLoadWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	defer s.Close()
	l, err := s.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.sorter.limit = 1024
	if _, err := l.Apply(ctx, loadBatches()[0]); err != nil {
		t.Fatal(err)
	}
	l.Abort()
	if n, _ := s.Count(ctx, scim.UserType); n != 0 || len(dump(t, s)) > 1 {
		t.Fatalf("after Abort: %d users, %d keys", n, len(dump(t, s)))
	}
	if _, err := l.Apply(ctx, loadBatches()[1]); err == nil {
		t.Fatal("Apply after Abort succeeded")
	}
	if _, err := os.Stat(filepath.Join(s.dir, loadDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run files left behind: %v", err)
	}
}

// A store a crash left in the middle of a Commit (the marker is there, the tables partly
// written) is emptied at the next Open, and the sorter's leftover runs are removed.
func TestOpenEmptiesAnInterruptedLoad(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	mustApply(t, s, loadBatches()[0])
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, loadMarkerName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, loadDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s, err := Open(Options{Dir: dir, Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.Count(ctx0, scim.UserType); n != 0 {
		t.Fatalf("%d users after reopening an interrupted load", n)
	}
	if s.head.Load() != 0 {
		t.Fatalf("journal head %d", s.head.Load())
	}
	for _, name := range []string{loadMarkerName, loadDirName} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", name, err)
		}
	}
	if !strings.Contains(log.String(), "first sync was interrupted") {
		t.Errorf("no warning logged: %q", log.String())
	}
	// And a load into it works.
	l, err := s.BeginLoad(ctx0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx0, loadBatches()[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx0); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx0, scim.UserType); n != 100 {
		t.Fatalf("%d users after the load", n)
	}
}

var ctx0 = context.Background()

// The sorter against a map: random keys, many repeated across and within runs, over a base
// run; every key comes once, in order, with the value put last (the base's only if none).
func TestSorterLastValueWins(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	want := map[string]string{}
	base := filepath.Join(dir, "base")
	var baseKeys []string
	for i := range 500 {
		baseKeys = append(baseKeys, fmt.Sprintf("k%05d", i*7))
	}
	slices.Sort(baseKeys)
	err := writeRun(base, func(put func(k, v []byte) error) error {
		for _, k := range baseKeys {
			want[k] = "base-" + k
			if err := put([]byte(k), []byte(want[k])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newKVSorter(filepath.Join(dir, "runs"), 2000)
	for i := range 20000 {
		k := fmt.Sprintf("k%05d", rng.IntN(3000))
		v := strings.Repeat("v", rng.IntN(40)) + fmt.Sprint(i)
		want[k] = v
		if err := s.add([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) < 20 {
		t.Fatalf("%d runs", len(s.runs))
	}
	var got []string
	err = s.merge(base, func(k, v []byte) error {
		if want[string(k)] != string(v) {
			t.Errorf("%s = %q, want %q", k, v, want[string(k)])
		}
		got = append(got, string(k))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(got) || len(got) != len(want) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatalf("%d keys (sorted %v), want %d distinct", len(got), slices.IsSorted(got), len(want))
	}
	s.removeDir()
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("runs left: %v", err)
	}
}

const loadCrashEnv = "LDAPSCIM_CACHE_LOAD_CRASH"

// TestLoadCrashChild is the child process of TestLoadCrash; it does nothing in a normal run.
func TestLoadCrashChild(t *testing.T) {
	dir := os.Getenv(loadCrashEnv)
	if dir == "" {
		t.Skip("helper process of TestLoadCrash")
	}
	s, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	l, err := s.BeginLoad(context.Background())
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	l.afterWrite = func() { fmt.Println("commit") }
	if err := loadBig(l); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("done")
	time.Sleep(time.Minute) // wait for the kill
}

// loadBig loads bigCrashMembers users and the group of all of them, and commits.
func loadBig(l *Load) error {
	ctx := context.Background()
	users := Batch{Source: "ldap", Pass: "first"}
	for i := range bigCrashMembers {
		users.Upserts = append(users.Upserts, user(i))
	}
	if _, err := l.Apply(ctx, users); err != nil {
		return err
	}
	if _, err := l.Apply(ctx, Batch{Source: "ldap", Pass: "first", Upserts: []*scim.Resource{bigGroup(0, bigCrashMembers)}}); err != nil {
		return err
	}
	return l.Commit(ctx)
}

// TestLoadCrash kills (SIGKILL) a first sync's bulk load while it writes its tables. The
// reopened store must be empty, with no run files left, and a new load must then give every
// user, the whole group and one journal record each.
func TestLoadCrash(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), loadCrashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for lines := bufio.NewScanner(out); writes < 3 && lines.Scan(); {
		switch line := lines.Text(); {
		case strings.HasPrefix(line, "error:"):
			cmd.Process.Kill()
			t.Fatalf("child: %s", line)
		case line == "commit":
			writes++
		case line == "done":
			cmd.Process.Kill()
			t.Fatal("child finished the load before it was killed")
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if writes < 3 {
		t.Fatalf("child ended after %d writes", writes)
	}
	if _, err := os.Stat(filepath.Join(dir, loadMarkerName)); err != nil {
		t.Fatalf("no marker after a kill in the middle of the stream: %v", err)
	}
	s := openDir(t, dir)
	defer s.Close()
	ctx := context.Background()
	if n, _ := s.Count(ctx, scim.UserType); n != 0 || s.head.Load() != 0 || len(dump(t, s)) > 1 {
		t.Fatalf("after the kill: %d users, journal head %d, %d keys", n, s.head.Load(), len(dump(t, s)))
	}
	l, err := s.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadBig(l); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx, scim.UserType); n != bigCrashMembers {
		t.Fatalf("%d users after the second load", n)
	}
	checkConsistent(t, s)
	if n := checkGroupMembers(t, s, groupID(1)); n != bigCrashMembers {
		t.Fatalf("%d members", n)
	}
	if h := s.head.Load(); h != bigCrashMembers+1 {
		t.Fatalf("journal head %d, want one record per resource (%d)", h, bigCrashMembers+1)
	}
}

// A store opened with DeferCompaction (a CLI command) leaves the level-0 tables of earlier
// commands alone until there are deferL0Limit of them; the command that finds that many
// compacts them, and one without DeferCompaction (serve) compacts from Badger's own trigger.
func TestDeferCompaction(t *testing.T) {
	dir := t.TempDir()
	l0 := func(s *Store) int { return s.db.Levels()[0].NumTables }
	// A first sync through a bulk load: its tables go to the last level, not level 0.
	s, err := Open(Options{Dir: dir, DeferCompaction: true})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := s.BeginLoad(ctx0)
	l.Apply(ctx0, Batch{Source: "ldap", Upserts: users(0, 2000)})
	if err := l.Commit(ctx0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Each command writes a small delta and leaves one level-0 table.
	for i := range deferL0Limit {
		s, err := Open(Options{Dir: dir, DeferCompaction: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := l0(s); got != i {
			t.Fatalf("command %d found %d level-0 tables, want %d (one per earlier command, none compacted)", i, got, i)
		}
		changed := user(i)
		changed.Attributes["title"] = fmt.Sprint("T", i)
		mustApply(t, s, Batch{Source: "ldap", Upserts: []*scim.Resource{changed}, Watermark: []byte{byte(i)}})
		s.Close()
	}
	var log strings.Builder
	s, err = Open(Options{Dir: dir, DeferCompaction: true, Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "compacting the cache") {
		t.Errorf("the command that found %d level-0 tables did not say it compacts: %q", deferL0Limit, log.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for l0(s) >= deferL0Limit && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := l0(s); got >= deferL0Limit {
		t.Fatalf("level 0 still holds %d tables", got)
	}
	if u, err := s.Get(ctx0, scim.UserType, userID(3)); err != nil || u.Attributes["title"] != "T3" {
		t.Fatalf("user 3 after the compaction: %v, %v", u, err)
	}
	s.Close()
}

// Readers and writers of other kinds (a SCIM client, a push worker) go on during a load. While
// its tables are streamed (Badger's StreamWriter is not safe beside them) reads see the store as
// it was, empty, and writes are turned away with ErrBusy. Run with -race; a reader entering
// again from inside a scan must not deadlock against the Commit.
func TestLoadCommitBesideReadersAndWriters(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	defer s.Close()
	l, err := s.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20000; i += 2000 {
		if _, err := l.Apply(ctx, Batch{Source: "ldap", Pass: "first", Upserts: users(i, i+2000)}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, nested, busy atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch w {
				case 0:
					_, err = s.Count(ctx, scim.UserType)
				case 1:
					if _, err = s.Get(ctx, scim.UserType, userID(i%20000)); errors.Is(err, ErrNotFound) {
						err = nil
					}
				case 2:
					// A callback that calls the store again, from inside a scan.
					err = s.ForEachID(ctx, scim.UserType, func(id string) error {
						if _, err := s.Count(ctx, scim.GroupType); err != nil {
							return err
						}
						nested.Add(1)
						return errStop
					})
					if errors.Is(err, errStop) {
						err = nil
					}
				case 3:
					err = s.SetPushCursor(ctx, "okta", uint64(i+1))
				}
				switch {
				case errors.Is(err, ErrBusy) && w == 3: // writes wait for the load
					busy.Add(1)
					time.Sleep(time.Millisecond) // as a client told to try again would
				case err != nil:
					t.Error(err)
					return
				default:
					reads.Add(1)
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n, _ := s.Count(ctx, scim.UserType); n != 20000 {
		t.Fatalf("%d users", n)
	}
	if nested.Load() == 0 || reads.Load() < 100 {
		t.Fatalf("only %d operations, %d nested: the readers did not run beside the load", reads.Load(), nested.Load())
	}
	t.Logf("%d operations, %d turned away with ErrBusy while the tables were written", reads.Load(), busy.Load())
	if c, err := s.PushSummary(ctx, "okta"); err != nil || c.Cursor == 0 {
		t.Fatalf("the push cursor written beside the load: %+v, %v", c, err)
	}
}

// The gate turns newcomers away while shut, also a goroutine entering again from inside, and
// shut waits for those inside.
func TestGateTurnsAwayAndWaits(t *testing.T) {
	var g gate
	if err := g.enter(); err != nil {
		t.Fatal(err)
	}
	shut := make(chan struct{})
	go func() { g.shut(); close(shut) }()
	time.Sleep(10 * time.Millisecond)
	if err := g.enter(); !errors.Is(err, ErrBusy) { // nested, while shut waits
		t.Fatalf("enter while shutting: %v, want ErrBusy", err)
	}
	select {
	case <-shut:
		t.Fatal("shut returned while a goroutine was inside")
	default:
	}
	g.leave()
	<-shut
	g.open()
	if err := g.enter(); err != nil {
		t.Fatalf("enter after open: %v", err)
	}
	g.leave()
}

// A batch that fails half way (a value JSON cannot hold) ends the load: its first resources,
// already in the sorter, must not reach the store, as a failed Apply writes nothing of its
// chunk either; the pass fails and the next one starts over.
func TestLoadApplyErrorEndsTheLoad(t *testing.T) {
	s := openDir(t, t.TempDir())
	defer s.Close()
	l, err := s.BeginLoad(ctx0)
	if err != nil {
		t.Fatal(err)
	}
	bad := user(2)
	bad.Attributes["x-ratio"] = math.NaN()
	if _, err := l.Apply(ctx0, Batch{Source: "ldap", Upserts: []*scim.Resource{user(1), bad}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Apply of a NaN: %v, want ErrInvalid", err)
	}
	if _, err := l.Apply(ctx0, Batch{Source: "ldap", Upserts: []*scim.Resource{user(3)}}); err == nil {
		t.Fatal("Apply after a failed one went on")
	}
	if err := l.Commit(ctx0); err == nil {
		t.Fatal("Commit after a failed Apply succeeded")
	}
	if n, _ := s.Count(ctx0, scim.UserType); n != 0 || s.head.Load() != 0 {
		t.Fatalf("%d users, journal head %d after a failed load", n, s.head.Load())
	}
}

// What a load keeps per resource, beside the sorter's bounded buffer: the hash of its id in
// seen. Measured on 200,000 ids (the heap before and after); the docs quote this test.
//
//	go test -count=1 -run TestLoadBytesPerResource -v ./cache/
func TestLoadBytesPerResource(t *testing.T) {
	const n = 200000
	s := openDir(t, t.TempDir())
	defer s.Close()
	l, err := s.BeginLoad(ctx0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Abort()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		l.seen[maphash.String(l.seed, userID(i))] = struct{}{}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per resource loaded (the id hashes of %d resources)", per, n)
	if per > 48 {
		t.Errorf("%.1f bytes per resource; the load should keep a hash, tens of bytes", per)
	}
	runtime.KeepAlive(l)
}

// TestAppendKV checks appendKV against Badger's own encoding, for the lengths where a varint
// takes one more byte, and an empty value (which proto3 leaves out).
func TestAppendKV(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1 << 21} {
		k, v := bytes.Repeat([]byte{'k'}, n%300+1), bytes.Repeat([]byte{'v'}, n)
		want, got := z.NewBuffer(1<<10, "test"), z.NewBuffer(1<<10, "test")
		badger.KVToBuffer(&pb.KV{Key: k, Value: v, Version: 1}, want)
		appendKV(got, k, v)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("key %d bytes, value %d bytes: appendKV wrote %d bytes, KVToBuffer %d", len(k), len(v), len(got.Bytes()), len(want.Bytes()))
		}
		want.Release()
		got.Release()
	}
}
