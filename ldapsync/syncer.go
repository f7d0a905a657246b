// Package ldapsync reads the directory (OpenLDAP and Active Directory, which share the same pass
// machinery), normalizes entries into SCIM resources, resolves their DN references, decides
// which deletions a read may signal (the read-guard), and applies the result to the cache
// through package ingest, the source-neutral core that applies the deletion threshold and the
// holds, runs the rules and builds each pass's last batch.
//
// One pass is Syncer.SyncOnce (delta when a watermark allows it, else full) or Syncer.SyncFull.
// Scheduler decides when passes run. Nothing here speaks HTTP.
package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Store is the part of the cache a Syncer uses: what the source-neutral core uses, and the
// reads only a directory source needs (DN resolution, the watermark, userName counts).
// *cache.Store implements it; all methods are safe for concurrent use and return cache errors.
type Store interface {
	ingest.Store
	Watermark(ctx context.Context, source string) ([]byte, error)
	ResolveDN(ctx context.Context, dn string) (cache.Ref, bool, error)
	// ResolveDNs is ResolveDN for many DNs, from one snapshot.
	ResolveDNs(ctx context.Context, dns []string) ([]cache.Ref, []bool, error)
	// CountIndexed counts, up to 2, the ids index idx holds each of values for.
	CountIndexed(ctx context.Context, idx cache.Index, values []string) ([]int, error)
}

// Source is the watermark key of the directory source in the cache.
const Source = "ldap"

// Progress reports how far a pass has come: the stage ("users", "groups", "apply") and the
// number of entries read so far. It is called from the pass goroutine.
type Progress func(stage string, entries int)

// Summary is what one pass did.
type Summary struct {
	Pass        string `json:"pass"`
	Full        bool   `json:"full"`
	Mode        string `json:"mode"` // syncrepl or modifytimestamp
	Read        int    `json:"read"`
	Created     int    `json:"created"`
	Updated     int    `json:"updated"`
	Deactivated int    `json:"deactivated"`
	Deleted     int    `json:"deleted"`
	Unchanged   int    `json:"unchanged"`
	Held        int    `json:"held"` // deletions and deactivations held
	// HeldMembers counts the group members a held mass removal kept (invariant 5, docs/architecture.md).
	HeldMembers int `json:"heldMembers"`
	Skipped     int `json:"skipped"`
	// Replayed counts changed groups whose members came from the accesslog (accesslog.go)
	// instead of a full read of the group.
	Replayed int `json:"replayedGroups,omitempty"`
	// Rejoined counts the memberships a delta gave users and groups new to the cache in groups
	// it did not read, which listed them already (rejoin.go).
	Rejoined int           `json:"rejoinedMemberships,omitempty"`
	Partial  string        `json:"partial,omitempty"` // why the read was partial (nothing deleted)
	Duration time.Duration `json:"duration"`

	// DuplicateUserNames counts the users this pass wrote whose userName another user holds.
	DuplicateUserNames int `json:"duplicateUserNames,omitempty"`
}

func (s *Summary) add(r cache.Result) {
	s.Created += r.Created
	s.Updated += r.Updated
	s.Deactivated += r.Deactivated
	s.Deleted += r.Deleted
	s.Unchanged += r.Unchanged
}

// Syncer runs passes against one directory. Passes are serialized: a SyncOnce while another
// pass runs waits for it.
type Syncer struct {
	cfg      Config
	safety   SafetyConfig
	store    Store
	log      *slog.Logger
	users    *mapping
	groups   *mapping
	progress Progress
	rules    *Rules
	fp       string   // fingerprint of the settings that shape resources
	uattrs   []string // LDAP attributes read for users
	gattrs   []string // and for groups
	// rangeFault, set by tests, fails the range-retrieval request for (dn, low) when it returns an error.
	rangeFault func(dn string, low int) error
	// guidRead, set by tests, is told of every re-read by GUID of a DirSync pass.
	guidRead func(typ scim.ResourceType, id string)

	observers []Observer // told of every pass (observe.go)

	mu sync.Locker // one pass at a time (Options.PassLock)
}

// Options are the optional parts of a Syncer; the zero value is a Syncer without rules,
// progress or observers that logs nothing.
type Options struct {
	// Log receives the Syncer's messages; nil discards them.
	Log *slog.Logger
	// Rules are the compiled [[rules]] (role mapping and virtual groups).
	Rules *Rules
	// Progress is told how far each pass has come.
	Progress Progress
	// Observers are told of every pass, in this order (observe.go).
	Observers []Observer
	// PassLock, if set, is held for each pass and approval instead of the Syncer's own lock:
	// the passes of every source of one cache share it, since each replaces the hold set.
	PassLock sync.Locker
}

// New checks cfg and returns a Syncer over store. cfg must already have its secrets resolved.
func New(cfg Config, safety SafetyConfig, store Store, opts Options) (*Syncer, error) {
	if errs := append(cfg.Validate(), safety.Validate()...); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	users, err := UserMapping(cfg.Dialect, cfg.Users.Mapping)
	if err != nil {
		return nil, err
	}
	groups, err := GroupMapping(cfg.Dialect, cfg.Groups.Mapping)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cfg: cfg, safety: safety, store: store, log: log.With("source", Source), users: users, groups: groups,
		rules: opts.Rules, progress: opts.Progress, observers: slices.Clone(opts.Observers), mu: opts.PassLock}
	if s.mu == nil {
		s.mu = &sync.Mutex{}
	}
	s.fp = s.computeFingerprint()
	s.uattrs = dedupFold(append([]string{"entryUUID", "objectGUID", "modifyTimestamp", "uid"}, users.ldapAttributes()...))
	ga := append([]string{"entryUUID", "objectGUID", "modifyTimestamp"}, groups.ldapAttributes()...)
	ga = append(ga, cfg.Groups.MemberAttributes...)
	s.gattrs = dedupFold(append(ga, cfg.Groups.MemberUIDAttributes...))
	if cfg.Dialect == DialectActiveDirectory {
		s.adAttributes()
	}
	return s, nil
}

