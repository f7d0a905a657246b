package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/internal/redact"
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

// runTargetsStatus prints each target's progress from the cache, or, while serve holds the
// cache, the status file serve keeps (with the quarantine state only serve knows).
func runTargetsStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := flagsOnly("targets status", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	live := readStatusFile(cfg)
	st, err := openCache(cfg, newLogger(cfg.Log, stderr))
	if err != nil {
		if live == nil {
			return err
		}
		fmt.Fprintf(stdout, "serve is running and holds the cache; its status as of %s:\n", live[0].Time.Format(time.RFC3339))
		printStatus(stdout, live)
		return nil
	}
	defer st.Close()
	head, err := st.JournalHead(ctx)
	if err != nil {
		return err
	}
	var rows []push.Status
	for _, n := range configuredNames(cfg) {
		sum, err := st.PushSummary(ctx, n.name)
		if err != nil {
			return err
		}
		rows = append(rows, push.Status{Name: n.name, Kind: n.kind, URL: n.url, Cursor: sum.Cursor, JournalHead: head,
			StoredDead: sum.DeadLetters, StoredMapped: sum.Resources})
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no [[targets]] or [[webhooks]] configured")
		return nil
	}
	fmt.Fprintln(stdout, "serve is not running (state from the cache):")
	printStatus(stdout, rows)
	return nil
}

type configured struct{ name, kind, url string }

func configuredNames(cfg *config.File) []configured {
	var out []configured
	for _, t := range cfg.Targets {
		out = append(out, configured{t.Name, "target", redact.URL(t.URL)})
	}
	for _, w := range cfg.Webhooks {
		if w.Format != "slack" {
			out = append(out, configured{w.Name, "webhook", "(webhook)"})
		}
	}
	return out
}

func readStatusFile(cfg *config.File) []push.Status {
	b, err := os.ReadFile(filepath.Join(cfg.Cache.Dir, push.StatusFileName))
	if err != nil {
		return nil
	}
	var rows []push.Status
	if json.Unmarshal(b, &rows) != nil || len(rows) == 0 {
		return nil
	}
	return rows
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
	cfg, log, st, ac, err := setupOrAdmin(ctx, path, stderr)
	if err != nil {
		return err
	}
	if !known(cfg, target) {
		if st != nil {
			st.Close()
		}
		return usageError{fmt.Sprintf("no [[targets]] or [[webhooks]] entry named %q", target)}
	}
	if ac != nil {
		return deadLettersViaServe(ctx, verb, target, ids, ac, stdout)
	}
	defer st.Close()
	switch verb {
	case "list":
		dls, err := st.DeadLetters(ctx, target)
		if err != nil {
			return err
		}
		printDeadLetters(stdout, dls)
		return nil
	case "skip":
		n, err := st.DropDeadLetters(ctx, target, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "skipped %d dead letter(s) of %s\n", n, target)
		return nil
	}
	p := push.New(cfg.Targets, cfg.Webhooks, st, log)
	n, err := p.Replay(ctx, target, ids)
	if err != nil {
		return err
	}
	left, err := st.DeadLetters(ctx, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d dead letter(s) of %s; %d left\n", n, target, len(left))
	return nil
}

// adminDeadLetters is what the running serve's admin API offers for dead letters.
type adminDeadLetters interface {
	DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error)
	ReplayDeadLetters(ctx context.Context, target string, ids []string) (int, error)
	SkipDeadLetters(ctx context.Context, target string, ids []string) (int, error)
}

func deadLettersViaServe(ctx context.Context, verb, target string, ids []string, ac adminDeadLetters, stdout io.Writer) error {
	switch verb {
	case "list":
		dls, err := ac.DeadLetters(ctx, target)
		if err != nil {
			return err
		}
		printDeadLetters(stdout, dls)
		return nil
	case "replay":
		n, err := ac.ReplayDeadLetters(ctx, target, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "serve replayed %d dead letter(s) of %s\n", n, target)
		return nil
	case "skip":
		n, err := ac.SkipDeadLetters(ctx, target, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "serve skipped %d dead letter(s) of %s\n", n, target)
		return nil
	}
	return fmt.Errorf("targets deadletters: unknown verb %q", verb)
}

func known(cfg *config.File, name string) bool {
	for _, c := range configuredNames(cfg) {
		if c.name == name {
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
		body := d.Body
		if len(body) > 200 {
			n := 200
			for n > 0 && !utf8.RuneStart(body[n]) {
				n--
			}
			body = body[:n] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", e(d.ID), e(string(d.Type)), e(d.Op), d.Seq, d.Status, d.Attempts,
			d.Time.Format(time.RFC3339), e(d.Error), e(body))
	}
	tw.Flush()
}
