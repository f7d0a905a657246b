package hrsync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// countingStore counts a pass's point reads of the cache: what must grow with the changed
// rows, not with the file.
type countingStore struct {
	*cache.Store
	lookups, gets, owners, overlays atomic.Int64
	journal                         atomic.Int64 // records read
}

func (s *countingStore) Journal(ctx context.Context, after uint64, limit int) ([]cache.JournalRecord, error) {
	recs, err := s.Store.Journal(ctx, after, limit)
	s.journal.Add(int64(len(recs)))
	return recs, err
}

func (s *countingStore) Lookup(ctx context.Context, idx cache.Index, v string) ([]string, error) {
	s.lookups.Add(1)
	return s.Store.Lookup(ctx, idx, v)
}

func (s *countingStore) Get(ctx context.Context, typ scim.ResourceType, id string) (*scim.Resource, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, typ, id)
}

func (s *countingStore) Owner(ctx context.Context, id string) (string, error) {
	s.owners.Add(1)
	return s.Store.Owner(ctx, id)
}

func (s *countingStore) Overlays(ctx context.Context, ids []string) (map[string]*cache.Overlay, error) {
	s.overlays.Add(int64(len(ids)))
	return s.Store.Overlays(ctx, ids)
}

func (s *countingStore) reset() {
	s.lookups.Store(0)
	s.gets.Store(0)
	s.owners.Store(0)
	s.overlays.Store(0)
	s.journal.Store(0)
}

func (s *countingStore) String() string {
	return fmt.Sprintf("%d lookups, %d gets, %d owners, %d overlays", s.lookups.Load(), s.gets.Load(), s.owners.Load(), s.overlays.Load())
}

// countingFile counts the bytes a pass reads of a file.
type countingFile struct {
	f *os.File
	n int64
}

func (c *countingFile) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	c.n += int64(n)
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }

var _ io.ReadSeeker = (*countingFile)(nil)

// TestEnrichReimportReadsOnlyChangedRows: an enrich re-import reads the file once, and looks
// up, loads and compares only the users of rows that changed (the pass before this one read
// the file twice and looked every row's user up).
func TestEnrichReimportReadsOnlyChangedRows(t *testing.T) {
	const n = 2000
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, n)
	cs := &countingStore{Store: e.st}
	src, err := hrsync.New(enrichConfig(), ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, cs,
		hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]string, n)
	for i := range rows {
		rows[i] = fmt.Sprintf("%d;Dept %d;Title %d %s;2020-01-01;", 1000+i, i%7, i, strings.Repeat("x", 100))
	}
	imp := func(rows []string) (hrsync.Summary, *countingFile, int64) {
		t.Helper()
		p := writeTemp(t, e.dir, enrichHeader+strings.Join(rows, "\r\n")+"\r\n")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		cf := &countingFile{f: open(t, p)}
		cs.reset()
		sum, err := src.Import(context.Background(), cf, true, false)
		if err != nil {
			t.Fatal(err)
		}
		return sum, cf, fi.Size()
	}
	// The first import writes every row: each user is loaded once, and the walks answer the
	// rest (whom each row joins, whether another source owns the user, whether it has an
	// overlay): no lookup, no owner and no overlay read (each a point read that misses, which
	// consults every table of the cache).
	if sum, _, _ := imp(rows); sum.Updated != n {
		t.Fatalf("first import: %+v", sum)
	}
	if cs.lookups.Load() != 0 || cs.owners.Load() != 0 || cs.overlays.Load() != 0 || cs.gets.Load() != n {
		t.Fatalf("first import: %v; want %d gets and nothing else", cs, n)
	}
	// The same file again (forced, as `import` does): one read, no point read of the cache.
	sum, cf, size := imp(rows)
	if sum.Unchanged != n || sum.Updated != 0 {
		t.Fatalf("same file: %+v", sum)
	}
	if cf.n > size+size/10 || cs.lookups.Load()+cs.gets.Load()+cs.owners.Load()+cs.overlays.Load() != 0 {
		t.Fatalf("same file: read %d bytes of %d, %v; want one read and no point reads", cf.n, size, cs)
	}
	// Three rows changed: three users looked up, loaded and compared.
	for _, i := range []int{5, 500, 1999} {
		rows[i] = fmt.Sprintf("%d;Moved;Title %d %s;2020-01-01;", 1000+i, i, strings.Repeat("x", 100))
	}
	sum, cf, size = imp(rows)
	if sum.Updated != 3 || sum.Unchanged != n-3 {
		t.Fatalf("three rows changed: %+v", sum)
	}
	// Read again: the header (a buffer of up to 64 KiB) and the three rows (4 KiB each).
	if cf.n > size+80<<10 || cs.lookups.Load() != 3 || cs.gets.Load() != 3 || cs.overlays.Load() != 3 {
		t.Fatalf("three rows changed: read %d bytes of %d, %v; want one read and 3 of each", cf.n, size, cs)
	}
	if u := e.get(500); getPath(u, dept) != "Moved" {
		t.Fatalf("user 500: %v", u.Attributes)
	}
}

