package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
)

// runReconcile is `ldapscim reconcile --config FILE --target NAME [--apply] [--json]`: it reads
// the target's users and groups, prints the drift from what push would send, and corrects it
// only with --apply. While serve runs, serve does it (through its admin API), between two of
// the target worker's batches.
func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var target string
	var apply, asJSON bool
	path, err := flagsOnly("reconcile", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&target, "target", "", "the [[targets]] entry to reconcile (required)")
		fs.BoolVar(&apply, "apply", false, "correct the drift (default: only report it)")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if target == "" {
		return usageError{"reconcile: --target NAME is required"}
	}
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	rep, err := o.Reconcile(ctx, ops.ReconcileRequest{Target: target, Apply: apply})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReconcile(stdout, rep)
	if rep.Failed > 0 {
		return fmt.Errorf("reconcile: %d correction(s) failed and became dead letters; see `ldapscim targets deadletters list --target %s`", rep.Failed, target)
	}
	return nil
}

// printReconcile prints a report; every value from the target or the cache is escaped.
func printReconcile(w io.Writer, rep *push.ReconcileReport) {
	e := termsafe.Escape
	fmt.Fprintf(w, "target %s: read %d users and %d groups in %d requests (%s), compared with the cache at journal seq %d\n",
		e(rep.Target), rep.TargetUsers, rep.TargetGroups, rep.Requests, e(rep.Took), rep.JournalSeq)
	for _, d := range rep.Drifts {
		fmt.Fprintf(w, "  %-9s %-5s %s", e(d.Kind), e(strings.ToLower(string(d.Type))), e(d.Name))
		var what []string
		if len(d.Attrs) > 0 {
			what = append(what, "differs in "+e(strings.Join(d.Attrs, ", ")))
		}
		if d.MembersAdded+d.MembersRemoved > 0 {
			what = append(what, fmt.Sprintf("members +%d -%d", d.MembersAdded, d.MembersRemoved))
		}
		if len(what) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(what, "; "))
		}
		fmt.Fprintf(w, " -> %s", e(d.Action))
		if d.Held {
			fmt.Fprint(w, " (held)")
		}
		fmt.Fprintln(w)
	}
	if rep.Unlisted > 0 {
		fmt.Fprintf(w, "  ... and %d more (--json lists the same first ones; the counts below are complete)\n", rep.Unlisted)
	}
	if rep.Held > 0 {
		fmt.Fprintf(w, "held: %d extra(s), none deactivated or deleted: %s\n", rep.Held, e(rep.HeldReason))
	}
	fmt.Fprintf(w, "drift: %d missing, %d differing, %d extra (%d held); %d adopted by name; %d unmanaged at the target (not created or adopted by ldapscim: never touched)\n",
		rep.Missing, rep.Differing, rep.Extra, rep.Held, rep.Adopted, rep.Unmanaged)
	switch {
	case rep.Applied && rep.Total() == 0 && rep.Adopted == 0:
		fmt.Fprintln(w, "nothing to correct")
	case rep.Applied:
		fmt.Fprintf(w, "corrected all but the held ones (%d failed)\n", rep.Failed)
	case rep.Total() > 0:
		fmt.Fprintln(w, "nothing was changed; run with --apply to correct it")
	default:
		fmt.Fprintln(w, "the target is in line with the cache")
	}
}
