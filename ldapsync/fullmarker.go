package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ldapscim/ldapscim/cache"
)

// A syncrepl pass that fails midway (the server went away, was killed, froze) makes the next
// pass a full one. slapd keeps its contextCSN in memory and writes it back only at checkpoints
// and on a clean shutdown: after a crash it restarts with a contextCSN older than entries it
// already has, and syncprov's refresh answers only entries up to that CSN, so a delta would
// miss what was written since the last checkpoint until later writes moved the CSN past them.
// A full pass reads every entry whatever the CSNs say. (Seen in `make reliability`, R2.)

// fullMarkerSource is the watermark key of the marker: set by a failed pass, cleared by a full one.
const fullMarkerSource = Source + ":full-next"

type fullMarker struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// needsFullMarker reports the marker's reason, or "".
func (s *Syncer) needsFullMarker(ctx context.Context) (string, error) {
	raw, err := s.store.Watermark(ctx, fullMarkerSource)
	if errors.Is(err, cache.ErrNotFound) || raw == nil {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var r fullMarker
	if json.Unmarshal(raw, &r) != nil || r.Since.IsZero() {
		return "", nil
	}
	return r.Reason, nil
}

// setFullMarker stores the marker after a syncrepl pass failed for reason.
func (s *Syncer) setFullMarker(ctx context.Context, reason string) {
	raw, _ := json.Marshal(fullMarker{Since: time.Now().UTC(), Reason: reason})
	if _, err := s.store.Apply(ctx, cache.Batch{Source: fullMarkerSource, Watermark: raw}); err != nil {
		s.log.Warn("cannot note that the next pass must be a full one", "err", err)
	}
}

// clearFullMarker removes the marker after a full pass succeeded.
func (s *Syncer) clearFullMarker(ctx context.Context) {
	if _, err := s.store.Apply(ctx, cache.Batch{Source: fullMarkerSource, Watermark: []byte("{}")}); err != nil {
		s.log.Warn("cannot clear the full-pass marker; the next pass will be a full one again", "err", err)
	}
}
