package ldapsync

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ldapscim/ldapscim/cache"
)

// Observer is told of every pass a Syncer runs, scheduled or not, once, when it returns: its
// Summary and its error (nil for a successful pass). It runs on the pass's goroutine while the
// Syncer still holds its pass lock, so it must be quick and must not start a pass.
type Observer func(Summary, error)

func (s *Syncer) observe(sum Summary, err error) {
	for _, o := range s.observers {
		o(sum, err)
	}
}

// ApproveHolds is the package's ApproveHolds run under the Syncer's pass lock, so an approval
// never interleaves with a pass that is replacing the held set. It waits for a running pass.
func (s *Syncer) ApproveHolds(ctx context.Context, ids []string) (cache.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ApproveHolds(ctx, s.store, ids)
}

// Endpoint describes the directory a Syncer reads, for status pages: no credentials.
type Endpoint struct {
	URL     string `json:"url"`
	Dialect string `json:"dialect"`
	BindDN  string `json:"bindDN,omitempty"`
}

// Endpoint returns the directory the Syncer reads.
func (s *Syncer) Endpoint() Endpoint {
	return Endpoint{URL: redactURL(s.cfg.URL), Dialect: s.cfg.Dialect, BindDN: s.cfg.BindDN}
}

// SyncState is what the cache says about the last successful pass of the directory source.
type SyncState struct {
	// OK is true once a pass has completed successfully: its watermark exists. A watermark is
	// only written by a full reconciliation or a delta pass that read everything it asked for
	// (invariant 2), never by a failed or partial one.
	OK bool `json:"ok"`
	// Mode is how changes are tracked (syncrepl, modifytimestamp, or an AD mode).
	Mode string `json:"mode,omitempty"`
	// LastFull is when the last successful full reconciliation started.
	LastFull time.Time `json:"lastFull,omitzero"`
	// LastSuccess is when the last successful pass (full or delta) applied its changes;
	// LastFull for watermarks written before ldapscim recorded it.
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
}

// WatermarkReader reads a stored watermark; *cache.Store implements it.
type WatermarkReader interface {
	Watermark(ctx context.Context, source string) ([]byte, error)
}

// LastSync reads the state of the last successful pass from the cache, so it survives
// restarts and is right in any process that opens the cache. Errors: the store's, or a
// watermark that does not decode.
func LastSync(ctx context.Context, store WatermarkReader) (SyncState, error) {
	raw, err := store.Watermark(ctx, Source)
	if err != nil || raw == nil {
		return SyncState{}, err
	}
	var w watermark
	if err := json.Unmarshal(raw, &w); err != nil {
		return SyncState{}, fmt.Errorf("decoding the %s watermark: %w", Source, err)
	}
	st := SyncState{OK: true, Mode: w.Mode, LastFull: w.LastFull, LastSuccess: w.LastPass}
	if st.LastSuccess.Before(w.LastFull) {
		st.LastSuccess = w.LastFull
	}
	return st, nil
}
