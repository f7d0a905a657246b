package hrsync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

const header = "Employee ID;Email;First Name;Last Name;Job Title;Manager ID;Start Date;End Date\r\n"

func config() hrcsv.Config {
	c := hrcsv.DefaultConfig()
	c.Name, c.Key, c.StartDate, c.EndDate = "hr", "Employee ID", "Start Date", "End Date"
	c.Mapping = map[string]string{"userName": "Email", "name.givenName": "First Name", "name.familyName": "Last Name",
		"title": "Job Title", scim.SchemaEnterpriseUser + ":manager": "Manager ID",
		`emails[type eq "work"].value`: "Email"}
	return c
}

type env struct {
	t     *testing.T
	st    *cache.Store
	src   *hrsync.Source
	dir   string
	today time.Time
}

func newEnv(t *testing.T, th ingest.Threshold) *env {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, dir: t.TempDir(), today: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	src, err := hrsync.New(config(), th, st, hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	e.src = src
	return e
}

// file writes rows as a real export on disk and opens it.
func (e *env) file(rows ...string) *os.File {
	e.t.Helper()
	p := filepath.Join(e.dir, fmt.Sprintf("export-%d.csv", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte("\xef\xbb\xbf"+header+strings.Join(rows, "\r\n")+"\r\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { f.Close() })
	return f
}

func (e *env) importRows(force, dry bool, rows ...string) (hrsync.Summary, error) {
	e.t.Helper()
	return e.src.Import(context.Background(), e.file(rows...), force, dry)
}

func (e *env) user(key string) *scim.Resource {
	e.t.Helper()
	u, err := e.st.Get(context.Background(), scim.UserType, e.src.UserID(key))
	if err != nil {
		e.t.Fatalf("user %s: %v", key, err)
	}
	return u
}

func staff(n int) []string {
	var rows []string
	for i := range n {
		rows = append(rows, fmt.Sprintf("E%03d;e%03d@example.com;First%d;Last%d;Engineer;E000;2024-01-01;", i, i, i, i))
	}
	return rows
}

func TestImportUsers(t *testing.T) {
	e := newEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100})
	rows := []string{
		"1001;ann@example.com;Änne;Weiß;\"Head of \"\"Sales\"\"; EMEA\";;2020-01-01;",
		"1002;bob@example.com;Bob;Ray;Engineer;1001;2020-01-01;",
		"1003;cid@example.com;Cid;Roe;Engineer;1001;2027-01-01;",           // starts next month
		"1004;dee@example.com;Dee;Fox;Engineer;9999;2020-01-01;2026-12-04", // left today
	}
	// A dry run reports and writes nothing.
	sum, err := e.importRows(false, true, rows...)
	if err != nil || !sum.DryRun || sum.Created != 4 || len(sum.Changes) != 4 || sum.Changes[0].Action != "create" {
		t.Fatalf("dry run: %+v %v", sum, err)
	}
	if n, _ := e.st.Count(context.Background(), scim.UserType); n != 0 {
		t.Fatalf("a dry run wrote %d users", n)
	}
	sum, err = e.importRows(false, false, rows...)
	if err != nil || sum.Created != 4 || sum.Rows != 4 || len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "1 row(s) name a manager key") {
		t.Fatalf("import: %+v %v", sum, err)
	}
	ann, bob := e.user("1001"), e.user("1002")
	if ann.UserName() != "ann@example.com" || ann.ExternalID != "1001" || !ann.Active() ||
		ann.Attributes["title"] != `Head of "Sales"; EMEA` || ann.Attributes["name"].(map[string]any)["familyName"] != "Weiß" {
		t.Fatalf("ann: %+v", ann)
	}
	mgr := bob.Attributes[scim.SchemaEnterpriseUser].(map[string]any)["manager"].(map[string]any)
	if mgr["value"] != ann.ID {
		t.Fatalf("bob's manager %v, want ann %s", mgr, ann.ID)
	}
	if e.user("1003").Active() || e.user("1004").Active() {
		t.Fatal("a user who has not started, or who left today, is active")
	}
	// The same file again costs a hash and changes nothing; a changed row is one update.
	if sum, err := e.importRows(false, false, rows...); err != nil || !sum.Skipped {
		t.Fatalf("unchanged file: %+v %v", sum, err)
	}
	// The same file on the day cid starts is read again: cid becomes active.
	e.today = time.Date(2027, 1, 1, 8, 0, 0, 0, time.UTC)
	if sum, err := e.importRows(false, false, rows...); err != nil || sum.Skipped || sum.Updated != 1 || !e.user("1003").Active() {
		t.Fatalf("unchanged file on a new day: %+v %v", sum, err)
	}
	rows[1] = strings.Replace(rows[1], "Engineer", "Staff Engineer", 1)
	if sum, err := e.importRows(false, false, rows...); err != nil || sum.Updated != 1 || sum.Unchanged != 3 || len(sum.Changes) != 0 {
		t.Fatalf("one changed row: %+v %v", sum, err)
	}
	if e.user("1002").ID != bob.ID || e.user("1002").Attributes["title"] != "Staff Engineer" {
		t.Fatal("bob's id or title")
	}
	// A row that disappears is deleted; directory users are not the source's to touch.
	dirUser := &scim.Resource{Type: scim.UserType, ID: "dir-1", Attributes: map[string]any{"userName": "zed", "active": true}}
	if _, err := e.st.Apply(context.Background(), cache.Batch{Source: "ldap", Upserts: []*scim.Resource{dirUser}}); err != nil {
		t.Fatal(err)
	}
	if sum, err := e.importRows(false, false, rows[:3]...); err != nil || sum.Deleted != 1 {
		t.Fatalf("a row gone: %+v %v", sum, err)
	}
	if _, err := e.st.Get(context.Background(), scim.UserType, "dir-1"); err != nil {
		t.Fatalf("the directory's user: %v", err)
	}
}

// TestTruncatedExportIsHeld: a file with far fewer rows deletes nothing until approved, and
// neither does an end-date column that suddenly puts everyone in the past.
func TestTruncatedExportIsHeld(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, ingest.Threshold{MaxDeletes: 5, MaxDeletePercent: 10})
	rows := staff(100)
	if sum, err := e.importRows(false, false, rows...); err != nil || sum.Created != 100 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	sum, err := e.importRows(false, false, rows[:20]...)
	if err != nil || sum.Deleted != 0 || sum.Held != 80 {
		t.Fatalf("truncated: %+v %v", sum, err)
	}
	if n, _ := e.st.Count(ctx, scim.UserType); n != 100 {
		t.Fatalf("%d users after a held truncation", n)
	}
	holds, _ := e.st.Holds(ctx)
	if len(holds) != 80 || holds[0].Source != "csv:hr" {
		t.Fatalf("holds: %d %+v", len(holds), holds[:1])
	}
	// Everyone's end date in the past: 100 deactivations, held too.
	past := make([]string, len(rows))
	for i, r := range rows {
		past[i] = r + "2026-01-01"
	}
	sum, err = e.importRows(false, false, past...)
	if err != nil || sum.Deactivated != 0 || sum.Held != 100 {
		t.Fatalf("everyone left: %+v %v", sum, err)
	}
	if !e.user("E050").Active() {
		t.Fatal("a held deactivation deactivated")
	}
	// Approving applies exactly what was held.
	res, err := ingest.ApproveHolds(ctx, e.st, e.src.Name(), nil)
	if err != nil || res.Deactivated != 100 {
		t.Fatalf("approve: %+v %v", res, err)
	}
}

