// Command ldapscim is the LDAP-to-SCIM gateway: it syncs a directory into a crash-safe cache on
// a schedule and serves and pushes it as SCIM 2.0. Run `ldapscim help` for the subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) of every
// subcommand unless $GOMEMLIMIT sets another: the Go collector works harder as the heap nears
// it instead of letting garbage double the heap, which keeps a pass at 1M users within a small
// VM. It is soft: a process whose live data needs more gets more.
const defaultMemoryLimit = 400 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ldapscim:", err)
		os.Exit(exitCode(err))
	}
}
