package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/scim"
)

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var full bool
	path, err := flagsOnly("sync", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&full, "full", false, "force a full reconciliation")
	})
	if err != nil {
		return err
	}
	var bar *progressbar.ProgressBar
	_, o, done, err := operations(ctx, path, stderr, func(lo *ops.LocalOptions) {
		f, ok := stderr.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return
		}
		expect := -1
		if u, err := lo.Store.Count(ctx, scim.UserType); err == nil && u > 0 {
			g, _ := lo.Store.Count(ctx, scim.GroupType)
			expect = u + g
		}
		bar = progressbar.NewOptions(expect, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("reading"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		lo.Progress = func(stage string, n int) {
			bar.Describe(stage)
			_ = bar.Set(n)
		}
	})
	if err != nil {
		return err
	}
	defer done()
	sum, err := o.Sync(ctx, full)
	if bar != nil {
		_ = bar.Finish()
	}
	printSummary(stdout, sum)
	return err
}

// printSummary prints what a pass did; nothing when it never started (no connection).
func printSummary(w io.Writer, s ldapsync.Summary) {
	if s.Pass == "" {
		return
	}
	kind := "delta"
	if s.Full {
		kind = "full"
	}
	fmt.Fprintf(w, "%s pass %s (%s): read %d, created %d, updated %d, deactivated %d, deleted %d, held %d, unchanged %d, skipped %d in %s\n",
		kind, s.Pass, s.Mode, s.Read, s.Created, s.Updated, s.Deactivated, s.Deleted, s.Held, s.Unchanged, s.Skipped,
		s.Duration.Round(time.Millisecond))
	if s.Partial != "" {
		fmt.Fprintf(w, "partial read, nothing was deleted: %s\n", termsafe.Escape(s.Partial))
	}
	if s.HeldMembers > 0 {
		fmt.Fprintf(w, "held member removals %d: mass removals from groups kept the members\n", s.HeldMembers)
	}
	if s.Held > 0 || s.HeldMembers > 0 {
		fmt.Fprintln(w, "changes are held: review them with `ldapscim deletes list`, apply them with `ldapscim deletes approve`")
	}
}
