package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
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
	cfg, log, st, ac, err := setupOrAdmin(ctx, path, stderr)
	if err != nil {
		return err
	}
	var ex *explanation
	if ac != nil {
		ex = &explanation{}
		if err := ac.Explain(ctx, rest[0], ex); err != nil {
			return adminUsage(err)
		}
	} else {
		defer st.Close()
		if ex, err = explain(ctx, cfg, st, log, rest[0]); err != nil {
			return err
		}
	}
	printExplanation(stdout, ex)
	return nil
}

// explanation is what explain prints, and what serve's admin API answers.
type explanation struct {
	ID         string                `json:"id"`
	UserName   string                `json:"userName"`
	DN         string                `json:"dn"`
	ExternalID string                `json:"externalId"`
	Attributes map[string]any        `json:"attributes"`
	Rules      []ldapsync.RuleResult `json:"rules"`
	Groups     []cache.Ref           `json:"groups"` // direct, by display name
	Targets    []scopeVerdict        `json:"targets"`
}

// scopeVerdict is whether a push target has the user in scope, and why.
type scopeVerdict struct {
	Target  string `json:"target"`
	InScope bool   `json:"inScope"`
	Why     string `json:"why"`
}

// explain explains the user with that id or userName. An unknown user is a usageError.
func explain(ctx context.Context, cfg *config.File, st *cache.Store, log *slog.Logger, key string) (*explanation, error) {
	u, err := findUser(ctx, st, key)
	if err != nil {
		return nil, err
	}
	rules, err := ldapsync.CompileRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	ex := &explanation{ID: u.ID, UserName: u.UserName(), DN: u.DN, ExternalID: u.ExternalID,
		Attributes: u.Attributes, Rules: rules.Explain(u)}
	if ex.Groups, err = st.GroupsOf(ctx, u.ID); err != nil {
		return nil, err
	}
	slices.SortFunc(ex.Groups, func(a, b cache.Ref) int { return strings.Compare(a.Display, b.Display) })
	for _, t := range push.New(cfg.Targets, cfg.Webhooks, st, push.Options{Log: log}).TargetWorkers() {
		in, why, err := t.ExplainScope(ctx, u)
		if err != nil {
			return nil, err
		}
		ex.Targets = append(ex.Targets, scopeVerdict{Target: t.Name(), InScope: in, Why: why})
	}
	return ex, nil
}

// printExplanation escapes every value from the directory and the cache (termsafe).
func printExplanation(w io.Writer, ex *explanation) {
	e := termsafe.Escape
	attrs, _ := json.MarshalIndent(ex.Attributes, "  ", "  ")
	fmt.Fprintf(w, "user %s (id %s)\n  dn: %s\n  externalId: %s\n  attributes: %s\n", e(ex.UserName), e(ex.ID), e(ex.DN),
		e(strconv.Quote(ex.ExternalID)), termsafe.Lines(string(attrs)))
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

// Errors of findUser: the caller's mistake, not a failure (the admin API answers 400).
var (
	errNoSuchUser    = errors.New("no user with id or userName")
	errAmbiguousUser = errors.New("ambiguous userName")
)

// findUser looks a user up by id, then by userName. A userName several users hold (the same
// uid in two OUs) names none of them: errAmbiguousUser lists their ids to explain one by.
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
	switch {
	case len(ids) == 0:
		return nil, fmt.Errorf("%w %q", errNoSuchUser, key)
	case len(ids) > 1:
		shown := ids[:min(len(ids), 10)]
		return nil, fmt.Errorf("%w %q: %d users hold it (ids %s); explain one of them by id",
			errAmbiguousUser, key, len(ids), strings.Join(shown, ", "))
	}
	return st.Get(ctx, scim.UserType, ids[0])
}
