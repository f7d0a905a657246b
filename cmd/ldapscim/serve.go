package main

import (
	"context"
	"io"

	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// runServe syncs once, then runs the schedule until ctx is cancelled (SIGINT/SIGTERM), then
// stops the scheduler, waits for a running pass and closes the cache.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, _, err := flags("serve", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	st, err := openCache(cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := ldapsync.New(cfg.LDAP, cfg.Safety, st, log)
	if err != nil {
		return err
	}
	sch, err := ldapsync.NewScheduler(ctx, s, cfg.Schedule, log)
	if err != nil {
		return err
	}
	log.Info("serving", "delta", cfg.Schedule.Delta, "full", cfg.Schedule.Full, "cache", cfg.Cache.Dir)
	sch.Start()
	// A first pass right away, so a fresh cache does not wait for the first tick. Its failure is
	// logged by the Syncer; the schedule retries.
	_, _ = s.SyncOnce(ctx)
	<-ctx.Done()
	log.Info("shutting down")
	sch.Stop()
	return nil
}
