package hrcsv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func hrConfig() Config {
	c := DefaultConfig()
	c.Name, c.Key = "hr", "Employee ID"
	c.Mapping = map[string]string{"userName": "Email", "name.givenName": "First Name", "name.familyName": "Last Name",
		"title": "Job Title"}
	return c
}

// writeFile writes a real file, as an export would land on disk, and opens it.
func writeFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "export.csv")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readAll runs Check and Scan over one real file and returns the rows.
func readAll(t *testing.T, data []byte, c Config) ([]Row, *Report, error) {
	t.Helper()
	ctx := context.Background()
	f := writeFile(t, data)
	rep, err := Check(ctx, f, c)
	if err != nil {
		return nil, nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	var rows []Row
	err = Scan(ctx, f, c, rep, func(r Row) error { rows = append(rows, r); return nil })
	return rows, rep, err
}

// TestExcelEuropeanExport: what Excel writes in a German locale: a BOM, ';', CRLF, a quoted
// field with the delimiter, a quote and a line break in it, accents, empty trailing columns.
func TestExcelEuropeanExport(t *testing.T) {
	data := "\xef\xbb\xbfEmployee ID;Email;First Name;Last Name;Job Title;;\r\n" +
		"1001;jürgen.weiß@example.com;Jürgen;Weiß;\"Leiter; \"\"Einkauf\"\"\r\nund Logistik\";;\r\n" +
		"1002;zoë@example.com;Zoë;Ødegård;;;\r\n"
	rows, rep, err := readAll(t, []byte(data), hrConfig())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Delimiter != ';' || rep.Rows != 2 || len(rows) != 2 {
		t.Fatalf("delimiter %q, rows %d, scanned %d", rep.Delimiter, rep.Rows, len(rows))
	}
	r := rows[0]
	if r.Key != "1001" || r.Line != 2 || r.Values["userName"] != "jürgen.weiß@example.com" ||
		r.Values["title"] != "Leiter; \"Einkauf\"\nund Logistik" || r.Values["name.familyName"] != "Weiß" {
		t.Fatalf("row 1: %+v", r)
	}
	if _, ok := rows[1].Values["title"]; ok || rows[1].Line != 4 || rows[1].Values["name.familyName"] != "Ødegård" {
		t.Fatalf("row 2 (an empty title is absent; it starts on line 4 after the quoted line break): %+v", rows[1])
	}
}

func TestTabSeparatedAndWindows1252(t *testing.T) {
	tab := "Employee ID\tEmail\tFirst Name\tLast Name\tJob Title\n7\ta@example.com\tAnn\tLee\tCFO\n"
	rows, rep, err := readAll(t, []byte(tab), hrConfig())
	if err != nil || rep.Delimiter != '\t' || len(rows) != 1 || rows[0].Values["title"] != "CFO" {
		t.Fatalf("tab: %+v %+v %v", rows, rep, err)
	}
	// "Müller" and "Café" in Windows-1252 bytes (ü = 0xFC, é = 0xE9).
	cp := []byte("Employee ID,Email,First Name,Last Name,Job Title\r\n8,m@example.com,J\xfcrgen,M\xfcller,Caf\xe9 Manager\r\n")
	if _, _, err := readAll(t, cp, hrConfig()); err == nil || !strings.Contains(err.Error(), `line 2, column "First Name": not valid UTF-8`) ||
		!strings.Contains(err.Error(), `windows-1252`) {
		t.Fatalf("Windows-1252 bytes read as UTF-8 must be refused with a hint: %v", err)
	}
	c := hrConfig()
	c.Encoding = "windows-1252"
	rows, _, err = readAll(t, cp, c)
	if err != nil || rows[0].Values["name.familyName"] != "Müller" || rows[0].Values["title"] != "Café Manager" {
		t.Fatalf("windows-1252: %+v %v", rows, err)
	}
}

// TestBadRowsApplyNothing: every problem of the file is listed with its line and column, at
// most MaxProblems, and the error is a *Problems.
func TestBadRowsApplyNothing(t *testing.T) {
	data := "Employee ID,Email,First Name,Last Name,Job Title\n" +
		"1,a@example.com,Ann,Lee,CFO\n" +
		",b@example.com,Bob,Ray,\n" + // empty key
		"1,c@example.com,Cid,Roe,\n" + // duplicate key
		"4,d@example.com,Dee\n" + // cut short
		"5,e@example.com,Eve,Fox,,surplus\n" + // a surplus non-empty field
		"6,f@example.com,F\"o,Gil,\n" + // a bare quote
		"7, ,Gus,Hale,\n" // no userName
	_, _, err := readAll(t, []byte(data), hrConfig())
	var p *Problems
	if !errors.As(err, &p) || p.Total != 6 {
		t.Fatalf("want 6 problems, got %v", err)
	}
	for _, want := range []string{
		`line 3, column "Employee ID": empty key`,
		`line 4, column "Employee ID": duplicate key "1" (first on line 2)`,
		`line 5: 3 field(s), the header has 5 (is the row cut short?)`,
		`line 6: 6 fields, the header has 5: field 6 holds "surplus"`,
		`line 7: bare " in non-quoted-field`,
		`line 8, column "Email": empty userName: every user needs one`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	// Hundreds of bad rows: 50 listed, the rest counted.
	var b strings.Builder
	b.WriteString("Employee ID,Email,First Name,Last Name,Job Title\n")
	for range 120 {
		b.WriteString(",x@example.com,X,Y,Z\n")
	}
	_, _, err = readAll(t, []byte(b.String()), hrConfig())
	if !errors.As(err, &p) || p.Total != 120 || len(p.List) != MaxProblems || !strings.Contains(err.Error(), "... and 70 more") {
		t.Fatalf("many bad rows: %v", err)
	}
}

// TestTruncatedExportIsRefused: an export cut in the middle of a quoted field, or in the
// middle of a row, is refused; so is an empty one.
func TestTruncatedExportIsRefused(t *testing.T) {
	full := "Employee ID,Email,First Name,Last Name,Job Title\n1,a@example.com,Ann,Lee,\"Head of\nSales\"\n2,b@example.com,Bob,Ray,CTO\n"
	for _, cut := range []struct{ at, want string }{
		{"\"Head of\n", `line 2: extraneous or missing " in quoted-field (a quoted field is not closed: is the file cut short?)`},
		{"2,b@example.com,Bo", `line 4: 3 field(s), the header has 5 (is the row cut short?)`},
	} {
		data := full[:strings.Index(full, cut.at)+len(cut.at)]
		if _, _, err := readAll(t, []byte(data), hrConfig()); err == nil || !strings.Contains(err.Error(), cut.want) {
			t.Errorf("cut after %q: want %q, got %v", cut.at, cut.want, err)
		}
	}
	for _, empty := range []string{"", "Employee ID,Email,First Name,Last Name,Job Title\r\n"} {
		if _, _, err := readAll(t, []byte(empty), hrConfig()); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: want a refusal, got %v", empty, err)
		}
	}
}

func TestHeaderProblems(t *testing.T) {
	c := hrConfig()
	c.Mapping["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"] = "Dept"
	data := "Employee ID,Email,Email,First Name,Last Name,Job Title\n1,a@example.com,b@example.com,Ann,Lee,CFO\n"
	_, _, err := readAll(t, []byte(data), c)
	for _, want := range []string{
		`line 1, column "Email": the header names this column twice (columns 2 and 3)`,
		`line 1, column "Dept": mapping.urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department names a column the header does not have (it has: "Employee ID", "Email", "Email", "First Name"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

func TestDates(t *testing.T) {
	c := hrConfig()
	c.StartDate, c.EndDate = "Start Date", "End Date"
	head := "Employee ID,Email,First Name,Last Name,Job Title,Start Date,End Date\n"
	rows, rep, err := readAll(t, []byte(head+"1,a@x.com,A,B,,2026-01-05,\n2,b@x.com,B,C,,2025-07-01,2026-12-31\n"), c)
	if err != nil || len(rep.Warnings) != 0 || !rows[0].End.IsZero() ||
		!rows[1].End.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) || !rows[0].Start.Equal(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("ISO dates: %+v %+v %v", rows, rep, err)
	}
	// The column holds German dates: read as such, and said so.
	rows, rep, err = readAll(t, []byte(head+"1,a@x.com,A,B,,05.01.2026,\n2,b@x.com,B,C,,01.07.2025,31.12.2026\n"), c)
	if err != nil || len(rep.Warnings) != 2 || !strings.Contains(rep.Warnings[0], `every value reads as "02.01.2006"`) ||
		!rows[1].End.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("German dates: %+v %+v %v", rows, rep, err)
	}
	// 03/04/2026 is March 4th or April 3rd: refused, never guessed.
	_, _, err = readAll(t, []byte(head+"1,a@x.com,A,B,,03/04/2026,\n"), c)
	if err == nil || !strings.Contains(err.Error(), `column "Start Date": the dates (such as "03/04/2026") read both as day/month/year and as month/day/year`) {
		t.Fatalf("ambiguous dates: %v", err)
	}
	// A value no layout reads is an error of its line.
	_, _, err = readAll(t, []byte(head+"1,a@x.com,A,B,,2026-01-05,\n2,b@x.com,B,C,,2026-01-06,soon\n"), c)
	if err == nil || !strings.Contains(err.Error(), `line 3, column "End Date": "soon" is not a date in date_format "2006-01-02"`) {
		t.Fatalf("bad date: %v", err)
	}
}

// TestScanRefusesAChangedFile: the file changes between Check and Scan; Scan's error comes
// before the caller could act on the rows' absence.
func TestScanRefusesAChangedFile(t *testing.T) {
	ctx := context.Background()
	c := hrConfig()
	one := "Employee ID,Email,First Name,Last Name,Job Title\n1,a@x.com,A,B,\n2,b@x.com,B,C,\n"
	rep, err := Check(ctx, strings.NewReader(one), c)
	if err != nil {
		t.Fatal(err)
	}
	err = Scan(ctx, strings.NewReader(one[:strings.Index(one, "2,")]), c, rep, func(Row) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "changed since it was checked") {
		t.Fatalf("a shorter file at Scan: %v", err)
	}
	d, _ := Digest(strings.NewReader(one))
	if d != rep.SHA256 {
		t.Fatal("Digest differs from Check's")
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Mode: "people", Delimiter: "::", Encoding: "latin9", StartDate: "S", DateFormat: "YYYY-MM-DD"}
	var msgs []string
	for _, e := range c.Validate() {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"name: required", `mode: want "users" or "enrich"`, "key: required", "delimiter:", "encoding:", `date_format: "YYYY-MM-DD" is not a Go date layout`} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	ok := hrConfig()
	if errs := ok.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func BenchmarkCheckAndScan(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("Employee ID,Email,First Name,Last Name,Job Title,Start Date\n")
	for i := range 100000 {
		buf.WriteString("E")
		buf.WriteString(strings.Repeat("0", 6-len(itoa(i))) + itoa(i))
		buf.WriteString(",user" + itoa(i) + "@example.com,First,Last,\"Engineer, Level 2\",2024-03-01\n")
	}
	c := hrConfig()
	c.StartDate = "Start Date"
	ctx := context.Background()
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Check(ctx, bytes.NewReader(buf.Bytes()), c)
		if err != nil {
			b.Fatal(err)
		}
		if err := Scan(ctx, bytes.NewReader(buf.Bytes()), c, rep, func(Row) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}

// TestRereadByOffset: the rows CheckRows passes carry what Scan's carry (digests, offsets), and
// a Rereader reads each again by its offset, through a BOM, CRLF and a quoted line break; a row
// that is not the one checked, and a file that is not UTF-8, are refused.
func TestRereadByOffset(t *testing.T) {
	ctx := context.Background()
	c := hrConfig()
	c.StartDate = "Start"
	data := "\xef\xbb\xbfEmployee ID;Email;First Name;Last Name;Job Title;Start\r\n" +
		"1001;a@example.com;Ann;Lee;\"Head; \"\"Sales\"\"\r\nEMEA\";2024-02-01\r\n" +
		"\r\n" +
		"1002;b@example.com;Bob;Ray;;\r\n" +
		"1003;c@example.com;Cid;Roe;CFO;2023-12-31\r\n"
	f := writeFile(t, []byte(data))
	var checked []Row
	rep, err := CheckRows(ctx, f, c, func(r Row) error {
		r.Values = maps.Clone(r.Values) // reused for the next row
		checked = append(checked, r)
		return nil
	})
	if err != nil || !rep.DatesAsConfigured() || len(checked) != 3 {
		t.Fatalf("check: %d rows, %v", len(checked), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var scanned []Row
	if err := Scan(ctx, f, c, rep, func(r Row) error { scanned = append(scanned, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(checked, scanned) {
		t.Fatalf("CheckRows gave\n%+v\nScan gave\n%+v", checked, scanned)
	}
	if i, ok := rep.Index("1003"); !ok || i != 2 {
		t.Fatalf("Index(1003) = %d %v", i, ok)
	}
	rr, err := NewRereader(f, c, rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 0, 1} {
		want := checked[i]
		got, err := rr.Row(want.Offset, want.Line, want.Digest)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d again: %+v %v, want %+v", i, got, err, want)
		}
	}
	if _, err := rr.Row(checked[1].Offset, checked[1].Line, checked[0].Digest); err == nil || !strings.Contains(err.Error(), "changed since it was checked: line 5") {
		t.Fatalf("another row at that offset: %v", err)
	}
	if checked[0].Digest == checked[1].Digest || checked[0].Offset != 3+int64(strings.Index(data[3:], "1001")) {
		t.Fatalf("digests or offset: %+v", checked[:2])
	}
	c.Encoding, c.StartDate = "windows-1252", ""
	rep, err = CheckRows(ctx, writeFile(t, []byte("Employee ID,Email,First Name,Last Name,Job Title\r\n8,m@example.com,J\xfcrgen,M\xfcller,\r\n")), c, func(r Row) error {
		if r.Offset != -1 {
			t.Errorf("an offset in a windows-1252 file: %d", r.Offset)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRereader(f, c, rep); !errors.Is(err, ErrNoOffsets) {
		t.Fatalf("windows-1252: %v", err)
	}
}