// TestEnrichFollowsTheDirectory: with the same file, a re-import follows the directory's
// changes and the calendar: (a) users whose join attribute changed (rows that now join
// another user, or none), (b) a new directory user that a row without an overlay now joins,
// (c) a row that left the file, (d) an end date that starts to apply today.
func TestEnrichFollowsTheDirectory(t *testing.T) {
	ctx := context.Background()
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, 6)
	rows := []string{"1000;Sales;;;", "1001;R&D;;;", "1002;Ops;;;", "1003;Legal;;;2026-12-05", "1004;HR;;;", "1010;New;;;"}
	sum := e.run(rows...)
	if sum.Updated != 5 || sum.Unjoined != 1 || !reflect.DeepEqual(sum.UnjoinedKeys, []string{"1010"}) {
		t.Fatalf("first pass: %+v", sum)
	}
	// (a) The directory swaps the externalIds of users 0 and 1, and gives user 2 one no row
	// has (a directory pass keeps the overlays' values: it merges them).
	var moved []*scim.Resource
	for i, ext := range map[int]string{0: "1001", 1: "1000", 2: "7777"} {
		u := e.get(i)
		u.ExternalID = ext
		moved = append(moved, u)
	}
	// (b) A new directory user joins the row 1010.
	moved = append(moved, dirUser(10))
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: moved}); err != nil {
		t.Fatal(err)
	}
	sum = e.run(rows...)
	if sum.Updated != 4 || sum.Unchanged != 2 || sum.Unjoined != 1 || !reflect.DeepEqual(sum.UnjoinedKeys, []string{"1002"}) {
		t.Fatalf("after the directory changed: %+v", sum)
	}
	for i, want := range map[int]any{0: "R&D", 1: "Sales", 2: nil, 10: "New", 3: "Legal"} {
		if got := getPath(e.get(i), dept); got != want {
			t.Fatalf("user %d: department %v, want %v", i, got, want)
		}
	}
	for _, i := range []int{0, 1} {
		ovs, err := e.st.Overlays(ctx, []string{dirUser(i).ID})
		if o := ovs[dirUser(i).ID]; err != nil || o == nil || o.Key != e.get(i).ExternalID {
			t.Fatalf("overlay of user %d: %+v %v", i, o, err)
		}
	}
	if ovs, _ := e.st.Overlays(ctx, []string{dirUser(2).ID}); len(ovs) != 0 {
		t.Fatalf("user 2 keeps an overlay: %+v", ovs)
	}
	// (c) The row of user 4 leaves the file.
	rows = slicesDelete(rows, "1004;HR;;;")
	if sum := e.run(rows...); sum.Updated != 1 || getPath(e.get(4), dept) != nil {
		t.Fatalf("row 1004 gone: %+v, user 4 %v", sum, e.get(4).Attributes)
	}
	// (d) The next day user 3's end date applies: the same file deactivates them.
	if !e.get(3).Active() {
		t.Fatal("user 3 inactive before the end date")
	}
	e.today = e.today.Add(24 * time.Hour)
	if sum := e.run(rows...); sum.Deactivated != 1 || e.get(3).Active() {
		t.Fatalf("end date reached: %+v", sum)
	}
	// Nothing changed since: every joined row unchanged, nothing written.
	head := e.journalHead()
	if sum := e.run(rows...); sum.Updated+sum.Deactivated != 0 || e.journalHead() != head {
		t.Fatalf("nothing changed: %+v, journal %d → %d", sum, head, e.journalHead())
	}
}

