// Package hrsync runs the passes of an HR file source ([[csv]]). In mode "users" (below) the
// file's rows are people who are not in the directory (contractors, new hires before their
// account exists), provisioned from a CSV export like directory users. A pass checks the whole
// file before it applies anything (package hrcsv: any bad row applies nothing), learning its
// rows in the same read (users.go), then writes the rows that changed into the cache through
// the same source-neutral core as the directory (package ingest): the deletion threshold and
// holds, the rules and their virtual groups. The source owns its users (cache.Batch.Own), so a
// row that disappears deletes only a user this source created, and no directory pass ever
// takes its users for deleted.
//
// A user's id is derived from the source's name and the row's key (a name-based UUID), so it is
// stable across imports: a changed row is an update, a row that disappears is a deletion. A
// user is active from its start date (if any) until its end date (inactive from that day on);
// a deactivation counts against the threshold like a deletion.
//
// In mode "enrich" (enrich.go) each row adds attributes to the directory user it joins, through
// an overlay (cache.Overlay) the directory's passes apply too. Its pass, too, learns the file in
// the read that checks it, then decides every row in streaming walks of the cache
// (enrichrows.go).
package hrsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Store is what a pass needs of the cache; *cache.Store implements it.
type Store interface {
	ingest.Store
	Watermark(ctx context.Context, source string) ([]byte, error)
	// Owner names the source that owns a user ("" for the directory's).
	Owner(ctx context.Context, id string) (string, error)
	// ForEachOwnedSource walks the users a source owns, with their source records, in id order.
	ForEachOwnedSource(ctx context.Context, typ scim.ResourceType, source string, fn func(id string, hash []byte) error) error
	// ForEachOwner walks the users any source owns, ForEachIndexed an index, and
	// ForEachOverlayDigest the overlays: an enrich pass compares a file with them.
	ForEachOwner(ctx context.Context, typ scim.ResourceType, fn func(id, source []byte) error) error
	ForEachIndexed(ctx context.Context, idx cache.Index, fn func(value, id []byte) error) error
	ForEachOverlayDigest(ctx context.Context, fn func(id, source, key string, set [16]byte) error) error
	// JournalHead and Journal tell a scheduled enrich pass whether the directory changed since
	// the last one (Source.steady).
	JournalHead(ctx context.Context) (uint64, error)
	Journal(ctx context.Context, afterSeq uint64, limit int) ([]cache.JournalRecord, error)
}

// Options are the optional parts of a Source.
type Options struct {
	// Log receives the passes' messages; nil discards them.
	Log *slog.Logger
	// Rules are the [[rules]] every source's users go through.
	Rules *ingest.Rules
	// Now is the clock that decides start and end dates; nil is time.Now.
	Now func() time.Time
	// PassLock, if set, is held for each pass instead of the Source's own lock: the passes of
	// every source of one cache share it (ldapsync.Options.PassLock), since each replaces the
	// hold set.
	PassLock sync.Locker
}

// Source is one [[csv]] source. Its passes are serialized.
type Source struct {
	cfg   hrcsv.Config
	th    ingest.Threshold
	store Store
	o     Options
	paths []mapped
	// activePath and managerPath are the raw paths of the active attribute and the manager,
	// "" when not mapped.
	activePath, managerPath string
	mu                      sync.Locker
	// steadyTo is how far steady read the journal after the pass that wrote the watermark
	// without finding a change: the next scheduled pass reads only what came after.
	steadyTo struct {
		pass string
		seq  uint64
	}
}

type mapped struct {
	path    scim.Path
	manager bool // the enterprise manager: a key, resolved to that user's id
}

// namespace is the UUID namespace of the ids of HR users: uuid.NewSHA1(namespace, source
// name NUL key).
var namespace = uuid.MustParse("6f1c2a4e-5b7d-4c0e-9a3f-1d2e3f405162")

