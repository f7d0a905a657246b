package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func runDeletes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "approve") {
		return usageError{"deletes: want `deletes list` or `deletes approve`"}
	}
	verb := args[0]
	var all bool
	path, ids, err := flags("deletes "+verb, args[1:], stderr, func(fs *flag.FlagSet) {
		if verb == "approve" {
			fs.BoolVar(&all, "all", false, "approve every held deletion")
		}
	})
	if err != nil {
		return err
	}
	if verb == "approve" && all == (len(ids) > 0) {
		return usageError{"deletes approve: give either --all or the ids to approve"}
	}
	_, _, st, ac, err := setupOrAdmin(ctx, path, stderr)
	if err != nil {
		return err
	}
	var hk holdKeeper = ac
	if ac == nil {
		defer st.Close()
		hk = cacheHolds{st}
	}
	if verb == "list" {
		holds, err := hk.Holds(ctx)
		if err != nil {
			return err
		}
		if len(holds) == 0 {
			fmt.Fprintln(stdout, "no held deletions")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tNAME\tDN\tHELD AT\tPASS\tREASON")
		for _, h := range holds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Type, h.Name, h.DN, h.HeldAt.Format(time.RFC3339), h.Pass, h.Reason)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d held. Apply with: ldapscim deletes approve --config %s --all (or list ids)\n", len(holds), path)
		return nil
	}
	if all {
		ids = nil
	}
	res, err := hk.ApproveHolds(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "approved: deleted %d, deactivated %d\n", res.Deleted, res.Deactivated)
	return nil
}
