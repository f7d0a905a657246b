package push

import (
	"context"
	"fmt"
	"time"

	"github.com/ldapscim/ldapscim/ingest"
)

// ReconcilePolicy is how a target worker reconciles on its own.
//
//   - On its schedule: a target with a reconcile cron spec is reconciled (with Apply) when
//     the spec comes due, between two batches. Extras the threshold holds raise the
//     "reconcile_held" alert and show in Status; a reconciliation that holds none resolves it.
//   - On taking over (CatchUpLag > 0; serve sets it under [ha]): when the worker starts and the
//     target's cursor was never set while the journal is not empty, or lags the journal head by
//     more than CatchUpLag records, this replica's push state is not current (another replica
//     pushed meanwhile). The worker then reconciles the target first, which adopts or corrects
//     what the target holds with one paged read of it, and moves the cursor to the journal head
//     the reconciliation read; the records after it are pushed as usual. Resending the backlog
//     instead would cost a lookup and a write per resource. When extras were held the cursor
//     stays, and the backlog is pushed as usual. A reconciliation that fails is logged and the
//     backlog is pushed as usual (push is idempotent).
type ReconcilePolicy struct {
	// Threshold holds extras above it ([safety] max_deletes, max_delete_percent).
	Threshold ingest.Threshold
	// CatchUpLag: see above; 0 never reconciles on start.
	CatchUpLag uint64
}

// DefaultCatchUpLag is the lag, in journal records, above which a new [ha] leader reconciles
// a target instead of pushing its backlog: a thousand records cost up to two thousand
// requests as pushes (a lookup and a write each), about what a paged read of 100,000 users
// costs at 100 a page.
const DefaultCatchUpLag = 1000

// ReconcileStatus is the outcome of a target's last reconciliation, for Status.
type ReconcileStatus struct {
	Time      time.Time `json:"time"`
	Why       string    `json:"why"` // scheduled, catch-up, requested
	Applied   bool      `json:"applied"`
	Missing   int       `json:"missing"`
	Differing int       `json:"differing"`
	Extra     int       `json:"extra"`
	Held      int       `json:"held"`
	Unmanaged int       `json:"unmanaged"`
	// Superseded counts drifts left to the worker, which pushed them during the read.
	Superseded int    `json:"superseded,omitempty"`
	Error      string `json:"error,omitempty"`
}

// noteReconcile keeps the outcome of a reconciliation for Status.
func (t *Target) noteReconcile(why string, rep *ReconcileReport, err error) {
	s := &ReconcileStatus{Time: time.Now().UTC(), Why: why}
	if rep != nil {
		s.Applied, s.Missing, s.Differing, s.Extra, s.Held, s.Unmanaged = rep.Applied, rep.Missing, rep.Differing, rep.Extra, rep.Held, rep.Unmanaged
		s.Superseded = rep.Superseded
	}
	if err != nil {
		s.Error = err.Error()
	}
	t.lastReconcile.Store(s)
}

// nextReconcile is when the schedule next comes due after now; zero without a schedule.
func (t *Target) nextReconcile(now time.Time) time.Time {
	if t.cfg.reconcileAt == nil {
		return time.Time{}
	}
	return t.cfg.reconcileAt.Next(now)
}

// scheduledReconcile runs the scheduled reconciliation and alerts on held extras.
func (t *Target) scheduledReconcile(ctx context.Context) {
	t.log.Info("scheduled reconciliation starts", "spec", t.cfg.Reconcile)
	rep, err := t.Reconcile(ctx, ReconcileOptions{Apply: true, Threshold: t.recon.Threshold, why: "scheduled"})
	if err != nil {
		if ctx.Err() == nil {
			t.log.Error("scheduled reconciliation failed; nothing was corrected", "err", err)
			t.lastError.Store(err.Error())
		}
		return
	}
	t.alertHeld(rep)
}

// alertHeld raises or resolves the reconcile_held alert.
func (t *Target) alertHeld(rep *ReconcileReport) {
	if t.alert == nil {
		return
	}
	if rep.Held == 0 {
		t.alert(Alert{Kind: AlertReconcileHeld, Target: t.cfg.Name, Resolved: true})
		return
	}
	t.alert(Alert{Kind: AlertReconcileHeld, Target: t.cfg.Name, Text: fmt.Sprintf(
		"reconciliation of push target %s holds %d extra(s) (resources ldapscim created there that are no longer in scope): %s; see `ldapscim reconcile --target %s`",
		t.cfg.Name, rep.Held, rep.HeldReason, t.cfg.Name)})
}

// catchUp reconciles the target instead of pushing a backlog that this replica's push state
// does not cover (ReconcilePolicy).
func (t *Target) catchUp(ctx context.Context) {
	if t.recon.CatchUpLag == 0 {
		return
	}
	cur, err := t.st.PushCursor(ctx, t.cfg.Name)
	if err != nil {
		return // PushOnce reports store errors
	}
	head, err := t.st.JournalHead(ctx)
	if err != nil || head <= cur || cur != 0 && head-cur <= t.recon.CatchUpLag {
		return
	}
	t.log.Info("the push cursor lags the journal: reconciling the target instead of resending the backlog",
		"cursor", cur, "journal_head", head, "bound", t.recon.CatchUpLag)
	rep, err := t.Reconcile(ctx, ReconcileOptions{Apply: true, Threshold: t.recon.Threshold, SetCursor: true, why: "catch-up"})
	if err != nil {
		if ctx.Err() == nil {
			t.log.Error("catch-up reconciliation failed; pushing the backlog instead", "err", err)
		}
		return
	}
	t.alertHeld(rep)
}