// New checks cfg (which must have passed hrcsv.Config.Validate) and returns its source.
func New(cfg hrcsv.Config, th ingest.Threshold, store Store, o Options) (*Source, error) {
	switch cfg.Mode {
	case hrcsv.ModeUsers:
	case hrcsv.ModeEnrich:
		if _, ok := joinIndex(cfg.Join); !ok {
			return nil, fmt.Errorf("csv %q: join: %q: want \"externalId\" or \"userName\"", cfg.Name, cfg.Join)
		}
	default:
		return nil, fmt.Errorf("csv %q: mode %q: want \"users\" or \"enrich\"", cfg.Name, cfg.Mode)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Source{cfg: cfg, th: th, store: store, o: o, mu: o.PassLock}
	if s.mu == nil {
		s.mu = &sync.Mutex{}
	}
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(cfg.Mapping)) {
		sp, err := scim.ParsePath(scim.UserType, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("csv %q mapping: %w", cfg.Name, err))
			continue
		}
		if cfg.Mode == hrcsv.ModeEnrich && !sp.Single() {
			errs = append(errs, fmt.Errorf("csv %q mapping: %w", cfg.Name, EnrichPathError(sp)))
			continue
		}
		m := mapped{path: sp, manager: sp.Schema != "" && sp.Attr == "manager"}
		s.paths = append(s.paths, m)
		switch {
		case m.manager:
			s.managerPath = sp.Raw
		case sp.Schema == "" && sp.Attr == "active":
			s.activePath = sp.Raw
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.o.Log = s.o.Log.With("source", s.Name())
	return s, nil
}

// EnrichPathError is why enrich mode refuses a path that is not single-valued (scim.Path.Single).
func EnrichPathError(p scim.Path) error {
	if p.Multi {
		return fmt.Errorf("%q: enrich mode sets single-valued attributes only, not a value of the multi-valued %s", p.Raw, p.Attr)
	}
	return fmt.Errorf("%q: enrich mode cannot set the manager (a reference); map it in the directory", p.Raw)
}

// Name is the source's name in the cache: its watermark key, its holds' and its users' owner.
func (s *Source) Name() string { return "csv:" + s.cfg.Name }

// Path is the file scheduled passes read.
func (s *Source) Path() string { return s.cfg.Path }

// UserID is the id of the user of the row with that key.
func (s *Source) UserID(key string) string {
	return uuid.NewSHA1(namespace, []byte(s.cfg.Name+"\x00"+key)).String()
}

// rulesFingerprint is the rules' part of every source record: a change of the rules makes
// every record stale.
func (s *Source) rulesFingerprint() []byte {
	b, _ := json.Marshal(s.o.Rules.Fingerprint())
	return b
}

// watermark is what the source stores after a pass: which file content it applied.
type watermark struct {
	SHA256 string    `json:"sha256"`
	Rows   int       `json:"rows"`
	Pass   string    `json:"pass"`
	Time   time.Time `json:"time"`
	// Day is the date the pass judged start and end dates on: a file with dates is read again
	// on a new day even when its content did not change, so a leaver's end date takes effect.
	Day string `json:"day,omitempty"`
	// Config is Source.fingerprint: a file is read again after a change of its [[csv]] keys or
	// of the rules, though its content did not change.
	Config string `json:"config,omitempty"`
	// Journal is the cache's journal head when an enrich pass began: the next pass reads the
	// unchanged file again only if the journal after it joins rows anew (Source.steady).
	Journal uint64 `json:"journal,omitempty"`
}

// fingerprint is a digest of what makes rows users or overlays beside the file: the source's
// configuration (but its path) and the rules.
func (s *Source) fingerprint() string {
	c := s.cfg
	c.Path = ""
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(append(append(b, 0), s.rulesFingerprint()...))
	return hex.EncodeToString(sum[:16])
}

// steady reports whether nothing an enrich pass joins rows by changed in the cache since the
// pass that wrote wm: no user was created or deleted, and no user's join attribute changed, by
// any other pass (the journal after wm.Journal), and this source holds nothing (a pass decides
// its holds again). Then the same file joins the same users as that pass, and reading it again
// would change nothing: a scheduled pass costs one hash of the file and this walk of the
// journal, O(the changes since).
func (s *Source) steady(ctx context.Context, wm watermark) (bool, error) {
	holds, err := s.store.Holds(ctx)
	if err != nil {
		return false, err
	}
	for _, h := range holds {
		if h.Source == s.Name() {
			return false, nil
		}
	}
	after := wm.Journal
	if s.steadyTo.pass == wm.Pass {
		after = max(after, s.steadyTo.seq) // the journal up to there was read by an earlier skip
	}
	for {
		recs, err := s.store.Journal(ctx, after, 1024)
		if err != nil || len(recs) == 0 {
			if err == nil {
				s.steadyTo.pass, s.steadyTo.seq = wm.Pass, after
			}
			return err == nil, err
		}
		for _, r := range recs {
			if r.Seq != after+1 {
				return false, nil // records missing: decide nothing on them
			}
			after = r.Seq
			if r.Type != scim.UserType || r.Pass == wm.Pass {
				continue
			}
			if r.Op == cache.OpCreated || r.Op == cache.OpDeleted || slices.Contains(r.Changed, s.cfg.Join) {
				return false, nil
			}
		}
	}
}

// Summary is what one pass did.
type Summary struct {
	Source      string `json:"source"`
	Pass        string `json:"pass,omitempty"`
	Rows        int    `json:"rows"`
	Created     int    `json:"created"`
	Updated     int    `json:"updated"`
	Deactivated int    `json:"deactivated"`
	Deleted     int    `json:"deleted"`
	Unchanged   int    `json:"unchanged"`
	Held        int    `json:"held"` // deletions and deactivations held
	// Enrich mode: rows that join no directory user (not an error: the user may come later),
	// and rows that join several (skipped); the first keys of each.
	Unjoined      int      `json:"unjoined,omitempty"`
	UnjoinedKeys  []string `json:"unjoinedKeys,omitempty"`
	Ambiguous     int      `json:"ambiguous,omitempty"`
	AmbiguousKeys []string `json:"ambiguousKeys,omitempty"`
	// Reactivations counts enriched users a row made active again (an end date cleared or
	// moved); RefusedReactivations those kept inactive because there were more than [safety]
	// allows in one pass.
	Reactivations        int `json:"reactivations,omitempty"`
	RefusedReactivations int `json:"refusedReactivations,omitempty"`
	// KeptOverlays counts enriched users whose rows left the file, kept with the file's values
	// because there were more than [safety] allows in one pass (a truncated export).
	KeptOverlays int           `json:"keptOverlays,omitempty"`
	Skipped      bool          `json:"skipped,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
	Duration     time.Duration `json:"duration"`
	// DryRun is set when nothing was written; Changes then says what would change.
	DryRun  bool     `json:"dryRun,omitempty"`
	Changes []Change `json:"changes,omitempty"`
}

// Change is one change a dry run found.
type Change struct {
	Action string `json:"action"` // create, update, deactivate, delete
	ID     string `json:"id"`
	Key    string `json:"key,omitempty"`
	Name   string `json:"name"`
}

// Sync reads the configured file when its content changed since the last pass (a skipped
// pass costs one hash of the file).
func (s *Source) Sync(ctx context.Context) (Summary, error) {
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return Summary{Source: s.Name()}, fmt.Errorf("csv %q: %w", s.cfg.Name, err)
	}
	defer f.Close()
	return s.Import(ctx, f, false, false)
}

// Import applies the file r as the source's whole current content (dry: only reports what
// would change). Unless force, a file whose content the last pass applied is skipped. A file
// with any bad row changes nothing: the error is an *hrcsv.Problems.
func (s *Source) Import(ctx context.Context, r io.ReadSeeker, force, dry bool) (Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	sum := Summary{Source: s.Name(), DryRun: dry}
	var wm watermark
	if raw, err := s.store.Watermark(ctx, s.Name()); err == nil {
		_ = json.Unmarshal(raw, &wm)
	} else if !errors.Is(err, cache.ErrNotFound) {
		return sum, err
	}
	day := s.o.Now().UTC().Format(time.DateOnly)
	dated := s.cfg.StartDate != "" || s.cfg.EndDate != ""
	// A file the last pass applied, on the same day when it has dates, with the same
	// configuration, costs one hash. An enriching source's file is read again when the
	// directory changed since in a way that joins rows anew (a user created, deleted, or with
	// another join attribute: steady), whatever the file.
	enrich := s.cfg.Mode == hrcsv.ModeEnrich
	fp := s.fingerprint()
	var head uint64
	if enrich {
		var err error
		if head, err = s.store.JournalHead(ctx); err != nil {
			return sum, err
		}
	}
	if !force && !dry && wm.SHA256 != "" && (!dated || wm.Day == day) && wm.Config == fp {
		d, err := hrcsv.Digest(r)
		if err != nil {
			return sum, err
		}
		same := hex.EncodeToString(d[:]) == wm.SHA256
		if same && enrich {
			if same, err = s.steady(ctx, wm); err != nil {
				return sum, err
			}
		}
		if same {
			sum.Skipped, sum.Rows = true, wm.Rows
			sum.Duration = time.Since(start)
			return sum, nil
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return sum, err
		}
	}
	// A users file is learnt in the read that checks it, while the source's stored users are
	// read for the comparison (users.go).
	// An enrich file is learnt the same way, and compared with the cache after the check.
	var rows *collector
	var erows *enrichCollector
	var learn func(hrcsv.Row) error
	var stored *storedUsers
	if enrich {
		erows = newEnrichCollector(s, s.today())
		learn = erows.add
	} else {
		rows = newCollector(s)
		learn = rows.add
		stored = s.readStored(ctx)
		defer stored.stop()
	}
	rep, err := hrcsv.CheckRows(ctx, r, s.cfg, learn)
	if err != nil {
		return sum, fmt.Errorf("csv %q: %w", s.cfg.Name, err)
	}
	sum.Rows, sum.Warnings = rep.Rows, rep.Warnings
	for _, w := range rep.Warnings {
		s.o.Log.Warn("the file's dates", "why", w)
	}
	digest := hex.EncodeToString(rep.SHA256[:])
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return sum, err
	}
	p := &pass{s: s, rep: rep, dry: dry, sum: &sum,
		id: "csv-" + s.cfg.Name + "-" + time.Now().UTC().Format("20060102T150405.000Z")}
	sum.Pass = p.id
	p.core = ingest.NewPass(p.id, s.Name(), s.store, s.th, s.o.Rules, false, s.o.Log)
	if !enrich {
		p.core.Owner = s.Name() // its threshold weighs its own users, not the directory's
	}
	wm = watermark{SHA256: digest, Rows: rep.Rows, Pass: p.id, Day: day, Config: fp, Journal: head}
	if !enrich {
		err = p.beginLoad(ctx)
	}
	switch {
	case err != nil:
		stored.stop()
	case enrich && rep.DatesAsConfigured() && !erows.slow:
		err = p.runEnrichRows(ctx, erows, r, wm)
	case enrich:
		err = p.runEnrich(ctx, r, wm)
	case rep.DatesAsConfigured() && !rows.slow:
		err = p.runRows(ctx, rows, stored, r, wm)
	default:
		stored.stop()
		err = p.runScan(ctx, r, wm)
	}
	p.endLoad()
	sum.Duration = time.Since(start)
	if err != nil {
		return sum, fmt.Errorf("csv %q: pass %s: %w", s.cfg.Name, p.id, err)
	}
	s.o.Log.Info("csv pass done", "pass", p.id, "rows", sum.Rows, "created", sum.Created, "updated", sum.Updated,
		"deactivated", sum.Deactivated, "deleted", sum.Deleted, "held", sum.Held, "unchanged", sum.Unchanged,
		"unjoined", sum.Unjoined, "ambiguous", sum.Ambiguous,
		"dry_run", dry, "took", sum.Duration.Round(time.Millisecond))
	return sum, nil
}
