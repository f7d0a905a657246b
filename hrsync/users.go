package hrsync

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/scim"
)

// A users pass learns the file in the read that checks it (hrcsv.CheckRows), keeping a
// rowState of each row, while a goroutine reads the source's stored users and their records
// in one ordered walk (cache.Store.ForEachOwnedSource). Then it works out each row's source
// record in memory and merges the rows, sorted by id, with the stored users: a row whose
// record differs changed, a row with no user is new, a user with no row is gone. Only the rows
// that changed are read again (by offset, or in one more read of the file when many did) and
// built into users. A re-import of a file with k changed rows costs one read of the file, the
// walk beside it, and O(k) cache work.
//
// Memory: 64 bytes per row (rowState), 4 per row to sort them by id, 33 per stored user
// (storedUser), and one string per distinct manager key (with its map entry), beside
// hrcsv.CheckRows's 24 bytes per row.

// rowState is what a users pass keeps of a row between the check and the comparison.
type rowState struct {
	id     uuid.UUID
	digest [16]byte // hrcsv.Row.Digest
	off    int64    // hrcsv.Row.Offset
	line   int32
	// mgr indexes the pass's manager keys (collector.mgrKeys); -1: no manager.
	mgr        int32
	start, end int32 // days since 1970-01-01 (UTC); noDate when none
	active     uint8 // the active column: activeUnset, activeTrue or activeFalse
}

// noDate is rowState.start or end for an empty cell.
const noDate = math.MinInt32

// The values of rowState.active.
const (
	activeUnset uint8 = iota // no active column, or an empty cell
	activeTrue
	activeFalse
)

// collector is CheckRows's callback of a users pass: it fills the rows' states.
type collector struct {
	s       *Source
	rows    []rowState
	mgrKeys []string         // the distinct manager keys
	mgrIdx  map[string]int32 // manager key → its index in mgrKeys
	buf     []byte
	// slow is set when the states cannot decide the rows' users: a value of the active column
	// that is no boolean (the row-by-row pass reports it).
	slow bool
}

func newCollector(s *Source) *collector {
	return &collector{s: s, mgrIdx: map[string]int32{}}
}

func (c *collector) add(row hrcsv.Row) error {
	st := rowState{id: c.userID(row.Key), digest: row.Digest,
		off: row.Offset, line: int32(min(row.Line, math.MaxInt32)), mgr: -1, start: day(row.Start), end: day(row.End)}
	if c.s.activePath != "" {
		if v, ok := row.Values[c.s.activePath]; ok {
			b, ok := parseBool(v)
			switch {
			case !ok:
				c.slow = true
			case b:
				st.active = activeTrue
			default:
				st.active = activeFalse
			}
		}
	}
	if c.s.managerPath != "" {
		if k, ok := row.Values[c.s.managerPath]; ok {
			i, ok := c.mgrIdx[k]
			if !ok {
				k = strings.Clone(k) // the cell holds on to its whole record
				i = int32(len(c.mgrKeys))
				c.mgrKeys = append(c.mgrKeys, k)
				c.mgrIdx[k] = i
			}
			st.mgr = i
		}
	}
	c.rows = append(c.rows, st)
	return nil
}

// userID is Source.UserID as a UUID, without its allocations: uuid.NewSHA1 (RFC 4122 version
// 5) of the namespace and the source name NUL key.
func (c *collector) userID(key string) uuid.UUID {
	c.buf = append(append(append(append(c.buf[:0], namespace[:]...), c.s.cfg.Name...), 0), key...)
	sum := sha1.Sum(c.buf)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u
}

// day is t as days since 1970-01-01, or noDate for the zero time.
func day(t time.Time) int32 {
	if t.IsZero() {
		return noDate
	}
	return int32(t.Unix() / 86400)
}

// managers are the resolved manager keys of a pass: the id of each (ids[i] "" when missing),
// and the row it is (rows[i], -1 for a directory user).
type managers struct {
	ids  []string
	rows []int32
}

