package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ops"
)

// runExplain prints a user as cached, every rule and whether (and why) it matched, the user's
// groups, and each push target's scope verdict. While serve runs (it holds the cache), serve
// explains through its admin API.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := flags("explain", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"explain: give one user: a userName or an id"}
	}
	_, o, done, err := operations(ctx, path, stderr, nil)
	if err != nil {
		return err
	}
	defer done()
	ex, err := o.Explain(ctx, rest[0])
	if err != nil {
		return err
	}
	printExplanation(stdout, ex)
	return nil
}

// printExplanation escapes every value from the directory and the cache (termsafe).
func printExplanation(w io.Writer, ex *ops.Explanation) {
	e := termsafe.Escape
	attrs, _ := json.MarshalIndent(ex.Attributes, "  ", "  ")
	var other []string // attributes another source sets
	for _, p := range slices.Sorted(maps.Keys(ex.Sources)) {
		if ex.Sources[p] != ex.Source {
			other = append(other, e(p)+" from "+e(ex.Sources[p]))
		}
	}
	from := "every attribute"
	if len(other) > 0 {
		from = "every attribute but: " + strings.Join(other, ", ")
	}
	fmt.Fprintf(w, "user %s (id %s)\n  source: %s (%s)\n  dn: %s\n  externalId: %s\n  attributes: %s\n", e(ex.UserName), e(ex.ID),
		e(ex.Source), from, e(ex.DN), e(strconv.Quote(ex.ExternalID)), termsafe.Lines(string(attrs)))
	if len(ex.Rules) == 0 {
		fmt.Fprintln(w, "\nno [[rules]] configured")
	}
	for _, r := range ex.Rules {
		verdict := "does not match"
		if r.Matched {
			verdict = fmt.Sprintf("MATCHES: roles %v, groups %v", termsafe.Strings(r.Roles), termsafe.Strings(r.Groups))
		}
		fmt.Fprintf(w, "\nrule %s %s\n", e(strconv.Quote(r.Name)), verdict)
		for _, t := range r.Terms {
			mark := "no "
			if t.Matched {
				mark = "yes"
			}
			line := fmt.Sprintf("  %s%s %s", strings.Repeat("  ", t.Depth), mark, e(t.Expr))
			if t.Actual != "" {
				line += "    (the user has " + e(t.Actual) + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintf(w, "\ngroups (direct):")
	for _, g := range ex.Groups {
		fmt.Fprintf(w, " %s;", e(g.Display))
	}
	fmt.Fprintln(w)
	for _, t := range ex.Targets {
		verdict := "out of scope"
		if t.InScope {
			verdict = "in scope"
		}
		fmt.Fprintf(w, "target %s: %s: %s\n", e(t.Target), verdict, e(t.Why))
	}
}
