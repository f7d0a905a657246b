package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scimapi"
)

// runServe runs the SCIM API (when the config has a [scim] section) and the push workers beside the sync schedule,
// with a first pass right away, until ctx is cancelled (SIGINT/SIGTERM) or the API fails. Then
// it stops the API (in-flight requests finish), cancels and waits for a running pass, stops the
// scheduler and closes the cache.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := flagsOnly("serve", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, log, st, err := setup(path, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	pusher := push.New(cfg.Targets, cfg.Webhooks, st, log)
	pusher.StatusFile = filepath.Join(cfg.Cache.Dir, push.StatusFileName)
	obs := newObservability(st, pusher.Targets)
	pusher.ObserveRequests(obs.metrics.ObservePush)
	opts := append(cfg.SyncOptions(), obs.syncOptions()...)
	opts = append(opts, ldapsync.WithObserver(heldAlert(pusher, path)))
	s, err := ldapsync.New(cfg.LDAP, cfg.Safety, st, log, opts...)
	if err != nil {
		return err
	}
	var api *scimapi.Server
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiErr := make(chan error, 1)
	if cfg.SCIM != nil {
		api = scimapi.New(*cfg.SCIM, st, log, scimapi.WithRequestObserver(obs.metrics.HTTPObserver("scim")))
		ln, err := api.Listen()
		if err != nil {
			return err
		}
		go func() { apiErr <- api.Serve(ctx, ln); cancel() }()
	} else {
		log.Info("SCIM API off: the config has no [scim] section")
		close(apiErr)
	}
	adminErr, err := startAdmin(ctx, cfg, path, st, s, obs, pusher, cancel, log)
	if err != nil {
		cancel()
		<-apiErr
		return err
	}
	sch, err := ldapsync.NewScheduler(ctx, s, cfg.Schedule, log)
	if err != nil {
		cancel()
		<-apiErr
		<-adminErr
		return err
	}
	log.Info("serving", "delta", cfg.Schedule.Delta, "full", cfg.Schedule.Full, "cache", cfg.Cache.Dir)
	sch.Start()
	// A first pass right away, so a fresh cache does not wait for the first tick. Its failure is
	// logged by the Syncer; the schedule retries.
	var first sync.WaitGroup
	first.Go(func() { _, _ = s.SyncOnce(ctx) })
	// Push workers follow the journal beside the schedule; cancel, then wait (below).
	var pushing sync.WaitGroup
	if cfg.Safety.Staging {
		log.Warn("staging: [safety] staging = true, so nothing is pushed to targets or webhooks")
	} else {
		pushing.Go(func() { pusher.Run(ctx) })
	}
	<-ctx.Done()
	log.Info("shutting down")
	pushing.Wait()
	err = <-apiErr // Serve returns once in-flight requests are done
	if aerr := <-adminErr; err == nil {
		err = aerr
	}
	first.Wait()
	sch.Stop()
	return err
}

// heldAlert tells the alert webhooks when a pass holds deletions or deactivations. After any
// pass it has the open alerts checked, so one about holds that a pass replaced is resolved.
func heldAlert(p *push.Pusher, configPath string) func(ldapsync.Summary, error) {
	return func(sum ldapsync.Summary, _ error) {
		defer p.CheckAlertsSoon()
		if sum.Held == 0 && sum.HeldMembers == 0 {
			return
		}
		p.Alert(push.Alert{Kind: push.AlertHeldDeletions, Target: ldapsync.Source, Text: fmt.Sprintf(
			"ldapscim pass %s holds %d deletion(s)/deactivation(s) and %d group member removal(s) above the safety threshold; review with `ldapscim deletes list --config %s`, apply with `ldapscim deletes approve --config %s --all`",
			sum.Pass, sum.Held, sum.HeldMembers, configPath, configPath)})
	}
}
