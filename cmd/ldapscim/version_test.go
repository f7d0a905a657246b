package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersion runs `ldapscim version` and `--version`, and checks the line's shape and values.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		out, _, err := runCLI(t, arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		re := regexp.MustCompile(`^ldapscim (\S+) \(commit (\S+), (go\S+)\)\n$`)
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s printed %q, not one line like %q", arg, out, "ldapscim v1.2.3 (commit abc, go1.26.8)")
		}
		if m[1] != version || m[3] != runtime.Version() {
			t.Errorf("%s printed version %q and Go %q, want %q and %q", arg, m[1], m[3], version, runtime.Version())
		}
	}
	if _, _, err := runCLI(t, "version", "extra"); exitCode(err) != 2 {
		t.Errorf("version with an argument: %v, want a usage error", err)
	}
	out, _, _ := runCLI(t, "help")
	if !strings.Contains(out, "ldapscim version ") {
		t.Error("the usage text does not list the version subcommand")
	}
}

// TestVersionLinkerFlags checks that -X main.version/main.commit win over the VCS stamp.
func TestVersionLinkerFlags(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v9.8.7-1-g0123456-dirty", "0123456"
	out, _, err := runCLI(t, "version")
	want := "ldapscim v9.8.7-1-g0123456-dirty (commit 0123456, " + runtime.Version() + ")\n"
	if err != nil || out != want {
		t.Fatalf("got %q, %v; want %q", out, err, want)
	}
}

// TestVCSCommit checks how the VCS stamp becomes the commit: shortened, "-dirty" when the tree
// had changes, "unknown" without one.
func TestVCSCommit(t *testing.T) {
	stamp := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, c := range []struct {
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{stamp("vcs.revision", rev, "vcs.modified", "false"), true, "0123456789ab"},
		{stamp("vcs.revision", rev, "vcs.modified", "true"), true, "0123456789ab-dirty"},
		{stamp("vcs.revision", "abc"), true, "abc"},
		{stamp("-trimpath", "true"), true, "unknown"},
		{nil, false, "unknown"},
	} {
		if got := vcsCommit(c.bi, c.ok); got != c.want {
			t.Errorf("vcsCommit(%v) = %q, want %q", c.bi, got, c.want)
		}
	}
}
