package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/push"
)

const targetsUsage = "targets: want `targets status` or `targets deadletters list|replay|skip --target NAME`"

// runTargets is `ldapscim targets status` and `ldapscim targets deadletters list|replay|skip`.
func runTargets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	v, rest := verbs(args, 1, "config", "target")
	switch {
	case len(v) == 1 && v[0] == "status":
		return runTargetsStatus(ctx, rest, stdout, stderr)
	case len(v) == 1 && v[0] == "deadletters":
		w, rest := verbs(rest, 1, "config", "target")
		if len(w) == 1 {
			switch w[0] {
			case "list", "replay", "skip":
				return runDeadLetters(ctx, w[0], rest, stdout, stderr)
			}
		}
	}
	return usageError{targetsUsage}
}

// runTargetsStatus prints each target's progress: with the push workers' health from a
// running serve, else from the cache.
func runTargetsStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := flagsOnly("targets status", args, stderr, nil)
	if err != nil {
		return err
	}
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	ts, err := o.TargetsStatus(ctx)
	if err != nil {
		return err
	}
	if len(ts.Targets) == 0 {
		fmt.Fprintln(stdout, "no [[targets]] or [[webhooks]] configured")
		return nil
	}
	if ts.Live {
		fmt.Fprintln(stdout, "serve is running; its push workers report:")
	} else {
		fmt.Fprintln(stdout, "serve is not running (state from the cache):")
	}
	printStatus(stdout, ts.Targets)
	return nil
}

// printStatus and printDeadLetters escape every value from the cache, the status file and the
// targets' answers (termsafe).
func printStatus(w io.Writer, rows []push.Status) {
	e := termsafe.Escape
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tCURSOR\tLAG\tDELIVERED\tDEAD LETTERS\tRESOURCES\tLAST ERROR")
	for _, s := range rows {
		state := "ok"
		if s.Quarantined {
			state = "quarantined since " + s.Since.Format(time.RFC3339)
			if s.QuarantineReason != "" {
				state += ": " + e(s.QuarantineReason)
			}
		} else if s.Failures > 0 {
			state = fmt.Sprintf("retrying (%d failures in a row)", s.Failures)
		}
		dead := fmt.Sprint(s.StoredDead)
		if s.DeadLetters > 0 {
			dead = fmt.Sprintf("%d new", s.DeadLetters)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%s\n", e(s.Name), e(s.Kind), state, s.Cursor,
			s.JournalHead-min(s.Cursor, s.JournalHead), s.Delivered, dead, s.StoredMapped, e(s.LastError))
	}
	tw.Flush()
	for _, s := range rows {
		if r := s.Reconcile; r != nil {
			fmt.Fprintf(w, "%s: last reconciliation %s (%s): %d missing, %d differing, %d extra (%d held), %d unmanaged",
				e(s.Name), r.Time.Format(time.RFC3339), e(r.Why), r.Missing, r.Differing, r.Extra, r.Held, r.Unmanaged)
			switch {
			case r.Error != "":
				fmt.Fprintf(w, "; failed: %s", e(r.Error))
			case r.Applied:
				fmt.Fprint(w, "; corrected")
			}
			fmt.Fprintln(w)
		}
	}
}

// runDeadLetters lists, replays or skips a target's dead letters: through the admin API of a
// running serve when there is one, else on the cache directly.
func runDeadLetters(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	var target string
	var all bool
	path, ids, err := flags("targets deadletters "+verb, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&target, "target", "", "name of the target or webhook (required)")
		if verb != "list" {
			fs.BoolVar(&all, "all", false, "every dead letter of the target")
		}
	})
	if err != nil {
		return err
	}
	if target == "" {
		return usageError{"targets deadletters " + verb + ": --target NAME is required"}
	}
	if verb == "list" && len(ids) > 0 {
		return usageError{fmt.Sprintf("targets deadletters list: unexpected argument %q (flags start with --)", ids[0])}
	}
	if verb != "list" && all == (len(ids) > 0) {
		return usageError{"targets deadletters " + verb + ": give either --all or the resource ids"}
	}
	if all {
		ids = nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if !known(cfg, target) {
		return usageError{fmt.Sprintf("no [[targets]] or [[webhooks]] entry named %q", target)}
	}
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	switch verb {
	case "list":
		dls, err := o.DeadLetters(ctx, target)
		if err != nil {
			return err
		}
		printDeadLetters(stdout, dls)
		return nil
	case "skip":
		n, err := o.SkipDeadLetters(ctx, target, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "skipped %d dead letter(s) of %s\n", n, termsafe.Escape(target))
		return nil
	}
	n, err := o.ReplayDeadLetters(ctx, target, ids)
	if err != nil {
		return err
	}
	left, err := o.DeadLetters(ctx, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d dead letter(s) of %s; %d left\n", n, termsafe.Escape(target), len(left))
	return nil
}

// known reports whether name is a target or an event webhook of cfg (alert webhooks have no
// dead letters).
func known(cfg *config.File, name string) bool {
	for _, t := range cfg.Targets {
		if t.Name == name {
			return true
		}
	}
	for _, w := range cfg.Webhooks {
		if w.Format != "slack" && w.Name == name {
			return true
		}
	}
	return false
}

func printDeadLetters(w io.Writer, dls []cache.DeadLetter) {
	if len(dls) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	e := termsafe.Escape
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tOP\tSEQ\tSTATUS\tATTEMPTS\tTIME\tERROR\tTARGET SAID")
	for _, d := range dls {
		body := termsafe.Clip(d.Body, 200)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", e(d.ID), e(string(d.Type)), e(d.Op), d.Seq, d.Status, d.Attempts,
			d.Time.Format(time.RFC3339), e(d.Error), e(body))
	}
	tw.Flush()
}
