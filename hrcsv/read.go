package hrcsv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ldapscim/ldapscim/internal/termsafe"
	"golang.org/x/text/encoding/charmap"
)

// Row is one row of a file that passed Check.
type Row struct {
	Line int    // the line the row starts on; the header is line 1
	Key  string // the key column's value, trimmed
	// Values are the mapped columns' cells by SCIM path, trimmed; an empty cell is absent.
	Values map[string]string
	// Start and End are the start_date and end_date cells, UTC midnight; zero when the column
	// is not configured or the cell is empty.
	Start, End time.Time
}

// Report is what Check learned about a file that passed; Scan needs it.
type Report struct {
	Rows      int
	Delimiter rune
	// SHA256 is the digest of the file's bytes, so a scheduled pass skips a file it has read.
	SHA256 [32]byte
	// Layouts are the layouts the date columns use, by column: date_format, or the layout
	// every value of the column matched when date_format matched none (see Warnings).
	Layouts  map[string]string
	Warnings []string

	keys map[[16]byte]int32 // digest of each key → its line
}

// Has reports whether the file has a row with that key (trimmed), in constant time: what a
// reference from one row to another (a manager) resolves against.
func (r *Report) Has(key string) bool {
	_, ok := r.keys[keyDigest(key)]
	return ok
}

// MaxProblems is how many problems a Problems error lists; it counts the rest.
const MaxProblems = 50

// Problem is one bad cell, row or header of a file.
type Problem struct {
	Line   int
	Column string // "" when the problem is the row's
	Msg    string
}

func (p Problem) String() string {
	if p.Column == "" {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return fmt.Sprintf("line %d, column %q: %s", p.Line, p.Column, p.Msg)
}

// Problems is Check's error for a file it refuses: the first MaxProblems problems found
// (sorted by line), and how many there are in all.
type Problems struct {
	List  []Problem
	Total int
}

func (p *Problems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem(s) in the file, nothing was applied:", p.Total)
	for _, x := range p.List {
		b.WriteString("\n  ")
		b.WriteString(x.String())
	}
	if more := p.Total - len(p.List); more > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", more)
	}
	return b.String()
}

func (p *Problems) add(line int, column, format string, a ...any) {
	p.Total++
	if len(p.List) < MaxProblems {
		p.List = append(p.List, Problem{Line: line, Column: column, Msg: fmt.Sprintf(format, a...)})
	}
}

// Check reads all of r and returns what Scan needs, or a *Problems listing every bad row (the
// first MaxProblems of them). Other errors are read errors and ctx.Err(). It keeps 16 bytes
// per row in memory, for the duplicate key check.
func Check(ctx context.Context, r io.Reader, c Config) (*Report, error) {
	h := sha256.New()
	f, err := open(io.TeeReader(r, h), c, 0)
	if err != nil {
		return nil, err
	}
	rep := &Report{Delimiter: f.delim, Layouts: map[string]string{}}
	probs := &Problems{}
	f.header(probs)
	dates := f.dateColumns(c)
	seen := make(map[[16]byte]int32)
	for {
		line, rec, err := f.next(probs)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec == nil {
			continue
		}
		if rep.Rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rep.Rows++
		if !f.fieldCount(probs, line, rec) {
			continue
		}
		key := strings.TrimSpace(rec[f.keyCol])
		if key == "" {
			probs.add(line, c.Key, "empty key")
		} else {
			d := keyDigest(key)
			if first, dup := seen[d]; dup {
				probs.add(line, c.Key, "duplicate key %q (first on line %d)", key, first)
			} else {
				seen[d] = int32(min(line, 1<<31-1))
			}
		}
		if f.userCol >= 0 && strings.TrimSpace(rec[f.userCol]) == "" {
			probs.add(line, f.colName(f.userCol), "empty userName: every user needs one")
		}
		for _, d := range dates {
			d.see(line, strings.TrimSpace(rec[d.col]))
		}
	}
	if rep.Rows == 0 && probs.Total == 0 {
		probs.add(1, "", "the file has a header and no rows; an empty export is refused (it would delete every user of the source)")
	}
	for _, d := range dates {
		layout, warn := d.decide(probs)
		rep.Layouts[d.name] = layout
		if warn != "" {
			rep.Warnings = append(rep.Warnings, warn)
		}
	}
	if probs.Total > 0 {
		slices.SortStableFunc(probs.List, func(a, b Problem) int { return a.Line - b.Line })
		return nil, probs
	}
	copy(rep.SHA256[:], h.Sum(nil))
	rep.keys = seen
	return rep, nil
}