// compareIDs orders ids as bytes.Compare does, in two integer comparisons.
func compareIDs(a, b *uuid.UUID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// stateFacts are the facts of row i from its state: resolve's, without reading the row.
func (p *pass) stateFacts(i int32, today int32, m *managers) facts {
	st := &p.rows[i]
	f := facts{active: st.active != activeFalse}
	if st.start != noDate && today < st.start {
		f.active = false // not started yet
	}
	if st.end != noDate && today >= st.end {
		f.active = false // left: inactive from the end date on
	}
	if st.mgr >= 0 {
		// Nobody is their own manager.
		if r := m.rows[st.mgr]; r != i && (r >= 0 || m.ids[st.mgr] != st.id.String()) {
			f.manager = m.ids[st.mgr]
		}
	}
	return f
}

// runRows is the pass of a users file whose rows c collected while the file was checked.
func (p *pass) runRows(ctx context.Context, c *collector, stored *storedUsers, r io.ReadSeeker, wm watermark) error {
	p.batchSrc = map[string][]byte{}
	p.rulesFP = p.s.rulesFingerprint()
	if p.dry {
		p.keys = map[string]string{}
	}
	now := p.s.o.Now().UTC()
	today := day(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC))
	rows := c.rows
	// The managers: a row of the file, else the directory user whose externalId the key is.
	mgrs := &managers{ids: make([]string, len(c.mgrKeys)), rows: make([]int32, len(c.mgrKeys))}
	for i, k := range c.mgrKeys {
		mgrs.rows[i] = -1
		if j, ok := p.rep.Index(k); ok {
			mgrs.ids[i], mgrs.rows[i] = rows[j].id.String(), int32(j)
			continue
		}
		ids, err := p.s.store.Lookup(ctx, cache.IndexExternalID, k)
		if err != nil {
			return err
		}
		if len(ids) == 1 && ids[0] != p.s.UserID(k) { // not the user of a row that went
			mgrs.ids[i] = ids[0]
		}
	}
	c.mgrIdx, c.mgrKeys = nil, nil
	// The rows in id order, merged with the source's stored users in id order.
	p.rows = rows
	p.order = make([]int32, len(rows))
	for i := range p.order {
		p.order[i] = int32(i)
	}
	slices.SortFunc(p.order, func(a, b int32) int { return compareIDs(&rows[a].id, &rows[b].id) })
	var changed []int32
	if err := stored.wait(); err != nil {
		return err
	}
	goneIDs := stored.other
	j := 0
	for _, su := range stored.users {
		for j < len(p.order) && compareIDs(&rows[p.order[j]].id, &su.id) < 0 {
			changed = append(changed, p.order[j]) // a row with no user: new
			j++
		}
		if j < len(p.order) && rows[p.order[j]].id == su.id {
			if i := p.order[j]; !su.ok || su.rec != p.recordDigest(rows[i].digest, p.stateFacts(i, today, mgrs)) {
				changed = append(changed, i)
			} else {
				p.sum.Unchanged++
			}
			j++
			continue
		}
		goneIDs = append(goneIDs, su.id.String())
	}
	stored.users = nil
	changed = append(changed, p.order[j:]...)
	for i := range rows {
		if rows[i].mgr >= 0 && mgrs.ids[rows[i].mgr] == "" {
			p.managersMissing++
		}
	}
	// Only the rows that changed are read again, in file order.
	slices.Sort(changed)
	build := func(i int32, row hrcsv.Row) error {
		st := &rows[i]
		f := p.stateFacts(i, today, mgrs)
		id := st.id.String()
		if p.dry {
			p.keys[id] = row.Key
		}
		return p.queue(ctx, p.build(row, id, f), p.record(st.digest, f))
	}
	if err := p.readChanged(ctx, r, changed, build); err != nil {
		return err
	}
	p.reportMissingManagers()
	// The file is complete: a user this source owns that it no longer lists is deleted.
	for _, id := range goneIDs {
		p.core.Dels.Mark(id, scim.UserType)
	}
	return p.last(ctx, goneIDs, wm)
}

// storedUsers are the users a source owns with their stored records, in id order: read
// (cache.Store.ForEachOwnedSource) beside the read that checks the file, which does not need
// them. 33 bytes a user.
type storedUsers struct {
	users  []storedUser
	other  []string // owned ids that are no row's (not a UUID as UserID writes them)
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

type storedUser struct {
	id  uuid.UUID
	rec [16]byte // the stored record's digest, when ok (a record as pass.record encodes them)
	ok  bool
}

// readStored starts reading the source's stored users; wait returns them.
func (s *Source) readStored(ctx context.Context) *storedUsers {
	ctx, cancel := context.WithCancel(ctx)
	w := &storedUsers{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(w.done)
		w.err = s.store.ForEachOwnedSource(ctx, scim.UserType, s.Name(), func(id string, rec []byte) error {
			u, err := uuid.Parse(id)
			if err != nil || u.String() != id {
				w.other = append(w.other, id)
				return nil
			}
			// A record of pass.record: a digest, no manager reference (a NUL, no display).
			su := storedUser{id: u, ok: len(rec) == 17 && rec[16] == 0}
			copy(su.rec[:], rec)
			w.users = append(w.users, su)
			return nil
		})
	}()
	return w
}

// wait waits for the read to end (stop ends it early) and returns its error.
func (w *storedUsers) wait() error {
	<-w.done
	w.cancel()
	return w.err
}

// stop ends the read when its users are not needed.
func (w *storedUsers) stop() {
	w.cancel()
	<-w.done
}

// readChanged calls fn with each changed row (indexes in file order): read by its offset when
// they are few, else in one more read of the file. Either way a row that is no longer the one
// the check read fails the pass.
func (p *pass) readChanged(ctx context.Context, r io.ReadSeeker, changed []int32, fn func(int32, hrcsv.Row) error) error {
	at := func(i int32) (int64, int) { return p.rows[i].off, int(p.rows[i].line) }
	return readRows(ctx, r, p.s.cfg, p.rep, len(p.rows), changed, at, func(i int32, row hrcsv.Row) error {
		if row.Digest != p.rows[i].digest {
			return fmt.Errorf("the file changed since it was checked: line %d", row.Line)
		}
		return fn(i, row)
	})
}

// readRows calls fn with the rows want (indexes in file order, of a file of n rows whose
// offsets and lines at returns): read by their offsets when they are few, else in one more
// read of the file. fn checks that each is still the row the check read.
func readRows(ctx context.Context, r io.ReadSeeker, c hrcsv.Config, rep *hrcsv.Report, n int, want []int32,
	at func(int32) (int64, int), fn func(int32, hrcsv.Row) error) error {
	if len(want) == 0 {
		return nil
	}
	if off, _ := at(0); len(want) <= n/16 && off >= 0 {
		rr, err := hrcsv.NewRereader(r, c, rep)
		if err != nil {
			return err
		}
		for k, i := range want {
			if k%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			off, line := at(i)
			row, err := rr.Read(off, line)
			if err != nil {
				return err
			}
			if err := fn(i, row); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var i int32
	next := 0
	return hrcsv.Scan(ctx, r, c, rep, func(row hrcsv.Row) error {
		defer func() { i++ }()
		if next >= len(want) || want[next] != i {
			return nil
		}
		next++
		return fn(i, row)
	})
}
