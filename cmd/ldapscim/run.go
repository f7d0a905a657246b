package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

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
  ldapscim reconcile    --config FILE --target NAME [--apply] [--json]
                                                 read a push target, print its drift, correct it
  ldapscim audit        --config FILE --resource ID  a resource's sync and push history
  ldapscim import       --config FILE --source NAME CSVFILE [--dry-run] [--json]
                                                 apply an HR file as a [[csv]] source's content
  ldapscim version                               print the version, commit and Go version

Flags may come before or after the arguments; -h after a subcommand lists its flags. An
argument after -- is never a flag (deletes approve --config FILE -- -ID).

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
	err := runCommand(ctx, cmd, rest, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func runCommand(ctx context.Context, cmd string, rest []string, stdout, stderr io.Writer) error {
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
	case "reconcile":
		return runReconcile(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdout, stderr)
	case "version", "--version":
		return runVersion(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown subcommand %q", cmd)}
}

// errHelp is what flags returns for -h/--help after printing the subcommand's flags: run ends
// with status 0.
var errHelp = errors.New("help requested")

// flags parses a subcommand's flags; every subcommand takes --config. Flags and positional
// arguments may come in any order (`explain bjensen --config x.toml`); `--` ends the flags, so
// an argument after it that starts with a dash is positional. A flag is -name or --name; a
// flag with a value takes it as --name=VALUE or --name VALUE. It returns the config path and the
// positional arguments in order.
func flags(name string, args []string, stderr io.Writer, define func(fs *flag.FlagSet)) (string, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path of the TOML config file (required)")
	if define != nil {
		define(fs)
	}
	rest, err := parseInterspersed(fs, args)
	if errors.Is(err, errHelp) {
		fmt.Fprintf(stderr, "Usage of ldapscim %s:\n", name)
		fs.PrintDefaults()
		return "", nil, errHelp
	}
	if err != nil {
		return "", nil, usageError{name + ": " + err.Error()}
	}
	if *path == "" {
		return "", nil, usageError{name + ": --config FILE is required"}
	}
	return *path, rest, nil
}

// flagsOnly is flags for a subcommand that takes no positional argument: a stray word (a
// misspelt flag without its dashes, a value given twice) is an error, not silently ignored.
func flagsOnly(name string, args []string, stderr io.Writer, define func(fs *flag.FlagSet)) (string, error) {
	path, rest, err := flags(name, args, stderr, define)
	if err != nil {
		return "", err
	}
	if len(rest) > 0 {
		return "", usageError{fmt.Sprintf("%s: unexpected argument %q (flags start with --)", name, rest[0])}
	}
	return path, nil
}

// boolFlag is how the flag package tells a flag that needs no value.
type boolFlag interface{ IsBoolFlag() bool }

// parseInterspersed sets fs's flags from args wherever they stand and returns the other
// arguments. Its errors name the flag as the user wrote it and what is wrong with it.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		written, _, _ := strings.Cut(a, "=")
		if name == "h" || name == "help" {
			return nil, errHelp
		}
		f := fs.Lookup(name)
		if name == "" || strings.HasPrefix(name, "-") || f == nil {
			return nil, fmt.Errorf("unknown flag %s (`ldapscim help` lists the flags; put `--` before an argument that starts with a dash)", written)
		}
		if bf, ok := f.Value.(boolFlag); ok && bf.IsBoolFlag() {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			if i+1 == len(args) {
				return nil, fmt.Errorf("flag %s needs a value", written)
			}
			next := args[i+1]
			if len(next) > 1 && next[0] == '-' {
				return nil, fmt.Errorf("flag %s needs a value, but %s follows it (write %s=VALUE for a value that starts with a dash)", written, next, written)
			}
			value = next
			i++
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("flag %s: invalid value %q: %w", written, value, err)
		}
	}
	return rest, nil
}

// verbs takes the first n positional arguments out of args, wherever the flags stand, for a
// subcommand with sub-subcommands (`deletes --config x.toml approve`). valueFlags are the
// flags of that family that take a value, whose value is not a verb. It stops at `--`.
func verbs(args []string, n int, valueFlags ...string) (found, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(found) == n || a == "--" {
			return found, append(rest, args[i:]...)
		}
		if len(a) > 1 && a[0] == '-' {
			rest = append(rest, a)
			name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
			if !hasValue && slices.Contains(valueFlags, name) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		found = append(found, a)
	}
	return found, rest
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
	st, err := openCache(cfg, log, false)
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
// A command (short: not serve) leaves Badger's compactions to serve or to a later command
// (cache.Options.DeferCompaction).
func openCache(cfg *config.File, log *slog.Logger, short bool) (*cache.Store, error) {
	st, err := cache.Open(cache.Options{Dir: cfg.Cache.Dir, SyncWrites: cfg.Cache.SyncWrites, Log: log, DeferCompaction: short,
		ReplicaLag: cfg.HA.ReplicaLag()})
	if err != nil {
		if errors.Is(err, cache.ErrLocked) {
			return nil, fmt.Errorf("opening cache %s: %w (is `ldapscim serve` running on it? stop it first)", cfg.Cache.Dir, err)
		}
		return nil, fmt.Errorf("opening cache %s: %w", cfg.Cache.Dir, err)
	}
	return st, nil
}

func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	path, err := flagsOnly("check-config", args, stderr, nil)
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
