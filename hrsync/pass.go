package hrsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// chunk is how many users a pass writes per cache batch.
const chunk = 500

// pass is one read of the file into the cache.
type pass struct {
	s    *Source
	rep  *hrcsv.Report
	dry  bool
	sum  *Summary
	id   string
	core *ingest.Pass
	// seen holds the id of every row, 16 bytes each: what the deletion scan of runScan
	// compares with. runRows has rows instead, and order: their indexes in id order.
	seen  map[uuid.UUID]struct{}
	rows  []rowState
	order []int32
	// pending are rows read and not yet compared with their stored source records; batch and
	// batchSrc the users (and records) to write.
	pending  []pendingUser
	batch    []*scim.Resource
	batchSrc map[string][]byte
	rulesFP  []byte
	// recBuf is recordDigest's buffer; its first recPrefix bytes are the version and rules.
	recBuf    []byte
	recPrefix int
	keys      map[string]string // dry run: id → key, for the report
	// Enrich mode (enrich.go): joined are the users rows joined; queued those the pass queued
	// of held, the users this source holds a change of; ovBatch the overlays of batch, aside
	// those of users whose deactivation Last decides.
	joined, queued, held map[string]bool
	// walked is set once runEnrichRows walked the cache: owned and withOverlay are then the
	// sorted hashes (by seed) of the users another source owns and of those with an overlay.
	walked             bool
	seed               maphash.Seed
	owned, withOverlay []uint64
	ovBatch            map[string]*cache.Overlay
	aside              map[string]asideOverlays
	// reactivations are users a changed row makes active again after this source's overlay
	// had deactivated them: applied at the end of the pass, when under the threshold.
	reactivations []reactivation
	// load, in a users pass into a cache without resources, writes the pass's batches as a
	// bulk load (cache.Store.BeginLoad) until its last batch, which commits it.
	load *cache.Load
	// managersMissing counts rows whose manager key names no row and no directory user.
	managersMissing int
}

// pendingUser is a row, what its user depends on beyond the row, and the source record it
// would store.
type pendingUser struct {
	row hrcsv.Row
	f   facts
	id  string
	rec []byte
}

// facts are what a row's user depends on beyond its cells, resolved once per row.
type facts struct {
	active  bool
	manager string // the manager's id, or ""
}

// runScan is the row-by-row pass of a users file: it resolves each row as it reads the file
// again, and compares the rows' records with the stored ones a chunk at a time. It serves the
// files whose rows' states cannot decide their users (runRows): dates that do not read with
// date_format, or an active column with a value that is no boolean (an error).
func (p *pass) runScan(ctx context.Context, r io.Reader, wm watermark) error {
	p.batchSrc = map[string][]byte{}
	p.rulesFP = p.s.rulesFingerprint()
	p.seen = make(map[uuid.UUID]struct{}, p.rep.Rows)
	now := p.s.o.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if p.dry {
		p.keys = map[string]string{}
	}
	err := hrcsv.Scan(ctx, r, p.s.cfg, p.rep, func(row hrcsv.Row) error {
		f, err := p.resolve(ctx, row, today)
		if err != nil {
			return err
		}
		id := p.s.UserID(row.Key)
		p.seen[uuid.MustParse(id)] = struct{}{}
		if p.dry {
			p.keys[id] = row.Key
		}
		p.pending = append(p.pending, pendingUser{row: row, f: f, id: id, rec: p.record(row.Digest, f)})
		if len(p.pending) >= chunk {
			return p.compareRecords(ctx)
		}
		return nil
	})
	if err == nil {
		err = p.compareRecords(ctx)
	}
	if err != nil {
		// An incomplete read deletes nothing (invariant 4): what was written stays, the
		// watermark does not move, and the next pass reads the file again.
		return err
	}
	p.reportMissingManagers()
	// The file is complete: a user this source owns that it no longer lists is deleted.
	var gone []string
	err = p.s.store.ForEachOwned(ctx, scim.UserType, p.s.Name(), func(id string) error {
		if u, err := uuid.Parse(id); err == nil {
			if _, ok := p.seen[u]; ok {
				return nil
			}
		}
		p.core.Dels.Mark(id, scim.UserType)
		gone = append(gone, id)
		return nil
	})
	if err != nil {
		return err
	}
	return p.last(ctx, gone, wm)
}

