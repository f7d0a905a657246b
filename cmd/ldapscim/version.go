package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version and commit are set at link time: `make build` and the package and image builds pass
// -ldflags "-X main.version=$(git describe --tags --always --dirty)". A commit left empty is
// read from the VCS stamp Go writes into binaries built inside a git checkout.
var (
	version = "dev"
	commit  = ""
)

// buildInfo is what `ldapscim version` prints and /metrics exports as ldapscim_build_info.
type buildInfo struct {
	Version   string
	Commit    string // "unknown" when neither -ldflags nor the VCS stamp give one
	GoVersion string
}

// String is the one line `ldapscim version` prints, e.g.
// "ldapscim v0.3.0 (commit 0123456789ab, go1.26.8)".
func (b buildInfo) String() string {
	return fmt.Sprintf("ldapscim %s (commit %s, %s)", b.Version, b.Commit, b.GoVersion)
}

// currentBuild returns this binary's build information.
func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if b.Commit == "" {
		b.Commit = vcsCommit(debug.ReadBuildInfo())
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// vcsCommit is the short revision of the VCS stamp, with "-dirty" when the tree had changes;
// "unknown" without a stamp (go test, go run, or a build outside a checkout).
func vcsCommit(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return rev + dirty
}

func runVersion(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"version takes no arguments"}
	}
	fmt.Fprintln(stdout, currentBuild())
	return nil
}
