package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/termsafe"
)

func runDeletes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	v, args := verbs(args, 1, "config")
	if len(v) == 0 || (v[0] != "list" && v[0] != "approve") {
		return usageError{"deletes: want `deletes list` or `deletes approve`"}
	}
	verb := v[0]
	var all bool
	path, ids, err := flags("deletes "+verb, args, stderr, func(fs *flag.FlagSet) {
		if verb == "approve" {
			fs.BoolVar(&all, "all", false, "approve every held deletion")
		}
	})
	if err != nil {
		return err
	}
	if verb == "list" && len(ids) > 0 {
		return usageError{fmt.Sprintf("deletes list: unexpected argument %q (flags start with --)", ids[0])}
	}
	if verb == "approve" && all == (len(ids) > 0) {
		return usageError{"deletes approve: give either --all or the ids to approve"}
	}
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	if verb == "list" {
		holds, err := o.Holds(ctx)
		if err != nil {
			return err
		}
		printHolds(stdout, holds, path)
		return nil
	}
	if all {
		ids = nil
	}
	res, err := o.ApproveHolds(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "approved: deleted %d, deactivated %d, removed %d group member(s)\n",
		res.Deleted, res.Deactivated, res.MembersRemoved)
	return nil
}

// heldWhat says what a hold keeps: the resource, or some members of a group.
func heldWhat(h cache.Hold) string {
	if h.Kind == cache.HoldMembers {
		return fmt.Sprintf("%d member(s)", len(h.Members))
	}
	return "the " + strings.ToLower(string(h.Type))
}

// printHolds is `deletes list`'s table. Every value from the directory is escaped (termsafe):
// a name with terminal controls or a line break must not clear the screen or forge a row of
// the list an admin approves from.
func printHolds(w io.Writer, holds []cache.Hold, path string) {
	if len(holds) == 0 {
		fmt.Fprintln(w, "no held deletions")
		return
	}
	e := termsafe.Escape
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tHELD\tNAME\tDN\tHELD AT\tPASS\tREASON")
	for _, h := range holds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e(h.ID), e(string(h.Type)), heldWhat(h), e(h.Name), e(h.DN),
			h.HeldAt.Format(time.RFC3339), e(h.Pass), e(h.Reason))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d held. Apply with: ldapscim deletes approve --config %s --all (or list ids)\n", len(holds), e(path))
}
