package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ops"
)

const usage = `ldapscim syncs an LDAP directory into a SCIM 2.0 cache.

Usage:
  ldapscim serve        --config FILE            run scheduled passes until SIGINT/SIGTERM
  ldapscim sync         --config FILE [--full]   run one pass, print a summary, exit
  ldapscim check-config --config FILE            print the effective config, or every problem
  ldapscim deletes list    --config FILE         list deletions held by the safety threshold
  ldapscim deletes approve --config FILE (--all | ID...)   apply held deletions
  ldapscim plan         --config FILE [--full] [--json]  what a pass would change, writing nothing
  ldapscim explain      --config FILE USER           a user's attributes, rules and groups
  ldapscim targets status --config FILE          push targets and webhooks: cursor, lag, health
  ldapscim targets deadletters list|replay|skip --config FILE --target NAME [--all | ID...]
  ldapscim audit        --config FILE --resource ID  a resource's sync and push history
  ldapscim version                               print the version, commit and Go version

Exit status: 0 ok, 1 failure, 2 usage or config error.
`

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ce) || ops.CodeOf(err) == ops.Invalid {
		return 2
	}
	return 1
}

// run is the whole program; main only wires signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no subcommand given"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "sync":
		return runSync(ctx, rest, stdout, stderr)
	case "check-config":
		return runCheckConfig(rest, stdout, stderr)
	case "deletes":
		return runDeletes(ctx, rest, stdout, stderr)
	case "plan":
		return runPlan(ctx, rest, stdout, stderr)
	case "explain":
		return runExplain(ctx, rest, stdout, stderr)
	case "targets":
		return runTargets(ctx, rest, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	case "version", "--version":
		return runVersion(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown subcommand %q", cmd)}
}

// flags parses a subcommand's flags; every subcommand takes --config.
func flags(name string, args []string, stderr io.Writer, define func(fs *flag.FlagSet)) (string, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path of the TOML config file (required)")
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, usageError{err.Error()}
	}
	if *path == "" {
		return "", nil, usageError{name + ": --config FILE is required"}
	}
	return *path, fs.Args(), nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// setup loads the config at path, builds the logger and opens the cache: the start of every
// subcommand that works on the cache. The caller closes the store.
func setup(path string, stderr io.Writer) (*config.File, *slog.Logger, *cache.Store, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(cfg.Log, stderr)
	warnConfig(log, cfg)
	st, err := openCache(cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, log, st, nil
}

// warnConfig logs what in the config works but weakens security (config.File.Warnings).
func warnConfig(log *slog.Logger, cfg *config.File) {
	for _, w := range cfg.Warnings() {
		log.Warn("the configuration weakens security", "why", w)
	}
}

// openCache opens the cache, explaining the usual reason it fails: another process has it.
func openCache(cfg *config.File, log *slog.Logger) (*cache.Store, error) {
	st, err := cache.Open(cache.Options{Dir: cfg.Cache.Dir, SyncWrites: cfg.Cache.SyncWrites, Log: log})
	if err != nil {
		if errors.Is(err, cache.ErrLocked) {
			return nil, fmt.Errorf("opening cache %s: %w (is `ldapscim serve` running on it? stop it first)", cfg.Cache.Dir, err)
		}
		return nil, fmt.Errorf("opening cache %s: %w", cfg.Cache.Dir, err)
	}
	return st, nil
}

func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	path, _, err := flags("check-config", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s is valid. Effective configuration (secrets shown as <secret>):\n", path)
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "# WARNING: %s\n", termsafe.Escape(w))
	}
	return cfg.Print(stdout)
}
