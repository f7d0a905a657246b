// Package hrcsv reads HR exports (CSV files from Workday, SuccessFactors, BambooHR, Personio or
// a spreadsheet) as a source of users: it sniffs the delimiter, decodes UTF-8 (with or without
// a BOM) or Windows-1252, checks every row before any is used, and streams the rows in bounded
// memory. It knows nothing of the cache: what a row becomes is the sync core's business.
//
// Every row is checked before any is used. Check reads the file whole and returns every problem
// (a missing or duplicate key, a wrong column count, a date that does not parse, invalid
// encoding, a mapped column the header lacks), so a broken or truncated export is refused
// before anything changes; memory holds a 16-byte digest per key, and the layout each date
// column turned out to use. Scan then streams the rows of a file that passed (a second read).
// CheckRows checks the file and, in the same single read, hands each row (with its offset) to
// its caller, so that a re-import reads again, through a Rereader, only the rows that changed.
package hrcsv

import (
	"fmt"
	"strings"
	"time"
)

// Modes of a source.
const (
	ModeUsers  = "users"  // each row is a user of its own
	ModeEnrich = "enrich" // each row adds attributes to the directory user it joins
)

// Config is one [[csv]] entry.
type Config struct {
	Name       string `toml:"name"`
	Path       string `toml:"path"`
	Mode       string `toml:"mode"`
	Key        string `toml:"key"`
	Join       string `toml:"join"`
	Delimiter  string `toml:"delimiter"`
	Encoding   string `toml:"encoding"`
	StartDate  string `toml:"start_date"`
	EndDate    string `toml:"end_date"`
	DateFormat string `toml:"date_format"`
	// Mapping is SCIM path → column header.
	Mapping map[string]string `toml:"mapping"`
}

// DefaultConfig is a Config with the defaults of the keys a file may leave out.
func DefaultConfig() Config {
	return Config{Mode: ModeUsers, Delimiter: "auto", Encoding: "utf-8", DateFormat: "2006-01-02"}
}

// Validate returns every problem of c, each naming its key.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Name == "" {
		bad("name: required")
	}
	switch c.Mode {
	case ModeUsers:
		if c.Mapping["userName"] == "" {
			bad("mapping: users mode needs a userName column")
		}
	case ModeEnrich:
		if c.Join == "" {
			bad("join: enrich mode needs the SCIM attribute of directory users that equals the key (e.g. \"externalId\")")
		}
	default:
		bad("mode: want \"users\" or \"enrich\", got %q", c.Mode)
	}
	if c.Key == "" {
		bad("key: required: the column that identifies a row")
	}
	if _, err := c.delimiter(); err != nil {
		bad("delimiter: %v", err)
	}
	switch strings.ToLower(c.Encoding) {
	case "utf-8", "utf8", "windows-1252", "cp1252":
	default:
		bad("encoding: want \"utf-8\" or \"windows-1252\", got %q", c.Encoding)
	}
	if (c.StartDate != "" || c.EndDate != "") && !validLayout(c.DateFormat) {
		bad("date_format: %q is not a Go date layout (write 2006-01-02 for ISO dates, 02.01.2006 for 31.12.2026)", c.DateFormat)
	}
	for path, col := range c.Mapping {
		if strings.TrimSpace(col) == "" {
			bad("mapping.%q: empty column name", path)
		}
	}
	return errs
}

// delimiter returns the configured delimiter, 0 for "auto".
func (c *Config) delimiter() (rune, error) {
	switch c.Delimiter {
	case "", "auto":
		return 0, nil
	case ",", ";", "|":
		return rune(c.Delimiter[0]), nil
	case "\t", `\t`, "tab":
		return '\t', nil
	}
	return 0, fmt.Errorf(`want "auto", ",", ";", "|" or "\t", got %q`, c.Delimiter)
}

// validLayout reports whether layout formats a date and parses it back: a layout without
// 2006, 01/Jan and 02 is a plain string to package time.
func validLayout(layout string) bool {
	ref := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	s := ref.Format(layout)
	t, err := time.Parse(layout, s)
	return err == nil && t.Year() == 2026 && t.Month() == 11 && t.Day() == 23
}