// Scan reads r again, as Check read it, and calls fn for each row in file order. It fails if
// the file is no longer the one Check passed (its digest differs at the end), so a caller must
// not act on the absence of rows until Scan returned nil. fn's error stops the scan.
func Scan(ctx context.Context, r io.Reader, c Config, rep *Report, fn func(Row) error) error {
	h := sha256.New()
	f, err := open(io.TeeReader(r, h), c, rep.Delimiter)
	if err != nil {
		return err
	}
	probs := &Problems{}
	f.header(probs)
	n := 0
	for {
		line, rec, err := f.next(probs)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if probs.Total > 0 || rec == nil || !f.fieldCount(probs, line, rec) {
			return fmt.Errorf("the file changed since it was checked: %w", probs)
		}
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		row := Row{Line: line, Key: strings.TrimSpace(rec[f.keyCol]), Values: make(map[string]string, len(f.mapped))}
		if row.Key == "" {
			return fmt.Errorf("the file changed since it was checked: line %d: empty key", line)
		}
		for _, m := range f.mapped {
			if v := strings.TrimSpace(rec[m.col]); v != "" {
				row.Values[m.path] = v
			}
		}
		if row.Start, err = f.date(rec, c.StartDate, rep); err == nil {
			row.End, err = f.date(rec, c.EndDate, rep)
		}
		if err != nil {
			return fmt.Errorf("the file changed since it was checked: line %d: %w", line, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if !bytes.Equal(h.Sum(nil), rep.SHA256[:]) || n != rep.Rows {
		return errors.New("the file changed since it was checked; read it again")
	}
	return nil
}

// Digest returns the SHA-256 of all of r: what a scheduled pass compares with the digest of
// the last import before it reads the file.
func Digest(r io.Reader) ([32]byte, error) {
	var d [32]byte
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return d, err
	}
	copy(d[:], h.Sum(nil))
	return d, nil
}

func keyDigest(key string) [16]byte {
	s := sha256.Sum256([]byte(key))
	var d [16]byte
	copy(d[:], s[:16])
	return d
}

// file is one read of a file: the CSV reader and the header's columns.
type file struct {
	cfg    Config
	csv    *csv.Reader
	delim  rune
	utf8   bool
	cols   []string       // the header, trimmed
	index  map[string]int // header → column
	keyCol int
	mapped []mappedCol
	// userCol is the userName column in users mode (-1: none): every row needs a value.
	userCol int
	// ok is false once the header has a problem: rows are not checked against it.
	ok bool
}

type mappedCol struct {
	path string
	col  int
}

// open decodes r and sniffs the delimiter (delim 0) from the header line.
func open(r io.Reader, c Config, delim rune) (*file, error) {
	f := &file{cfg: c, delim: delim, userCol: -1}
	switch strings.ToLower(c.Encoding) {
	case "windows-1252", "cp1252":
		r = charmap.Windows1252.NewDecoder().Reader(r)
	default:
		f.utf8 = true
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	if f.delim == 0 {
		d, err := c.delimiter()
		if err != nil {
			return nil, err
		}
		if f.delim = d; d == 0 {
			head, err := br.Peek(64 << 10)
			if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
			f.delim = sniff(head)
		}
	}
	f.csv = csv.NewReader(br)
	f.csv.Comma = f.delim
	f.csv.FieldsPerRecord = -1
	f.csv.ReuseRecord = true
	return f, nil
}

// sniff picks the delimiter of the header line: the most frequent of , ; tab | outside
// quotes (a comma on a tie, and when there is none: a one-column file).
func sniff(head []byte) rune {
	counts := map[byte]int{}
	quoted := false
	for _, b := range head {
		if b == '"' {
			quoted = !quoted
			continue
		}
		if !quoted && (b == '\n' || b == '\r') {
			break
		}
		if !quoted {
			counts[b]++
		}
	}
	best, n := byte(','), counts[',']
	for _, b := range []byte{';', '\t', '|'} {
		if counts[b] > n {
			best, n = b, counts[b]
		}
	}
	return rune(best)
}

// header reads the header and finds the configured columns.
func (f *file) header(probs *Problems) {
	rec, err := f.csv.Read()
	if err != nil {
		if err == io.EOF {
			probs.add(1, "", "the file is empty: no header")
		} else {
			probs.add(1, "", "%v", err)
		}
		return
	}
	f.index = map[string]int{}
	for i, h := range rec {
		h = strings.TrimSpace(h)
		if f.utf8 && !utf8.ValidString(h) {
			probs.add(1, "", "column %d: the header is not valid UTF-8 (set encoding = \"windows-1252\" if the file comes from Excel on Windows)", i+1)
		}
		f.cols = append(f.cols, h)
		if h == "" {
			continue
		}
		if first, dup := f.index[h]; dup {
			probs.add(1, h, "the header names this column twice (columns %d and %d)", first+1, i+1)
			continue
		}
		f.index[h] = i
	}
	before := probs.Total
	col := func(key, name string) int {
		i, ok := f.index[name]
		if !ok {
			probs.add(1, name, "%s names a column the header does not have (it has: %s)", key, f.list())
		}
		return i
	}
	f.keyCol = col("key", f.cfg.Key)
	for _, path := range sortedKeys(f.cfg.Mapping) {
		f.mapped = append(f.mapped, mappedCol{path: path, col: col("mapping."+path, f.cfg.Mapping[path])})
	}
	for _, d := range []struct{ key, name string }{{"start_date", f.cfg.StartDate}, {"end_date", f.cfg.EndDate}} {
		if d.name != "" {
			col(d.key, d.name)
		}
	}
	if f.cfg.Mode == ModeUsers {
		for _, m := range f.mapped {
			if strings.EqualFold(m.path, "userName") {
				f.userCol = m.col
			}
		}
	}
	f.ok = probs.Total == before
}

func (f *file) list() string {
	var named []string
	for _, c := range f.cols {
		if c != "" {
			named = append(named, fmt.Sprintf("%q", c))
		}
	}
	if len(named) > 20 {
		named = append(named[:20], "...")
	}
	return strings.Join(named, ", ")
}

// next returns the next record and the line it starts on. A record that does not parse (bad
// quoting, invalid UTF-8) is a problem and comes back nil; so does every record when the
// header had one.
func (f *file) next(probs *Problems) (int, []string, error) {
	rec, err := f.csv.Read()
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrQuote) {
			msg += " (a quoted field is not closed: is the file cut short?)"
		}
		probs.add(pe.StartLine, "", "%s", msg)
		return pe.StartLine, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	line, _ := f.csv.FieldPos(0)
	if f.utf8 {
		for i, v := range rec {
			if !utf8.ValidString(v) {
				probs.add(line, f.colName(i), "not valid UTF-8 (set encoding = \"windows-1252\" if the file comes from Excel on Windows)")
				return line, nil, nil
			}
		}
	}
	if !f.ok {
		return line, nil, nil
	}
	return line, rec, nil
}

func (f *file) colName(i int) string {
	if i < len(f.cols) && f.cols[i] != "" {
		return f.cols[i]
	}
	return fmt.Sprintf("#%d", i+1)
}

// fieldCount checks a record against the header: fewer fields is a problem (a row cut short);
// more is one unless the extra fields are empty (spreadsheets write empty trailing columns).
func (f *file) fieldCount(probs *Problems, line int, rec []string) bool {
	if len(rec) < len(f.cols) {
		probs.add(line, "", "%d field(s), the header has %d (is the row cut short?)", len(rec), len(f.cols))
		return false
	}
	for i := len(f.cols); i < len(rec); i++ {
		if strings.TrimSpace(rec[i]) != "" {
			probs.add(line, "", "%d fields, the header has %d: field %d holds %q", len(rec), len(f.cols), i+1, termsafe.Clip(rec[i], 40))
			return false
		}
	}
	return true
}

// date parses the cell of the date column name with the layout Check chose.
func (f *file) date(rec []string, name string, rep *Report) (time.Time, error) {
	if name == "" {
		return time.Time{}, nil
	}
	v := strings.TrimSpace(rec[f.index[name]])
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(rep.Layouts[name], v)
	if err != nil {
		return time.Time{}, fmt.Errorf("column %q: %w", name, err)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