func (p *pass) reportMissingManagers() {
	if p.managersMissing > 0 {
		w := fmt.Sprintf("%d row(s) name a manager key that is no row of the file and no directory user's externalId; those users have no manager", p.managersMissing)
		p.sum.Warnings = append(p.sum.Warnings, w)
		p.s.o.Log.Warn("unresolved managers", "rows", p.managersMissing)
	}
}

// last decides the deletions (gone, marked) and the deactivations set aside against the
// threshold, and writes the pass's last batch with the watermark.
func (p *pass) last(ctx context.Context, gone []string, wm watermark) error {
	if err := p.core.Held.Load(ctx, p.s.store, p.s.th, p.core.Owner, gone, p.core.Dels.Deactivations()); err != nil {
		return err
	}
	b, held, _, err := p.core.Last(ctx, ingest.Tail{Upserts: p.batch, Sources: p.batchSrc, Read: p.read})
	if err != nil {
		return err
	}
	p.batch = nil
	p.sum.Held = held
	b.Own = true
	return p.finish(ctx, b, wm)
}

// finish writes the pass's last batch with the watermark, in one transaction (a dry run
// reports the batch instead).
func (p *pass) finish(ctx context.Context, b cache.Batch, wm watermark) error {
	wm.Time = time.Now().UTC()
	var err error
	if b.Watermark, err = json.Marshal(wm); err != nil {
		return err
	}
	if p.dry {
		return p.report(ctx, b)
	}
	return p.apply(ctx, b)
}

// apply writes b; a dry run only counts what writing its users would change.
func (p *pass) apply(ctx context.Context, b cache.Batch) error {
	if p.dry {
		return p.compare(ctx, b.Upserts)
	}
	apply := p.s.store.Apply
	if p.load != nil {
		apply = p.load.Apply
	}
	res, err := apply(ctx, b)
	p.add(res)
	return err
}

// beginLoad starts a bulk load when the cache holds no resources (an HR file as the only
// source, imported for the first time); a store that cannot load is written to as usual.
func (p *pass) beginLoad(ctx context.Context) error {
	if p.dry {
		return nil
	}
	l, err := ingest.BeginLoad(ctx, p.s.store)
	p.load = l
	return err
}

// endLoad ends a bulk load the pass did not commit (it failed): nothing of it is written.
func (p *pass) endLoad() {
	if p.load != nil {
		p.load.Abort()
	}
}

// recordVersion names how a row becomes a user: a change of that code makes every stored
// record stale, so the next pass writes every user again.
const recordVersion = "hrsync/2"

// record is the source record of a row's user: a digest of everything the user is built from
// (the key and the mapped cells: the row's digest; the resolved facts; the rules), so that an
// unchanged row costs a comparison, not a write, and the user is built only for a row that
// changed.
func (p *pass) record(digest [16]byte, f facts) []byte {
	var rec ingest.SourceRecord
	rec.Digest = p.recordDigest(digest, f)
	return rec.Encode()
}

// recordDigest is the digest of record: SHA-256 of the record version, the rules, the row's
// digest, the facts, cut to 16 bytes.
func (p *pass) recordDigest(digest [16]byte, f facts) [16]byte {
	if p.recBuf == nil {
		p.recBuf = append(append([]byte(recordVersion), 0), p.rulesFP...)
		p.recPrefix = len(p.recBuf)
	}
	b := append(p.recBuf[:p.recPrefix], digest[:]...)
	b = append(b, strconv.FormatBool(f.active)...)
	b = append(append(b, 0), f.manager...)
	p.recBuf = append(b, 0)
	sum := sha256.Sum256(p.recBuf)
	return [16]byte(sum[:16])
}

