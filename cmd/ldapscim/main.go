// Command ldapscim is the LDAP-to-SCIM gateway: it syncs a directory into a crash-safe cache on
// a schedule and serves and pushes it as SCIM 2.0. Run `ldapscim help` for the subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ldapscim:", err)
		os.Exit(exitCode(err))
	}
}
