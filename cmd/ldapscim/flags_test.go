package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Flags may stand before, between and after positional arguments; `--` ends them.
func TestFlagsInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		path  string
		rest  []string
		all   bool
		model string
	}{
		{args: []string{"--config", "x.toml", "bjensen"}, path: "x.toml", rest: []string{"bjensen"}},
		{args: []string{"bjensen", "--config", "x.toml"}, path: "x.toml", rest: []string{"bjensen"}},
		{args: []string{"bjensen", "--config=x.toml"}, path: "x.toml", rest: []string{"bjensen"}},
		{args: []string{"-config", "x.toml", "a", "--all", "b"}, path: "x.toml", rest: []string{"a", "b"}, all: true},
		{args: []string{"a", "--all=false", "--model", "m", "b", "--config", "x.toml"}, path: "x.toml", rest: []string{"a", "b"}, model: "m"},
		{args: []string{"--config", "x.toml", "--", "-bjensen", "--all"}, path: "x.toml", rest: []string{"-bjensen", "--all"}},
		{args: []string{"--", "-bjensen"}, rest: []string{"-bjensen"}},
		{args: []string{"--model=-m", "-", "--config", "x.toml"}, path: "x.toml", rest: []string{"-"}, model: "-m"},
	} {
		var all bool
		var model string
		path, rest, err := flags("test", tc.args, io.Discard, func(fs *flag.FlagSet) {
			fs.BoolVar(&all, "all", false, "")
			fs.StringVar(&model, "model", "", "")
		})
		if tc.path == "" {
			if err == nil || !strings.Contains(err.Error(), "--config FILE is required") {
				t.Errorf("%q: err %v; want --config required", tc.args, err)
			}
			continue
		}
		if err != nil || path != tc.path || !slices.Equal(rest, tc.rest) || all != tc.all || model != tc.model {
			t.Errorf("%q: got path %q rest %q all %v model %q err %v; want %q %q %v %q",
				tc.args, path, rest, all, model, err, tc.path, tc.rest, tc.all, tc.model)
		}
	}
}

// A wrong command line says exactly what is wrong with it, with exit status 2.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"explain", "bjensen", "--config"}, "explain: flag --config needs a value"},
		{[]string{"explain", "--config", "--full", "bjensen"}, "explain: flag --config needs a value, but --full follows it"},
		{[]string{"explain", "bjensen", "--config", "x.toml", "--frob"}, "explain: unknown flag --frob"},
		{[]string{"sync", "--config", "x.toml", "-full=maybe"}, `sync: flag -full: invalid value "maybe"`},
		{[]string{"sync", "--config", "x.toml", "full"}, `sync: unexpected argument "full"`},
		{[]string{"plan", "--json", "--frob=1", "--config", "x.toml"}, "plan: unknown flag --frob"},
		{[]string{"deletes", "list", "--all", "--config", "x.toml"}, "deletes list: unknown flag --all"},
		{[]string{"deletes", "--config", "x.toml", "approve"}, "deletes approve: give either --all or the ids"},
		{[]string{"deletes", "--config", "x.toml"}, "deletes: want `deletes list` or `deletes approve`"},
		{[]string{"targets", "status", "--target", "a", "--config", "x.toml"}, "targets status: unknown flag --target"},
		{[]string{"targets", "--config", "x.toml", "deadletters", "skip", "--all"}, "targets deadletters skip: --target NAME is required"},
		{[]string{"targets", "deadletters", "--target", "list", "list", "--config", "x.toml", "extra"}, `targets deadletters list: unexpected argument "extra"`},
		{[]string{"audit", "--config", "x.toml", "--resource"}, "audit: flag --resource needs a value"},
		{[]string{"explain", "---config", "x.toml"}, "explain: unknown flag ---config"},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || exitCode(err) != 2 || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: err %v (exit %d); want exit 2 and %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}

// Every subcommand takes its flags wherever they stand: the command line below gets past the
// parsing to reading the config file it names, in every order.
func TestSubcommandsAcceptFlagsAnywhere(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.toml")
	for _, args := range [][]string{
		{"explain", "bjensen", "--config", missing},
		{"explain", "--config", missing, "--", "-bjensen"},
		{"sync", "--full", "--config", missing},
		{"plan", "--json", "--config", missing, "--full", "--target", "t"},
		{"check-config", "--config=" + missing},
		{"serve", "--config", missing},
		{"deletes", "list", "--config", missing},
		{"deletes", "--config", missing, "list"},
		{"deletes", "approve", "id1", "--config", missing, "id2"},
		{"deletes", "--config", missing, "approve", "--all"},
		{"deletes", "approve", "--config", missing, "--", "-id1"},
		{"targets", "status", "--config", missing},
		{"targets", "--config", missing, "status"},
		{"targets", "deadletters", "list", "--config", missing, "--target", "t"},
		{"targets", "--target", "t", "deadletters", "--config", missing, "replay", "--all"},
		{"targets", "deadletters", "skip", "id1", "--target=t", "--config", missing},
		{"audit", "--resource", "r1", "--config", missing},
		{"audit", "--config", missing, "--resource=-r1"},
		{"reconcile", "--apply", "--config", missing, "--target", "t"},
		{"reconcile", "--target=t", "--json", "--config", missing},
	} {
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), "reading config") || !strings.Contains(err.Error(), missing) {
			t.Errorf("%q: err %v; want the config file read", args, err)
		}
	}
}

// explain gets an ID that starts with a dash when `--` comes before it, with --config after
// the subcommand's name or at the end.
func TestExplainDashIDAfterDoubleDash(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	body := "[cache]\ndir = " + `"` + filepath.Join(dir, "cache") + `"` +
		"\n[admin]\nlisten = \"\"\n[ldap]\nurl = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\n[ldap.users]\nbase_dn = \"dc=x\"\n[ldap.groups]\nbase_dn = \"dc=x\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "explain", "--config", cfg, "--", "-bjensen")
	if err == nil || !strings.Contains(err.Error(), `no user with id or userName "-bjensen"`) {
		t.Errorf("explain -- -bjensen: err %v; want explain to look up -bjensen", err)
	}
	_, _, err = runCLI(t, "explain", "-bjensen", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "unknown flag -bjensen") {
		t.Errorf("explain -bjensen: err %v; want unknown flag -bjensen", err)
	}
	_, stderr, err := runCLI(t, "sync", "--help")
	if err != nil || !strings.Contains(stderr, "-config") || !strings.Contains(stderr, "-full") {
		t.Errorf("sync --help: err %v, stderr %q; want the flags and exit 0", err, stderr)
	}
}
