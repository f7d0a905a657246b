package ldapsync

import (
	"context"
	"log/slog"

	"github.com/robfig/cron/v3"
)

// Scheduler triggers passes on the [schedule] cron specs. It only decides when; Syncer decides
// what, and SyncOnce is the unit tests run. A pass still running when the next one is due makes that one skip.
type Scheduler struct {
	cron *cron.Cron
	log  *slog.Logger
}

// SchedulerOptions are the optional parts of a Scheduler.
type SchedulerOptions struct {
	// Log receives the scheduler's messages (a pass that panicked or was skipped); nil
	// discards them.
	Log *slog.Logger
	// AfterDelta run, in order, after each scheduled delta pass: the passes of the other
	// sources (HR files), on the same schedule.
	AfterDelta []func(context.Context)
}

// NewScheduler registers the delta and full schedules. Empty specs are disabled. Passes run with
// ctx, so cancelling it stops a running pass.
func NewScheduler(ctx context.Context, s *Syncer, sc ScheduleConfig, opts SchedulerOptions) (*Scheduler, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// One wrapper chain for both jobs: SkipIfStillRunning is per job, but Syncer serializes
	// passes, so a delta due during a long full pass waits for it and then runs.
	c := cron.New(cron.WithParser(cronParser), cron.WithChain(
		cron.Recover(cronLogger{log}),
		cron.SkipIfStillRunning(cronLogger{log}),
	))
	add := func(spec string, full bool) error {
		if spec == "" {
			return nil
		}
		_, err := c.AddFunc(spec, func() {
			if ctx.Err() != nil {
				return
			}
			if full {
				_, _ = s.SyncFull(ctx) // the Syncer logs the outcome
				return
			}
			_, _ = s.SyncOnce(ctx)
			for _, fn := range opts.AfterDelta {
				if ctx.Err() == nil {
					fn(ctx)
				}
			}
		})
		return err
	}
	if err := add(sc.Delta, false); err != nil {
		return nil, err
	}
	if err := add(sc.Full, true); err != nil {
		return nil, err
	}
	return &Scheduler{cron: c, log: log}, nil
}

// Start starts the schedule in its own goroutine.
func (sch *Scheduler) Start() { sch.cron.Start() }

// Stop stops scheduling and waits for a running pass to return. Cancel the context given to
// NewScheduler first to make a running pass stop early.
func (sch *Scheduler) Stop() { <-sch.cron.Stop().Done() }

// cronLogger adapts slog to cron's logger.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
