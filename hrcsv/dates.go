package hrcsv

import (
	"fmt"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/internal/termsafe"
)

// alternatives are the date layouts HR exports commonly hold, tried when date_format reads
// none of a column's values: ISO, ISO with a time, German/European, US, and spreadsheet forms.
var alternatives = []string{
	"2006-01-02",
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"02.01.2006",
	"2.1.2006",
	"01/02/2006",
	"1/2/2006",
	"02/01/2006",
	"2/1/2006",
	"02-Jan-2006",
	"2 Jan 2006",
	"Jan 2, 2006",
	"20060102",
}

// dateColumn follows one date column through Check: which layouts read every value so far.
type dateColumn struct {
	name, layout string // the column, date_format
	col          int
	values       int
	fails        []Problem // date_format's failures, at most MaxProblems
	failTotal    int
	alive        []bool // alive[i]: alternatives[i] read every value so far
	example      string // a value date_format did not read
}

func (f *file) dateColumns(c Config) []*dateColumn {
	var out []*dateColumn
	if !f.ok {
		return nil
	}
	for _, name := range []string{c.StartDate, c.EndDate} {
		if name == "" {
			continue
		}
		d := &dateColumn{name: name, layout: c.DateFormat, col: f.index[name], alive: make([]bool, len(alternatives))}
		for i := range d.alive {
			d.alive[i] = true
		}
		out = append(out, d)
	}
	return out
}

// see notes the value v of the column on that line, and returns it read with date_format at
// UTC midnight (zero when it is empty or does not read).
func (d *dateColumn) see(line int, v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	d.values++
	t, err := time.Parse(d.layout, v)
	if err != nil {
		d.failTotal++
		if len(d.fails) < MaxProblems {
			d.fails = append(d.fails, Problem{Line: line, Column: d.name, Msg: fmt.Sprintf("%q is not a date in date_format %q", termsafe.Clip(v, 40), d.layout)})
		}
		if d.example == "" {
			d.example = v
		}
	}
	for i, l := range alternatives {
		if d.alive[i] {
			if _, err := time.Parse(l, v); err != nil {
				d.alive[i] = false
			}
		}
	}
	if err != nil {
		return time.Time{}
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// decide returns the layout of the column: date_format when it read every value; else the one
// alternative that did (with a warning saying so). Day-first and month-first layouts that both
// read every value are ambiguous, and no layout that reads them all is an error per value.
func (d *dateColumn) decide(probs *Problems) (string, string) {
	if d.failTotal == 0 {
		return d.layout, ""
	}
	var alive []string
	for i, ok := range d.alive {
		if ok {
			alive = append(alive, alternatives[i])
		}
	}
	dayFirst, monthFirst := false, false
	for _, l := range alive {
		switch {
		case strings.HasPrefix(l, "02/") || strings.HasPrefix(l, "2/"):
			dayFirst = true
		case strings.HasPrefix(l, "01/") || strings.HasPrefix(l, "1/"):
			monthFirst = true
		}
	}
	switch {
	case dayFirst && monthFirst:
		probs.add(1, d.name, "the dates (such as %q) read both as day/month/year and as month/day/year; set date_format to \"02/01/2006\" or \"01/02/2006\"", termsafe.Clip(d.example, 40))
		return d.layout, ""
	case len(alive) > 0:
		return alive[0], fmt.Sprintf("column %q holds dates such as %q, which date_format %q does not read; every value reads as %q, so that layout is used (set date_format = %q to silence this)",
			d.name, termsafe.Clip(d.example, 40), d.layout, alive[0], alive[0])
	}
	for _, p := range d.fails {
		probs.add(p.Line, p.Column, "%s", p.Msg)
	}
	probs.Total += d.failTotal - len(d.fails)
	return d.layout, ""
}