// compareRecords skips the pending users whose stored source record is theirs (unchanged
// rows) and queues the others for writing.
func (p *pass) compareRecords(ctx context.Context) error {
	if len(p.pending) == 0 {
		return nil
	}
	ids := make([]string, len(p.pending))
	for i, pu := range p.pending {
		ids[i] = pu.id
	}
	stored, err := p.s.store.SourceHashes(ctx, ids)
	if err != nil {
		return err
	}
	for _, pu := range p.pending {
		if bytes.Equal(stored[pu.id], pu.rec) {
			p.sum.Unchanged++
			continue
		}
		if err := p.queue(ctx, p.build(pu.row, pu.id, pu.f), pu.rec); err != nil {
			return err
		}
	}
	p.pending = p.pending[:0]
	return nil
}

// queue queues the user of a changed row, with its source record, for writing.
func (p *pass) queue(ctx context.Context, u *scim.Resource, rec []byte) error {
	aside, err := p.core.Queue(ctx, u)
	if err != nil || aside {
		return err // aside: a deactivation, decided against the threshold at the end
	}
	p.batch = append(p.batch, u)
	p.batchSrc[u.ID] = rec
	if len(p.batch) >= chunk {
		return p.flush(ctx)
	}
	return nil
}

// read reports whether the pass read id: a row of the file, or a virtual group of the rules.
func (p *pass) read(id string) bool {
	u, err := uuid.Parse(id)
	if err != nil {
		return false
	}
	if p.rows != nil {
		_, ok := slices.BinarySearchFunc(p.order, u, func(i int32, u uuid.UUID) int { return compareIDs(&p.rows[i].id, &u) })
		return ok
	}
	_, ok := p.seen[u]
	return ok
}

// flush writes the users queued so far (a dry run only compares them).
func (p *pass) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	err := p.apply(ctx, cache.Batch{Source: p.s.Name(), Pass: p.id, Own: true, Upserts: p.batch, SourceHashes: p.batchSrc})
	p.batch, p.batchSrc = p.batch[:0], map[string][]byte{}
	return err
}

func (p *pass) add(r cache.Result) {
	p.sum.Created += r.Created
	p.sum.Updated += r.Updated
	p.sum.Deactivated += r.Deactivated
	p.sum.Deleted += r.Deleted
	p.sum.Unchanged += r.Unchanged
}

// resolve works out what a row's user depends on beyond its cells: whether it is active
// (the active column, the start and end dates against today) and its manager's id.
func (p *pass) resolve(ctx context.Context, row hrcsv.Row, today time.Time) (facts, error) {
	f := facts{active: true}
	if m := p.s.managerPath; m != "" {
		if v, ok := row.Values[m]; ok {
			id, err := p.managerID(ctx, v)
			if err != nil {
				return f, err
			}
			if id != p.s.UserID(row.Key) { // nobody is their own manager
				f.manager = id
			}
		}
	}
	var err error
	f.active, err = p.s.activeOf(row, today)
	return f, err
}

// activeOf reports whether a row's user is active: its active column (an error when the cell
// is no boolean), and its start and end dates against today.
func (s *Source) activeOf(row hrcsv.Row, today time.Time) (bool, error) {
	active := true
	if s.activePath != "" {
		if v, ok := row.Values[s.activePath]; ok {
			b, ok := parseBool(v)
			if !ok {
				return false, fmt.Errorf("line %d, column %q: %q is not a boolean (true/false, yes/no, 1/0)", row.Line, s.cfg.Mapping[s.activePath], v)
			}
			active = b
		}
	}
	if !row.Start.IsZero() && today.Before(row.Start) {
		active = false // not started yet
	}
	if !row.End.IsZero() && !today.Before(row.End) {
		active = false // left: inactive from the end date on
	}
	return active, nil
}