func slicesDelete(rows []string, row string) []string {
	var out []string
	for _, r := range rows {
		if r != row {
			out = append(out, r)
		}
	}
	return out
}

// TestEnrichJoinOnUserName: the userName index is case-folded, so a row joins the user whose
// userName its key equals in any case, and a second row that folds to the same key is
// ambiguous (the first in file order joins).
func TestEnrichJoinOnUserName(t *testing.T) {
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, 3)
	c := enrichConfig()
	c.Join = "userName"
	src, err := hrsync.New(c, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, e.st,
		hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	e.src = src
	rows := []string{"u0;Sales;;;", "U1;R&D;;;", "u1;Ops;;;", "U2;Legal;;;", "u9;Ghost;;;"}
	sum := e.run(rows...)
	if sum.Updated != 3 || sum.Ambiguous != 1 || !reflect.DeepEqual(sum.AmbiguousKeys, []string{"u1"}) ||
		sum.Unjoined != 1 || !reflect.DeepEqual(sum.UnjoinedKeys, []string{"u9"}) {
		t.Fatalf("userName join: %+v", sum)
	}
	for i, want := range []string{"Sales", "R&D", "Legal"} {
		if got := getPath(e.get(i), dept); got != want {
			t.Fatalf("user %d: %v, want %s", i, got, want)
		}
	}
	if sum := e.runForced(rows...); sum.Unchanged != 3 || sum.Updated != 0 {
		t.Fatalf("again: %+v", sum)
	}
}

