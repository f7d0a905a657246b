package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/internal/termsafe"
)

// runImport is `ldapscim import --source NAME CSVFILE [--dry-run]`: the file is the [[csv]]
// source's whole current content, applied now (through a running serve's admin API when there
// is one). A file with any bad row changes nothing and lists the rows.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var source string
	var dry, asJSON bool
	path, rest, err := flags("import", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&source, "source", "", "name of the [[csv]] source (required)")
		fs.BoolVar(&dry, "dry-run", false, "print what would change, writing nothing")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if source == "" {
		return usageError{"import: --source NAME is required"}
	}
	if len(rest) != 1 {
		return usageError{"import: give one CSV file"}
	}
	f, err := os.Open(rest[0])
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	sum, err := o.Import(ctx, source, f, dry)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	printImport(stdout, sum)
	return nil
}

// printImport escapes every value from the file (termsafe).
func printImport(w io.Writer, s *hrsync.Summary) {
	e := termsafe.Escape
	for _, c := range s.Changes {
		fmt.Fprintf(w, "%-10s %s (key %s, id %s)\n", e(c.Action), e(c.Name), e(c.Key), e(c.ID))
	}
	verb := "import"
	if s.DryRun {
		verb = "dry run of an import, nothing was written:"
	}
	fmt.Fprintf(w, "%s %s %s: %d rows, created %d, updated %d, deactivated %d, deleted %d, held %d, unchanged %d in %s\n",
		verb, e(s.Source), e(s.Pass), s.Rows, s.Created, s.Updated, s.Deactivated, s.Deleted, s.Held, s.Unchanged,
		s.Duration.Round(time.Millisecond))
	keys := func(ks []string, n int) string {
		for i := range ks {
			ks[i] = e(ks[i])
		}
		more := ""
		if n > len(ks) {
			more = fmt.Sprintf(" (and %d more)", n-len(ks))
		}
		return strings.Join(ks, ", ") + more
	}
	if s.Unjoined > 0 {
		fmt.Fprintf(w, "%d row(s) join no directory user: %s\n", s.Unjoined, keys(slices.Clone(s.UnjoinedKeys), s.Unjoined))
	}
	if s.Ambiguous > 0 {
		fmt.Fprintf(w, "%d row(s) join several directory users and were skipped: %s\n", s.Ambiguous, keys(slices.Clone(s.AmbiguousKeys), s.Ambiguous))
	}
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", e(warn))
	}
	if s.Held > 0 {
		fmt.Fprintln(w, "changes are held: review them with `ldapscim deletes list`, apply them with `ldapscim deletes approve`")
	}
}