// TestTruncatedExportBesideABigDirectoryIsHeld: the threshold weighs an HR file's deletions
// against the users the file owns, not against every user of the cache. 10 of 20 contractors
// gone is 50% of the file's users, but only 0.5% of a cache that also holds 2,000 directory
// users: under any percentage limit, and under MaxDeletes.
func TestTruncatedExportBesideABigDirectoryIsHeld(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, ingest.Threshold{MaxDeletes: 50, MaxDeletePercent: 10})
	var dir []*scim.Resource
	for i := range 2000 {
		dir = append(dir, &scim.Resource{Type: scim.UserType, ID: fmt.Sprintf("dir-%05d", i),
			Attributes: map[string]any{"userName": fmt.Sprintf("d%05d@example.com", i), "active": true}})
	}
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: dir}); err != nil {
		t.Fatal(err)
	}
	rows := staff(20)
	if sum, err := e.importRows(false, false, rows...); err != nil || sum.Created != 20 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	sum, err := e.importRows(false, false, rows[:10]...)
	if err != nil || sum.Deleted != 0 || sum.Held != 10 {
		t.Fatalf("truncated to half beside 2,000 directory users: %+v %v; want the 10 deletions held", sum, err)
	}
	if n, _ := e.st.Count(ctx, scim.UserType); n != 2020 {
		t.Fatalf("%d users after a held truncation, want 2020", n)
	}
	// The directory's own passes weigh the directory's users: 10 of 2,000 is not held.
	if n, err := e.st.CountOwned(ctx, scim.UserType, ""); err != nil || n != 2000 {
		t.Fatalf("directory users %d, %v", n, err)
	}
	if n, err := e.st.CountOwned(ctx, scim.UserType, e.src.Name()); err != nil || n != 20 {
		t.Fatalf("users of %s: %d, %v", e.src.Name(), n, err)
	}
}

// TestBadFileChangesNothing: a file with a bad row, or cut mid-quote, is refused whole.
func TestBadFileChangesNothing(t *testing.T) {
	e := newEnv(t, ingest.Threshold{MaxDeletes: 1000, MaxDeletePercent: 100})
	rows := staff(10)
	if _, err := e.importRows(false, false, rows...); err != nil {
		t.Fatal(err)
	}
	bad := append(append([]string{}, rows[:5]...), "E005;;NoMail;X;;;2024-01-01;", "E001;dup@example.com;Dup;X;;;2024-01-01;")
	_, err := e.importRows(false, false, bad...)
	var p *hrcsv.Problems
	if !errors.As(err, &p) || p.Total != 2 || !strings.Contains(err.Error(), `line 7, column "Email": empty userName`) ||
		!strings.Contains(err.Error(), `line 8, column "Employee ID": duplicate key "E001"`) {
		t.Fatalf("bad rows: %v", err)
	}
	if n, _ := e.st.Count(context.Background(), scim.UserType); n != 10 {
		t.Fatalf("%d users after a refused file", n)
	}
}

func TestManagerFromTheDirectory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, ingest.Threshold{MaxDeletes: 1000, MaxDeletePercent: 100})
	boss := &scim.Resource{Type: scim.UserType, ID: "dir-boss", ExternalID: "7",
		Attributes: map[string]any{"userName": "boss", "displayName": "The Boss", "active": true}}
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: []*scim.Resource{boss}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.importRows(false, false, "C1;c1@example.com;Con;Tractor;;7;2024-01-01;"); err != nil {
		t.Fatal(err)
	}
	mgr := e.user("C1").Attributes[scim.SchemaEnterpriseUser].(map[string]any)["manager"].(map[string]any)
	if mgr["value"] != "dir-boss" {
		t.Fatalf("manager %v", mgr)
	}
}