// TestEnrichUnchangedFileCostsOneHash: a scheduled pass of a file the last pass applied reads
// it once to hash it, and nothing of the cache but its journal, while the directory changes
// nothing rows join by; a user created, deleted or given another join attribute, or another
// configuration, makes it read the file again.
func TestEnrichUnchangedFileCostsOneHash(t *testing.T) {
	ctx := context.Background()
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, 6)
	cs := &countingStore{Store: e.st}
	newSource := func(c hrcsv.Config) {
		t.Helper()
		src, err := hrsync.New(c, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, cs,
			hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
		if err != nil {
			t.Fatal(err)
		}
		e.src = src
	}
	newSource(enrichConfig())
	rows := []string{"1000;Sales;;;", "1001;R&D;;;", "1002;Ops;;;", "1007;Later;;;"}
	p := writeTemp(t, e.dir, enrichHeader+strings.Join(rows, "\r\n")+"\r\n")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	pass := func() (hrsync.Summary, int64) {
		t.Helper()
		cf := &countingFile{f: open(t, p)}
		cs.reset()
		sum, err := e.src.Import(ctx, cf, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return sum, cf.n
	}
	skipped := func(when string) {
		t.Helper()
		sum, n := pass()
		if !sum.Skipped || n != fi.Size() || cs.lookups.Load()+cs.gets.Load()+cs.owners.Load()+cs.overlays.Load() != 0 {
			t.Fatalf("%s: %+v, read %d bytes of %d, %v; want skipped after one hash", when, sum, n, fi.Size(), cs)
		}
	}
	read := func(when string) hrsync.Summary {
		t.Helper()
		sum, _ := pass()
		if sum.Skipped {
			t.Fatalf("%s: skipped", when)
		}
		return sum
	}
	if sum := read("first pass"); sum.Updated != 3 || sum.Unjoined != 1 {
		t.Fatalf("first pass: %+v", sum)
	}
	skipped("same file")
	// A directory change of another attribute joins nothing anew.
	u := e.get(4)
	u.Attributes["title"] = "Director"
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Pass: "ldap-1", Upserts: []*scim.Resource{u}}); err != nil {
		t.Fatal(err)
	}
	skipped("after a directory change of a title")
	// The next skip reads only the journal after the last one's.
	if skipped("again"); cs.journal.Load() != 0 {
		t.Fatalf("a second skip read %d journal records again", cs.journal.Load())
	}
	// A new directory user joins the row 1007.
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: []*scim.Resource{dirUser(7)}}); err != nil {
		t.Fatal(err)
	}
	if sum := read("after a user was created"); sum.Updated != 1 || getPath(e.get(7), dept) != "Later" {
		t.Fatalf("after a user was created: %+v", sum)
	}
	skipped("same file after the new user joined")
	// User 2 gets another externalId: its row joins nobody, and its values go.
	u = e.get(2)
	u.ExternalID = "2002"
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: []*scim.Resource{u}}); err != nil {
		t.Fatal(err)
	}
	if sum := read("after a join attribute changed"); sum.Updated != 1 || sum.Unjoined != 1 || getPath(e.get(2), dept) != nil {
		t.Fatalf("after a join attribute changed: %+v", sum)
	}
	skipped("same file after the join moved")
	// User 1 is deleted (its overlay goes with it).
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Deletes: []string{dirUser(1).ID}}); err != nil {
		t.Fatal(err)
	}
	if sum := read("after a user was deleted"); sum.Unjoined != 2 {
		t.Fatalf("after a user was deleted: %+v", sum)
	}
	skipped("same file after the deletion")
	// Another configuration reads the file again.
	c := enrichConfig()
	c.DateFormat = "02.01.2006"
	newSource(c)
	read("after a change of date_format")
	skipped("same file, same configuration")
}

// TestEnrichDatesInAnotherLayout: a file whose dates date_format does not read (a warning
// names the layout used) goes through the row-by-row pass, with the same outcome.
func TestEnrichDatesInAnotherLayout(t *testing.T) {
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, 3)
	sum := e.run("1000;Sales;;;01.12.2026", "1001;R&D;;;31.12.2026", "1005;Ghost;;;")
	if sum.Updated != 1 || sum.Deactivated != 1 || sum.Unjoined != 1 || len(sum.Warnings) == 0 {
		t.Fatalf("dates as dd.mm.yyyy: %+v", sum)
	}
	if e.get(0).Active() || !e.get(1).Active() || getPath(e.get(1), dept) != "R&D" {
		t.Fatalf("users: %v, %v", e.get(0).Attributes, e.get(1).Attributes)
	}
	if sum := e.runForced("1000;Sales;;;01.12.2026", "1001;R&D;;;31.12.2026", "1005;Ghost;;;"); sum.Unchanged != 2 {
		t.Fatalf("again: %+v", sum)
	}
}

// TestEnrichWindows1252: the rows of a file that is not UTF-8 have no offsets, so the changed
// rows are read again in one more read of the file.
func TestEnrichWindows1252(t *testing.T) {
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, 40)
	c := enrichConfig()
	c.Encoding = "windows-1252"
	src, err := hrsync.New(c, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, e.st,
		hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	e.src = src
	var rows []string
	for i := range 40 {
		rows = append(rows, fmt.Sprintf("%d;Comptabilit\xe9 %d;;;", 1000+i, i))
	}
	if sum := e.runForced(rows...); sum.Updated != 40 || getPath(e.get(7), dept) != "Comptabilité 7" {
		t.Fatalf("first pass: %+v, %v", sum, getPath(e.get(7), dept))
	}
	rows[7] = "1007;March\xe9;;;"
	if sum := e.runForced(rows...); sum.Updated != 1 || sum.Unchanged != 39 || getPath(e.get(7), dept) != "Marché" {
		t.Fatalf("one row changed: %+v, %v", sum, getPath(e.get(7), dept))
	}
}

