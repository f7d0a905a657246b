package hrcsv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"hash"
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
	// Digest is a digest of the key and the mapped cells (not the dates): equal digests, equal
	// Key and Values.
	Digest [16]byte
	// Offset is where the row starts in the file's bytes, for Rereader; -1 when the encoding
	// is not UTF-8 (the decoded bytes are not the file's).
	Offset int64
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

	keys  map[[16]byte]int32 // digest of each key → its row's index (0 is the first row)
	dates bool               // every date column uses date_format
}

// Has reports whether the file has a row with that key (trimmed), in constant time: what a
// reference from one row to another (a manager) resolves against.
func (r *Report) Has(key string) bool {
	_, ok := r.keys[keyDigest(key)]
	return ok
}

// Index returns the index of the row with that key (trimmed) in file order, 0 for the first
// row; false if the file has none.
func (r *Report) Index(key string) (int, bool) {
	i, ok := r.keys[keyDigest(key)]
	return int(i), ok
}

// DatesAsConfigured reports whether every date column reads with date_format, so that the
// Start and End of the rows CheckRows passed are the ones Scan reads.
func (r *Report) DatesAsConfigured() bool { return r.dates }

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
// first MaxProblems of them). Other errors are read errors and ctx.Err(). It keeps 24 bytes
// per row in memory, for the duplicate key check and Report.Index.
func Check(ctx context.Context, r io.Reader, c Config) (*Report, error) {
	return CheckRows(ctx, r, c, nil)
}