// build makes the user of a row.
func (p *pass) build(row hrcsv.Row, id string, f facts) *scim.Resource {
	u := &scim.Resource{Type: scim.UserType, ID: id, Attributes: make(map[string]any, len(p.s.paths)+2)}
	for _, m := range p.s.paths {
		if v, ok := row.Values[m.path.Raw]; ok && !m.manager && !(m.path.Schema == "" && m.path.Attr == "active") {
			m.path.Set(u, v)
		}
	}
	if f.manager != "" {
		ext, _ := u.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			u.Attributes[scim.SchemaEnterpriseUser] = ext
		}
		// The id only: the manager's displayName (read-only and optional, RFC 7643 4.3) would
		// depend on the order of the rows.
		ext["manager"] = map[string]any{"value": f.manager}
	}
	if u.ExternalID == "" {
		u.ExternalID = row.Key
	}
	fillNames(u)
	u.Attributes["active"] = f.active
	scim.MarkPrimaryEmail(u)
	return u
}

// fillNames gives a user whose file has no display name one from its given and family names,
// as the directory's default mapping does (displayName and name.formatted from the full name).
func fillNames(u *scim.Resource) {
	name, _ := u.Attributes["name"].(map[string]any)
	if name == nil {
		return
	}
	given, _ := name["givenName"].(string)
	family, _ := name["familyName"].(string)
	full := strings.TrimSpace(given + " " + family)
	if full == "" {
		return
	}
	if _, ok := name["formatted"]; !ok {
		name["formatted"] = full
	}
	if _, ok := u.Attributes["displayName"]; !ok {
		u.Attributes["displayName"] = full
	}
}

// managerID resolves a manager key: a row of the file, else the directory user whose
// externalId it is (a contractor managed by an employee); "" when neither (this source's own
// user of that key is no manager when the file no longer has its row).
func (p *pass) managerID(ctx context.Context, key string) (string, error) {
	if p.rep.Has(key) {
		return p.s.UserID(key), nil
	}
	ids, err := p.s.store.Lookup(ctx, cache.IndexExternalID, key)
	if err == nil && len(ids) == 1 && ids[0] == p.s.UserID(key) {
		ids = nil // the user of a row that went: deleted by this pass
	}
	if err != nil || len(ids) != 1 {
		if err == nil {
			p.managersMissing++
		}
		return "", err
	}
	return ids[0], nil
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true", "yes", "y", "1", "active":
		return true, true
	case "false", "no", "n", "0", "inactive":
		return false, true
	}
	return false, false
}

// compare counts, for a dry run, what writing users would change.
func (p *pass) compare(ctx context.Context, users []*scim.Resource) error {
	for _, u := range users {
		old, err := p.s.store.Get(ctx, scim.UserType, u.ID)
		switch {
		case errors.Is(err, cache.ErrNotFound):
			p.sum.Created++
			p.note("create", u)
			continue
		case err != nil:
			return err
		}
		a, _ := json.Marshal(old.Attributes)
		b, _ := json.Marshal(u.Attributes)
		switch {
		case bytes.Equal(a, b) && old.ExternalID == u.ExternalID:
			p.sum.Unchanged++
		case old.Active() && !u.Active():
			p.sum.Deactivated++
			p.note("deactivate", u)
		default:
			p.sum.Updated++
			p.note("update", u)
		}
	}
	return nil
}

// report fills a dry run's summary from the pass's last batch instead of applying it.
func (p *pass) report(ctx context.Context, b cache.Batch) error {
	var users []*scim.Resource
	for _, r := range b.Upserts {
		if r.Type == scim.UserType {
			users = append(users, r)
		}
	}
	if err := p.compare(ctx, users); err != nil {
		return err
	}
	for _, id := range b.Deletes {
		p.sum.Deleted++
		name := id
		if ref, err := p.s.store.Ref(ctx, id); err == nil {
			name = ref.Display
		}
		p.sum.Changes = append(p.sum.Changes, Change{Action: "delete", ID: id, Name: name})
	}
	return nil
}

// maxChanges bounds a dry run's list of changes; the counts are always complete.
const maxChanges = 1000

func (p *pass) note(action string, u *scim.Resource) {
	if len(p.sum.Changes) < maxChanges {
		p.sum.Changes = append(p.sum.Changes, Change{Action: action, ID: u.ID, Key: p.keys[u.ID], Name: ingest.DisplayOf(u)})
	}
}