// failingStore fails every Apply from the one after the first after: an error between the
// batches of a pass (the cache gone, a full disk), as a kill -9 would leave it.
type failingStore struct {
	*cache.Store
	after int
	calls int
}

func (s *failingStore) Apply(ctx context.Context, b cache.Batch) (cache.Result, error) {
	if s.calls++; s.calls > s.after {
		return cache.Result{}, errors.New("injected failure: the cache went away")
	}
	return s.Store.Apply(ctx, b)
}

// TestEnrichInterruptedFirstImportCompletes: a first import that fails between its batches
// keeps what it wrote and marks no file read (no watermark); the next pass writes only the
// rest, so that every user is written once (one journal record each, pushed once) with its
// row's values, and the leavers' deactivations, which only the last batch decides, are made.
func TestEnrichInterruptedFirstImportCompletes(t *testing.T) {
	ctx := context.Background()
	const n, leavers = 2000, 200
	th := ingest.Threshold{MaxDeletes: 1000, MaxDeletePercent: 100}
	e := newEnrichEnv(t, th, n)
	fs := &failingStore{Store: e.st, after: 2}
	src, err := hrsync.New(enrichConfig(), th, fs, hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]string, n)
	for i := range rows {
		end := ""
		if i%(n/leavers) == 0 {
			end = "2026-12-01"
		}
		rows[i] = fmt.Sprintf("%d;Dept %d;Title %d;2020-01-01;%s", 1000+i, i%7, i, end)
	}
	p := writeTemp(t, e.dir, enrichHeader+strings.Join(rows, "\r\n")+"\r\n")
	head := e.journalHead()
	if _, err := src.Import(ctx, open(t, p), true, false); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("the first import: %v; want the injected failure", err)
	}
	if wm, err := e.st.Watermark(ctx, "csv:hr"); wm != nil || err != nil {
		t.Fatalf("watermark after a failed pass: %s %v; want none", wm, err)
	}
	written := 0
	if err := e.st.ForEachOverlay(ctx, "csv:hr", func(string, *cache.Overlay) error { written++; return nil }); err != nil {
		t.Fatal(err)
	}
	if written == 0 || written >= n-leavers {
		t.Fatalf("%d users written before the failure; want the batches before it, not all", written)
	}
	// The next scheduled pass reads the file again (no watermark says it was read) and ends it.
	fs.after = math.MaxInt
	sum, err := src.Import(ctx, open(t, p), false, false)
	if err != nil || sum.Skipped || sum.Unchanged != written || sum.Updated != n-leavers-written || sum.Deactivated != leavers {
		t.Fatalf("the pass after the failure: %+v %v; want %d unchanged, %d updated, %d deactivated", sum, err, written, n-leavers-written, leavers)
	}
	writes := map[string]int{}
	for after := head; ; {
		recs, err := e.st.Journal(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			writes[r.ID]++
			after = r.Seq
		}
	}
	for i := range n {
		u := e.get(i)
		if writes[u.ID] != 1 || getPath(u, dept) != fmt.Sprintf("Dept %d", i%7) || u.String("title") != fmt.Sprintf("Title %d", i) || u.Active() != (i%(n/leavers) != 0) {
			t.Fatalf("user %d: written %d times, %v", i, writes[u.ID], u.Attributes)
		}
	}
	if len(writes) != n {
		t.Fatalf("%d resources written, want the %d users", len(writes), n)
	}
	if sum := e.run(rows...); !sum.Skipped {
		t.Fatalf("the same file after the pass that ended it: %+v; want it skipped", sum)
	}
}
