package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ldapscim/ldapscim/ldapsync"
)

// runPlan is a dry run: it reads the directory as a pass would and prints what the pass would
// change in the cache, and why, without writing anything.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var full, asJSON bool
	path, _, err := flags("plan", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&full, "full", false, "plan a full reconciliation")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	cfg, log, st, err := setup(path, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := ldapsync.Plan(ctx, cfg.LDAP, cfg.Safety, st, log, full, cfg.SyncOptions()...)
	if err != nil && rep == nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
		return err
	}
	printPlan(stdout, rep)
	return err
}

func printPlan(w io.Writer, rep *ldapsync.PlanReport) {
	s := rep.Summary
	kind := "delta"
	if s.Full {
		kind = "full"
	}
	fmt.Fprintf(w, "plan of a %s pass (%s): read %d entries; nothing was written\n", kind, s.Mode, s.Read)
	if s.Partial != "" {
		fmt.Fprintf(w, "the read was partial, so the pass would delete nothing: %s\n", s.Partial)
	}
	counts := map[string]int{}
	for _, c := range rep.Changes {
		counts[c.Action]++
		fmt.Fprintf(w, "%-10s %-5s %s", c.Action, c.Type, c.Name)
		if c.DN != "" {
			fmt.Fprintf(w, " (%s)", c.DN)
		}
		fmt.Fprintf(w, ": %s\n", c.Why)
		for _, d := range c.Diff {
			fmt.Fprintf(w, "    %s: %s -> %s\n", d.Attr, brief(d.Old), brief(d.New))
		}
	}
	fmt.Fprintf(w, "would create %d, update %d, deactivate %d, delete %d, hold %d; %d unchanged\n",
		counts[ldapsync.PlanCreate], counts[ldapsync.PlanUpdate], counts[ldapsync.PlanDeactivate],
		counts[ldapsync.PlanDelete], counts[ldapsync.PlanHold], s.Unchanged)
}

// brief renders a value for a diff line: JSON, cut at 200 characters.
func brief(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return strings.ReplaceAll(s, "\n", " ")
}