// CheckRows is Check that also calls fn (unless nil) with each row, in file order, until the
// first problem: the caller learns the file in the read that checks it, and must not act on
// it unless CheckRows returns nil. A row's Values map is reused for the next row; its Start
// and End are read with date_format, and are the rows' only when Report.DatesAsConfigured.
// The Line of a row is only 32 bits wide. fn's error stops the read.
func CheckRows(ctx context.Context, r io.Reader, c Config, fn func(Row) error) (*Report, error) {
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
	var lines []int32 // the line of each row, for the duplicate key message
	values := make(map[string]string, len(f.mapped))
	rd := newRowDigest()
	for {
		off := f.offset()
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
		lines = append(lines, int32(min(line, 1<<31-1)))
		if !f.fieldCount(probs, line, rec) {
			continue
		}
		key := strings.TrimSpace(rec[f.keyCol])
		if key == "" {
			probs.add(line, c.Key, "empty key")
		} else {
			d := keyDigest(key)
			if first, dup := seen[d]; dup {
				probs.add(line, c.Key, "duplicate key %q (first on line %d)", key, lines[first])
			} else {
				seen[d] = int32(rep.Rows - 1)
			}
		}
		if f.userCol >= 0 && strings.TrimSpace(rec[f.userCol]) == "" {
			probs.add(line, f.colName(f.userCol), "empty userName: every user needs one")
		}
		var start, end time.Time
		for _, d := range dates {
			t := d.see(line, strings.TrimSpace(rec[d.col]))
			if d.name == c.StartDate {
				start = t
			} else {
				end = t
			}
		}
		if fn == nil || probs.Total > 0 {
			continue
		}
		clear(values)
		row := f.row(line, key, rec, values, rd)
		row.Offset, row.Start, row.End = off, start, end
		if err := fn(row); err != nil {
			return nil, err
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
	rep.dates = true
	for _, d := range dates {
		if rep.Layouts[d.name] != d.layout {
			rep.dates = false
		}
	}
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
	rd := newRowDigest()
	n := 0
	for {
		off := f.offset()
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
		row, err := f.fullRow(line, rec, rep, rd)
		if err != nil {
			return err
		}
		row.Offset = off
		if err := fn(row); err != nil {
			return err
		}
	}
	if !bytes.Equal(h.Sum(nil), rep.SHA256[:]) || n != rep.Rows {
		return errors.New("the file changed since it was checked; read it again")
	}
	return nil
}

// fullRow makes the Row of a record Check passed (with a Values map of its own), its dates
// read with the layouts Check chose.
func (f *file) fullRow(line int, rec []string, rep *Report, rd *rowDigest) (Row, error) {
	key := strings.TrimSpace(rec[f.keyCol])
	if key == "" {
		return Row{}, fmt.Errorf("the file changed since it was checked: line %d: empty key", line)
	}
	row := f.row(line, key, rec, make(map[string]string, len(f.mapped)), rd)
	var err error
	if row.Start, err = f.date(rec, f.cfg.StartDate, rep); err == nil {
		row.End, err = f.date(rec, f.cfg.EndDate, rep)
	}
	if err != nil {
		return Row{}, fmt.Errorf("the file changed since it was checked: line %d: %w", line, err)
	}
	return row, nil
}

// row makes the Row of a record, without its dates: its key, its mapped cells (into values)
// and their digest.
func (f *file) row(line int, key string, rec []string, values map[string]string, rd *rowDigest) Row {
	row := Row{Line: line, Key: key, Values: values, Offset: -1}
	rd.reset(key)
	for _, m := range f.mapped {
		v := strings.TrimSpace(rec[m.col])
		if v != "" {
			row.Values[m.path] = v
		}
		rd.add(m.path, v)
	}
	row.Digest = rd.sum()
	return row
}

// rowDigest computes Row.Digest: SHA-256 of the key and each mapped path and cell, each
// after its length (so no two rows' strings run together alike), cut to 16 bytes.
type rowDigest struct {
	h   hash.Hash
	buf []byte
	out [sha256.Size]byte
}

func newRowDigest() *rowDigest { return &rowDigest{h: sha256.New()} }

func (d *rowDigest) reset(key string) {
	d.h.Reset()
	d.buf = append(binary.AppendUvarint(d.buf[:0], uint64(len(key))), key...)
}

func (d *rowDigest) add(path, v string) {
	d.buf = append(binary.AppendUvarint(d.buf, uint64(len(path))), path...)
	d.buf = append(binary.AppendUvarint(d.buf, uint64(len(v))), v...)
}

func (d *rowDigest) sum() [16]byte {
	d.h.Write(d.buf)
	var out [16]byte
	copy(out[:], d.h.Sum(d.out[:0]))
	return out
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
	// base is where the decoded bytes start in the file (after a BOM); -1 when they are not
	// the file's (windows-1252).
	base int64
}

type mappedCol struct {
	path string
	col  int
}

// open decodes r and sniffs the delimiter (delim 0) from the header line.
func open(r io.Reader, c Config, delim rune) (*file, error) {
	f := &file{cfg: c, delim: delim, userCol: -1, base: -1}
	switch strings.ToLower(c.Encoding) {
	case "windows-1252", "cp1252":
		r = charmap.Windows1252.NewDecoder().Reader(r)
	default:
		f.utf8, f.base = true, 0
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
		if f.utf8 {
			f.base = 3
		}
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

// offset is where the next record starts in the file, or -1 (file.base).
func (f *file) offset() int64 {
	if f.base < 0 {
		return -1
	}
	return f.base + f.csv.InputOffset()
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

// Rereader reads single rows of a file CheckRows passed again, by their Offset: a pass that
// needs only the rows that changed reads those, not the whole file again.
type Rereader struct {
	r   io.ReadSeeker
	f   *file
	rep *Report
	rd  *rowDigest
}

// ErrNoOffsets is NewRereader's error for a file whose rows have no Offset (not UTF-8).
var ErrNoOffsets = errors.New("the rows of a file that is not UTF-8 have no offsets")

// NewRereader reads the header of r, the file CheckRows passed with rep, again.
func NewRereader(r io.ReadSeeker, c Config, rep *Report) (*Rereader, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	f, err := open(r, c, rep.Delimiter)
	if err != nil {
		return nil, err
	}
	if f.base < 0 {
		return nil, ErrNoOffsets
	}
	probs := &Problems{}
	f.header(probs)
	if probs.Total > 0 {
		return nil, fmt.Errorf("the file changed since it was checked: %w", probs)
	}
	return &Rereader{r: r, f: f, rep: rep, rd: newRowDigest()}, nil
}

// Row reads the row at off (its Row.Offset), which starts on line, and checks that it is
// still the row of that digest (its Row.Digest) CheckRows passed: else the error says the
// file changed.
func (x *Rereader) Row(off int64, line int, digest [16]byte) (Row, error) {
	row, err := x.Read(off, line)
	if err != nil {
		return Row{}, err
	}
	if row.Digest != digest {
		return Row{}, fmt.Errorf("the file changed since it was checked: line %d", line)
	}
	return row, nil
}

// Read reads the row at off (its Row.Offset), which starts on line: Row without the check of
// its digest, for a caller that checks the row by a digest of its own.
func (x *Rereader) Read(off int64, line int) (Row, error) {
	if _, err := x.r.Seek(off, io.SeekStart); err != nil {
		return Row{}, err
	}
	cr := csv.NewReader(bufio.NewReaderSize(x.r, 4<<10))
	cr.Comma = x.f.delim
	cr.FieldsPerRecord = -1
	rec, err := cr.Read()
	var pe *csv.ParseError
	if err != nil && err != io.EOF && !errors.As(err, &pe) {
		return Row{}, err
	}
	probs := &Problems{}
	if err != nil || !x.f.fieldCount(probs, line, rec) {
		return Row{}, fmt.Errorf("the file changed since it was checked: line %d", line)
	}
	row, err := x.f.fullRow(line, rec, x.rep, x.rd)
	if err != nil {
		return Row{}, err
	}
	row.Offset = off
	return row, nil
}