// watermark is what a pass stores in the cache, in the same transaction as its last entries.
type watermark struct {
	Mode         string    `json:"mode"`
	Fingerprint  string    `json:"fingerprint"` // of the settings that shape resources; a change forces a full pass
	UsersCookie  []byte    `json:"usersCookie,omitempty"`
	GroupsCookie []byte    `json:"groupsCookie,omitempty"`
	MaxModify    string    `json:"maxModify,omitempty"` // highest modifyTimestamp the server showed us
	LastFull     time.Time `json:"lastFull"`
	AD           *adMark   `json:"ad,omitempty"` // Active Directory: the DC and its USN or DirSync cookie
	// ReadInFull names groups a syncrepl delta reported changed but could not read (gone
	// by then): the next delta reads them in full rather than replay them from the accesslog,
	// since their changes before this cookie are not in the cache.
	ReadInFull []string `json:"readInFull,omitempty"`
	// LastPass is when the pass that wrote this watermark applied its changes (see LastSync).
	LastPass time.Time `json:"lastPass,omitzero"`
}

func (s *Syncer) fingerprint() string { return s.fp }

// threshold is the deletion threshold of [safety].
func (s *Syncer) threshold() ingest.Threshold {
	return ingest.Threshold{MaxDeletes: s.safety.MaxDeletes, MaxDeletePercent: s.safety.MaxDeletePercent}
}

func (s *Syncer) computeFingerprint() string {
	b, _ := json.Marshal([]any{s.cfg.URL, s.cfg.Dialect, s.cfg.Users, s.cfg.Groups, s.rules.Fingerprint()})
	return fmt.Sprintf("%x", hash(b))
}

func (s *Syncer) loadWatermark(ctx context.Context) (*watermark, error) {
	raw, err := s.store.Watermark(ctx, Source)
	if err != nil || raw == nil {
		return nil, err
	}
	var w watermark
	if err := json.Unmarshal(raw, &w); err != nil {
		s.log.Warn("stored watermark does not decode; running a full pass", "err", err)
		return nil, nil
	}
	return &w, nil
}

// SyncOnce runs one pass: a delta pass when a stored watermark allows one, otherwise a full
// reconciliation.
func (s *Syncer) SyncOnce(ctx context.Context) (Summary, error) {
	return s.run(ctx, false)
}

// SyncFull runs a full reconciliation pass.
func (s *Syncer) SyncFull(ctx context.Context) (Summary, error) {
	return s.run(ctx, true)
}

func (s *Syncer) run(ctx context.Context, full bool) (sum Summary, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.observe(sum, err) }()
	start := time.Now()
	wm, err := s.loadWatermark(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("reading watermark: %w", err)
	}
	if !full {
		switch {
		case wm == nil:
			s.log.Info("no watermark yet; running a full pass")
			full = true
		case wm.Fingerprint != s.fingerprint():
			s.log.Info("directory or mapping settings changed since the last pass; running a full pass")
			full = true
		case !s.tracks(wm.Mode):
			// The stored cookie or timestamp belongs to the other method: meaningless to this one.
			s.log.Info("change_tracking changed since the last full pass; running a full pass to start the new method",
				"change_tracking", s.cfg.ChangeTracking, "watermark_mode", wm.Mode)
			full = true
		}
	}
	fullReason, err := s.needsFullMarker(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("reading watermark: %w", err)
	}
	if !full && fullReason != "" {
		s.log.Info("the last pass failed midway; running a full pass so that nothing a restarted server lost track of is missed",
			"last_failure", fullReason)
		full = true
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return Summary{}, err
	}
	defer conn.Close()
	p := s.newPass(conn, full)
	defer func() { p.close() }()
	if full {
		err = p.runFull(ctx, wm)
	} else {
		err = p.runDelta(ctx, wm)
		if errors.Is(err, errRefreshRequired) {
			s.log.Info("running a full pass instead of a delta pass", "why", err.Error())
			p.close()
			p = s.newPass(conn, true)
			err = p.runFull(ctx, wm)
		}
	}
	p.sum.Duration = time.Since(start)
	if err != nil {
		s.log.Warn("pass failed", "pass", p.id, "err", err, "read", p.sum.Read)
		syncrepl := p.sum.Mode == TrackSyncrepl || (wm != nil && wm.Mode == TrackSyncrepl)
		if ctx.Err() == nil && syncrepl && fullReason == "" {
			s.setFullMarker(context.WithoutCancel(ctx), err.Error())
		}
		return p.sum, fmt.Errorf("pass %s: %w", p.id, err)
	}
	if p.sum.Full && fullReason != "" {
		s.clearFullMarker(ctx)
	}
	s.log.Info("pass done", "pass", p.id, "full", p.sum.Full, "mode", p.sum.Mode, "read", p.sum.Read,
		"created", p.sum.Created, "updated", p.sum.Updated, "deactivated", p.sum.Deactivated,
		"deleted", p.sum.Deleted, "held", p.sum.Held, "heldMembers", p.sum.HeldMembers, "replayedGroups", p.sum.Replayed, "rejoinedMemberships", p.sum.Rejoined, "duration", p.sum.Duration.Round(time.Millisecond))
	s.warnDuplicates(p.id, p.dups)
	return p.sum, nil
}
