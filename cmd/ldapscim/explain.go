package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// runExplain prints a user as cached, every rule and whether (and why) it matched, and the
// user's groups.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := flags("explain", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"explain: give one user: a userName or an id"}
	}
	cfg, log, st, err := setup(path, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := findUser(ctx, st, rest[0])
	if err != nil {
		return err
	}
	rules, err := ldapsync.CompileRules(cfg.Rules)
	if err != nil {
		return err
	}
	attrs, _ := json.MarshalIndent(u.Attributes, "  ", "  ")
	fmt.Fprintf(stdout, "user %s (id %s)\n  dn: %s\n  externalId: %q\n  attributes: %s\n", u.UserName(), u.ID, u.DN, u.ExternalID, attrs)
	results := rules.Explain(u)
	if len(results) == 0 {
		fmt.Fprintln(stdout, "\nno [[rules]] configured")
	}
	for _, r := range results {
		verdict := "does not match"
		if r.Matched {
			verdict = fmt.Sprintf("MATCHES: roles %v, groups %v", r.Roles, r.Groups)
		}
		fmt.Fprintf(stdout, "\nrule %q %s\n", r.Name, verdict)
		for _, t := range r.Terms {
			mark := "no "
			if t.Matched {
				mark = "yes"
			}
			line := fmt.Sprintf("  %s%s %s", strings.Repeat("  ", t.Depth), mark, t.Expr)
			if t.Actual != "" {
				line += "    (the user has " + t.Actual + ")"
			}
			fmt.Fprintln(stdout, line)
		}
	}
	groups, err := st.GroupsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	slices.SortFunc(groups, func(a, b cache.Ref) int { return strings.Compare(a.Display, b.Display) })
	fmt.Fprintf(stdout, "\ngroups (direct):")
	for _, g := range groups {
		fmt.Fprintf(stdout, " %s;", g.Display)
	}
	fmt.Fprintln(stdout)
	for _, t := range push.New(cfg.Targets, cfg.Webhooks, st, log).TargetWorkers() {
		in, why, err := t.ExplainScope(ctx, u)
		if err != nil {
			return err
		}
		verdict := "out of scope"
		if in {
			verdict = "in scope"
		}
		fmt.Fprintf(stdout, "target %s: %s: %s\n", t.Name(), verdict, why)
	}
	return nil
}

// findUser looks a user up by id, then by userName.
func findUser(ctx context.Context, st *cache.Store, key string) (*scim.Resource, error) {
	u, err := st.Get(ctx, scim.UserType, key)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, cache.ErrNotFound) {
		return nil, err
	}
	ids, err := st.Lookup(ctx, cache.IndexUserName, key)
	if err != nil {
		return nil, err
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("no user with id or userName %q", key)
	}
	return st.Get(ctx, scim.UserType, ids[0])
}
