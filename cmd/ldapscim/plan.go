package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
)

// runPlan is a dry run: it reads the directory as a pass would and prints what the pass would
// change in the cache, and why, without writing anything. While serve runs (it holds the cache),
// serve makes the plan through its admin API.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var full, asJSON bool
	var only string
	path, err := flagsOnly("plan", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&full, "full", false, "plan a full reconciliation")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		fs.StringVar(&only, "target", "", "compare only this push target (default: every target)")
	})
	if err != nil {
		return err
	}
	cfg, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	out, err := o.Plan(ctx, ops.PlanRequest{Full: full, Target: only})
	if out == nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(out); jerr != nil {
			return jerr
		}
		return err
	}
	printPlan(stdout, out.PlanReport)
	printTargetPlans(stdout, out.Targets, cfg.Safety.Staging)
	return err
}

// printTargetPlans and printPlan escape every value from the directory, the cache and the
// targets (termsafe).
func printTargetPlans(w io.Writer, plans []ops.TargetPlan, staging bool) {
	e := termsafe.Escape
	for _, tp := range plans {
		fmt.Fprintf(w, "\ntarget %s, compared with what it last received (before this pass's changes):\n", e(tp.Target))
		if staging {
			fmt.Fprintln(w, "  ([safety] staging = true: serve would not push any of it)")
		}
		if len(tp.Changes) == 0 {
			fmt.Fprintln(w, "  up to date")
		}
		for _, c := range tp.Changes {
			fmt.Fprintf(w, "  %-10s %-5s %s: %s", e(c.Action), e(string(c.Type)), e(c.Name), e(c.Why))
			if len(c.Attrs) > 0 {
				fmt.Fprintf(w, " (%s)", e(strings.Join(c.Attrs, ", ")))
			}
			fmt.Fprintln(w)
		}
	}
}

func printPlan(w io.Writer, rep *ldapsync.PlanReport) {
	e := termsafe.Escape
	s := rep.Summary
	kind := "delta"
	if s.Full {
		kind = "full"
	}
	fmt.Fprintf(w, "plan of a %s pass (%s): read %d entries; nothing was written\n", kind, e(s.Mode), s.Read)
	if s.Partial != "" {
		fmt.Fprintf(w, "the read was partial, so the pass would delete nothing: %s\n", e(s.Partial))
	}
	counts := map[string]int{}
	for _, c := range rep.Changes {
		counts[c.Action]++
		fmt.Fprintf(w, "%-10s %-5s %s", e(c.Action), e(string(c.Type)), e(c.Name))
		if c.DN != "" {
			fmt.Fprintf(w, " (%s)", e(c.DN))
		}
		fmt.Fprintf(w, ": %s\n", e(c.Why))
		for _, d := range c.Diff {
			fmt.Fprintf(w, "    %s: %s -> %s\n", e(d.Attr), brief(d.Old), brief(d.New))
		}
	}
	fmt.Fprintf(w, "would create %d, update %d, deactivate %d, delete %d, hold %d; %d unchanged\n",
		counts[ldapsync.PlanCreate], counts[ldapsync.PlanUpdate], counts[ldapsync.PlanDeactivate],
		counts[ldapsync.PlanDelete], counts[ldapsync.PlanHold], s.Unchanged)
}

// brief renders a value for a diff line: JSON, cut at 200 characters, escaped (JSON leaves
// DEL, C1 and format characters such as U+202E as they are).
func brief(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 200 {
		n := 197
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return termsafe.Escape(s)
}
