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
	cfg, log, st, ac, err := setupOrAdmin(ctx, path, stderr)
	if err != nil {
		return err
	}
	if ac != nil { // serve runs on this cache: its Syncer runs the pass
		res, err := ac.Sync(ctx, full)
		printSummary(stdout, res.Summary)
		return err
	}
	defer st.Close()

	var opts []ldapsync.Option
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		expect := -1
		if u, err := st.Count(ctx, scim.UserType); err == nil && u > 0 {
			g, _ := st.Count(ctx, scim.GroupType)
			expect = u + g
		}
		bar := progressbar.NewOptions(expect, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("reading"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		defer bar.Finish()
		opts = append(opts, ldapsync.WithProgress(func(stage string, n int) {
			bar.Describe(stage)
			_ = bar.Set(n)
		}))
	}
	s, err := ldapsync.New(cfg.LDAP, cfg.Safety, st, log, append(cfg.SyncOptions(), opts...)...)
	if err != nil {
		return err
	}
	run := s.SyncOnce
	if full {
		run = s.SyncFull
	}
	sum, err := run(ctx)
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
