package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ops"
)

// runAudit is `ldapscim audit --resource ID`: the history of one resource across sync (the
// cache's audit records) and push (every attempt per target), in time order. It reads the
// cache, or asks the running serve's admin API, which holds the cache.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var id string
	path, err := flagsOnly("audit", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "resource", "", "id of the user or group (required)")
	})
	if err != nil {
		return err
	}
	if id == "" {
		return usageError{"audit: --resource ID is required"}
	}
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	h, err := o.Audit(ctx, id)
	if err != nil {
		return err
	}
	return printAudit(stdout, id, h)
}

// printAudit is audit's table, in time order; every value from the cache and the targets is
// escaped (termsafe).
func printAudit(stdout io.Writer, id string, h *ops.AuditHistory) error {
	e := termsafe.Escape
	syncs, pushes := h.Sync, h.Push
	type row struct {
		t    time.Time
		cols string
	}
	var rows []row
	for _, a := range syncs {
		var paths []string
		for _, d := range a.Diff {
			paths = append(paths, d.Path)
		}
		rows = append(rows, row{a.Time, fmt.Sprintf("sync\t%s\tseq %d\t%s\t\t%s", e(string(a.Op)), a.Seq, e(a.Pass), e(strings.Join(paths, ",")))})
	}
	for _, p := range pushes {
		status := ""
		if p.Status != 0 {
			status = fmt.Sprint(p.Status)
		}
		detail := p.Error
		if p.TargetID != "" {
			detail = strings.TrimSpace("target id " + p.TargetID + " " + detail)
		}
		rows = append(rows, row{p.Time, fmt.Sprintf("push %s\t%s\t%s %s\t%s\t%s\t%s", e(p.Target), e(p.Op), e(p.Method), status,
			p.Latency.Round(time.Millisecond), "", e(detail))})
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no history for %s\n", e(id))
		return nil
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].t.Before(rows[j].t) })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHERE\tOP\tREQUEST\tPASS/LATENCY\t\tDETAIL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.t.Format(time.RFC3339Nano), r.cols)
	}
	return tw.Flush()
}
