package hrsync_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// chain is n rows, each managed by the next row (a key the file lists further down; the last
// row's manager is the first row).
func chain(n int) []string {
	var rows []string
	for i := range n {
		rows = append(rows, fmt.Sprintf("E%03d;e%03d@example.com;First%d;Last%d;Engineer;E%03d;2024-01-01;", i, i, i, i, (i+1)%n))
	}
	return rows
}

func managerOf(u *scim.Resource) string {
	ext, _ := u.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
	m, _ := ext["manager"].(map[string]any)
	s, _ := m["value"].(string)
	return s
}

// TestReimportBuildsOnlyChangedRows: a re-import of a file with a few changed rows builds
// those (read again by their offsets) and the rows whose manager went, deletes the row that
// disappeared, creates the new one, and counts every other row unchanged.
func TestReimportBuildsOnlyChangedRows(t *testing.T) {
	e := newEnv(t, ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 10})
	rows := chain(200)
	if sum, err := e.importRows(true, false, rows...); err != nil || sum.Created != 200 || len(sum.Warnings) != 0 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	if managerOf(e.user("E010")) != e.src.UserID("E011") || managerOf(e.user("E199")) != e.src.UserID("E000") {
		t.Fatal("managers named further down the file")
	}
	if sum, err := e.importRows(true, false, rows...); err != nil || sum.Unchanged != 200 || sum.Created+sum.Updated+sum.Deleted != 0 {
		t.Fatalf("the same file again: %+v %v", sum, err)
	}
	next := append([]string{}, rows...)
	next[10] = strings.Replace(next[10], "Engineer", "Staff Engineer", 1)
	next[20] += "2026-01-01"                                                        // left: a deactivation
	next = append(next[:30], next[31:]...)                                          // E030 gone: E029's manager too
	next = append(next, "E200;e200@example.com;New;Hire;Engineer;E000;2024-01-01;") // new
	dry, err := e.importRows(true, true, next...)
	if err != nil || dry.Updated != 2 || dry.Deactivated != 1 || dry.Deleted != 1 || dry.Created != 1 || len(dry.Changes) != 5 ||
		!slices.ContainsFunc(dry.Changes, func(c hrsync.Change) bool { return c.Action == "update" && c.Key == "E010" }) {
		t.Fatalf("a dry run of a few changed rows: %+v %v", dry, err)
	}
	if e.user("E010").Attributes["title"] != "Engineer" {
		t.Fatal("the dry run wrote")
	}
	sum, err := e.importRows(true, false, next...)
	if err != nil || sum.Updated != 2 || sum.Deactivated != 1 || sum.Deleted != 1 || sum.Created != 1 || sum.Unchanged != 196 ||
		len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "1 row(s) name a manager key") {
		t.Fatalf("a few changed rows: %+v %v", sum, err)
	}
	if e.user("E010").Attributes["title"] != "Staff Engineer" || e.user("E020").Active() || managerOf(e.user("E029")) != "" ||
		managerOf(e.user("E200")) != e.src.UserID("E000") || managerOf(e.user("E011")) != e.src.UserID("E012") {
		t.Fatal("the changed rows' users")
	}
	if _, err := e.st.Get(context.Background(), scim.UserType, e.src.UserID("E030")); err == nil {
		t.Fatal("E030 survived")
	}
	// The dates in a layout date_format does not read: the pass reads the file row by row,
	// and finds every row's record the same.
	dotted := make([]string, len(next))
	for i, r := range next {
		dotted[i] = strings.ReplaceAll(strings.ReplaceAll(r, "2024-01-01", "01.01.2024"), "2026-01-01", "01.01.2026")
	}
	sum, err = e.importRows(true, false, dotted...)
	if err != nil || sum.Unchanged != 200 || sum.Created+sum.Updated+sum.Deleted+sum.Deactivated != 0 || len(sum.Warnings) != 3 {
		t.Fatalf("the same rows with other dates: %+v %v", sum, err)
	}
	dotted[5] = strings.Replace(dotted[5], "Engineer", "Architect", 1)
	if sum, err = e.importRows(true, false, dotted...); err != nil || sum.Updated != 1 || sum.Unchanged != 199 {
		t.Fatalf("one changed row, other dates: %+v %v", sum, err)
	}
	if e.user("E005").Attributes["title"] != "Architect" {
		t.Fatal("E005's title")
	}
}

