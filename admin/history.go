package admin

import (
	"sync"
	"time"

	"github.com/ldapscim/ldapscim/ldapsync"
)

// PassRecord is one pass as the status page shows it.
type PassRecord struct {
	Ended   time.Time
	Summary ldapsync.Summary
	Result  string // success, partial, failure
	Error   string
}

// History keeps the last passes of this process in memory, newest last. Observe has the
// signature of an ldapsync.Observer. It is safe for concurrent use.
type History struct {
	mu     sync.Mutex
	max    int
	passes []PassRecord
}

// NewHistory keeps up to max passes (0: 50).
func NewHistory(max int) *History {
	if max <= 0 {
		max = 50
	}
	return &History{max: max}
}

// Observe records a pass.
func (h *History) Observe(sum ldapsync.Summary, err error) {
	rec := PassRecord{Ended: time.Now(), Summary: sum, Result: "success"}
	if err != nil {
		rec.Result, rec.Error = "failure", err.Error()
		if sum.Partial != "" {
			rec.Result = "partial"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.passes = append(h.passes, rec)
	if len(h.passes) > h.max {
		h.passes = append(h.passes[:0:0], h.passes[len(h.passes)-h.max:]...)
	}
}

// Recent returns up to n passes, newest first.
func (h *History) Recent(n int) []PassRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]PassRecord, 0, min(n, len(h.passes)))
	for i := len(h.passes) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, h.passes[i])
	}
	return out
}