// swapFile is a file that another writer replaces after the pass checked it: every seek past
// the start reads the new content.
type swapFile struct {
	*bytes.Reader
	next []byte
}

func (f *swapFile) Seek(off int64, whence int) (int64, error) {
	if off > 0 && f.next != nil {
		f.Reader, f.next = bytes.NewReader(f.next), nil
	}
	return f.Reader.Seek(off, whence)
}

// TestRowChangedAfterTheCheck: a changed row read again by its offset that is no longer the
// row the check read fails the pass, which writes nothing and keeps the watermark.
func TestRowChangedAfterTheCheck(t *testing.T) {
	e := newEnv(t, ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 10})
	rows := chain(100)
	if _, err := e.importRows(true, false, rows...); err != nil {
		t.Fatal(err)
	}
	content := func(rows []string) []byte {
		return []byte("\xef\xbb\xbf" + header + strings.Join(rows, "\r\n") + "\r\n")
	}
	rows[40] = strings.Replace(rows[40], "Engineer", "Designer", 1)
	checked := content(rows)
	rows[40] = strings.Replace(rows[40], "Designer", "Director", 1) // same length, same offsets
	_, err := e.src.Import(context.Background(), &swapFile{Reader: bytes.NewReader(checked), next: content(rows)}, true, false)
	if err == nil || !strings.Contains(err.Error(), "changed since it was checked: line 42") {
		t.Fatalf("a row changed after the check: %v", err)
	}
	if e.user("E040").Attributes["title"] != "Engineer" {
		t.Fatal("the pass wrote a row that changed after the check")
	}
	// The file as checked, read whole: the pass applies it.
	sum, err := e.src.Import(context.Background(), io.ReadSeeker(bytes.NewReader(checked)), false, false)
	if err != nil || sum.Skipped || sum.Updated != 1 || e.user("E040").Attributes["title"] != "Designer" {
		t.Fatalf("the file again: %+v %v", sum, err)
	}
}

// TestActiveColumn: a mapped active column decides a user's active flag with the dates; a
// value that is no boolean fails the pass at its line.
func TestActiveColumn(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 100})
	c := config()
	c.Mapping["active"] = "Status"
	src, err := hrsync.New(c, ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 100}, e.st, hrsync.Options{Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	imp := func(rows ...string) (hrsync.Summary, error) {
		data := "Employee ID;Email;First Name;Last Name;Job Title;Manager ID;Start Date;End Date;Status\n" + strings.Join(rows, "\n") + "\n"
		return src.Import(ctx, bytes.NewReader([]byte(data)), true, false)
	}
	rows := []string{"A1;a1@example.com;A;One;;;2020-01-01;;yes", "A2;a2@example.com;A;Two;;;2020-01-01;;no",
		"A3;a3@example.com;A;Three;;;2020-01-01;2021-01-01;yes", "A4;a4@example.com;A;Four;;;2020-01-01;;"}
	if sum, err := imp(rows...); err != nil || sum.Created != 4 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	active := func(key string) bool {
		u, err := e.st.Get(ctx, scim.UserType, src.UserID(key))
		if err != nil {
			t.Fatal(err)
		}
		return u.Active()
	}
	if !active("A1") || active("A2") || active("A3") || !active("A4") {
		t.Fatal("active: want A1 and A4 only")
	}
	rows[1] = strings.Replace(rows[1], ";no", ";yes", 1)
	if sum, err := imp(rows...); err != nil || sum.Updated != 1 || sum.Unchanged != 3 || !active("A2") {
		t.Fatalf("A2 made active: %+v %v", sum, err)
	}
	rows[3] += "maybe"
	if _, err := imp(rows...); err == nil || !strings.Contains(err.Error(), `line 5, column "Status": "maybe" is not a boolean`) {
		t.Fatalf("a value that is no boolean: %v", err)
	}
}
