package hrsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/scim"
)

// An enrich pass learns the file in the read that checks it (hrcsv.CheckRows), keeping an
// enrichState of each row: the digest of the Set the row would store on its user
// (cache.SetDigest), worked out with today's dates. Then streaming walks of the cache decide
// every row without reading the file again:
//   - the owner keys (cache.Store.ForEachOwner): the users other sources own, never joined;
//   - the join index (cache.Store.ForEachIndexed): which directory user each row joins, if
//     exactly one (a row that joins none is unjoined, one that joins several, or a user an
//     earlier row joins, is ambiguous);
//   - the overlays (cache.Store.ForEachOverlayDigest): a row whose user's overlay of this
//     source has its key and its Set digest is unchanged; an overlay of this source whose user
//     no row joins is gone.
//
// Only the rows left (changed, or joined anew), and the first unjoined and ambiguous rows the
// summary names, are read again (by offset, or in one more read when many), and only their
// users looked up and loaded. A re-import of a file with k changed rows costs one read of the
// file, the walks, and O(k) cache work. Users are compared by a 64-bit hash of their id
// (maphash, seeded per pass); a changed row's user is looked up again by the row's key.
//
// Memory: 40 bytes per row (enrichState), 8 per owned user, joined row and stored overlay
// (sorted id hashes), beside hrcsv.CheckRows's 24 bytes per row; with join = "userName", a
// map entry for each row whose key is not in lower case. When more than one row in 16 is read
// again (a first import), their users' ids, found in one more walk of the join index, take
// 12 bytes and the id's (36 for a UUID) per such row, instead of a lookup of each user by key.

// enrichState is what an enrich pass keeps of a row between the check and the walks.
type enrichState struct {
	set  [16]byte // cache.SetDigest of the row's Set (Source.enrichSet)
	off  int64    // hrcsv.Row.Offset
	user uint64   // the hash of the id of the user the row joins, when join is joinOne
	line int32
	join uint8 // joinNone, joinOne or joinAmbiguous
	// flags: rowEmpty (the row sets nothing), rowSame (its user's overlay is the row's).
	flags uint8
}

// The values of enrichState.join.
const (
	joinNone uint8 = iota
	joinOne
	joinAmbiguous
)

// The bits of enrichState.flags.
const (
	rowEmpty uint8 = 1 << iota
	rowSame
)

// enrichCollector is CheckRows's callback of an enrich pass: it fills the rows' states.
type enrichCollector struct {
	s     *Source
	today time.Time
	rows  []enrichState
	// folded, for a join on userName (which the index folds to lower case), lists the rows
	// whose key is not in lower case by the digest of the folded key.
	folded map[[16]byte][]int32
	// slow is set when the states cannot decide the rows: a value of the active column that
	// is no boolean (the row-by-row pass reports it).
	slow bool
}

func newEnrichCollector(s *Source, today time.Time) *enrichCollector {
	return &enrichCollector{s: s, today: today, folded: map[[16]byte][]int32{}}
}

func (c *enrichCollector) add(row hrcsv.Row) error {
	st := enrichState{off: row.Offset, line: int32(min(row.Line, math.MaxInt32))}
	active, err := c.s.activeOf(row, c.today)
	if err != nil {
		c.slow = true
	}
	set := c.s.enrichSet(row, active)
	if len(set) == 0 {
		st.flags |= rowEmpty
	}
	if st.set, err = cache.SetDigest(set); err != nil {
		return err
	}
	if c.s.cfg.Join == "userName" {
		if l := strings.ToLower(row.Key); l != row.Key {
			d := foldedDigest(l)
			c.folded[d] = append(c.folded[d], int32(len(c.rows)))
		}
	}
	c.rows = append(c.rows, st)
	return nil
}

func foldedDigest(key string) [16]byte {
	s := sha256.Sum256([]byte(key))
	return [16]byte(s[:16])
}

// rowsOf returns the rows whose key the join index holds as value, in file order.
func (c *enrichCollector) rowsOf(rep *hrcsv.Report, value []byte, buf []int32) []int32 {
	buf = buf[:0]
	if i, ok := rep.Index(string(value)); ok {
		buf = append(buf, int32(i))
	}
	if len(c.folded) > 0 {
		if more := c.folded[foldedDigest(string(value))]; len(more) > 0 {
			buf = append(buf, more...)
			slices.Sort(buf)
		}
	}
	return buf
}

// runEnrichRows is the pass of an enrich file whose rows c collected while the file was checked.
func (p *pass) runEnrichRows(ctx context.Context, c *enrichCollector, r io.ReadSeeker, wm watermark) error {
	idx, _ := joinIndex(p.s.cfg.Join)
	if err := p.beginEnrich(ctx); err != nil {
		return err
	}
	rows := c.rows
	seed := maphash.MakeSeed()
	// The users other sources own (an HR file's own users, whose externalId is their row's
	// key) are never joined.
	var owned []uint64
	err := p.s.store.ForEachOwner(ctx, scim.UserType, func(id, _ []byte) error {
		owned = append(owned, maphash.Bytes(seed, id))
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(owned)
	// The join: the ids of one value of the index come together.
	var joined []uint64 // the users rows join, sorted below
	var value []byte
	var ids []uint64
	var buf []int32
	settle := func() {
		if len(ids) == 0 {
			return
		}
		buf = c.rowsOf(p.rep, value, buf)
		for k, i := range buf {
			st := &rows[i]
			if len(ids) > 1 || k > 0 {
				st.join = joinAmbiguous // several users, or a user an earlier row joins
				continue
			}
			st.join, st.user = joinOne, ids[0]
			joined = append(joined, ids[0])
		}
	}
	first := true
	err = p.s.store.ForEachIndexed(ctx, idx, func(v, id []byte) error {
		if first || !bytes.Equal(v, value) {
			settle()
			value, ids, first = append(value[:0], v...), ids[:0], false
		}
		h := maphash.Bytes(seed, id)
		if _, own := slices.BinarySearch(owned, h); !own {
			ids = append(ids, h)
		}
		return nil
	})
	if err != nil {
		return err
	}
	settle()
	slices.Sort(joined)
	// The overlays: unchanged rows, and the users no row joins any more.
	var withOverlay []uint64 // the users with an overlay of any source, sorted below
	var gone []string
	enriched := 0
	err = p.s.store.ForEachOverlayDigest(ctx, func(id, source, key string, set [16]byte) error {
		h := maphash.String(seed, id)
		withOverlay = append(withOverlay, h)
		if source != p.s.Name() {
			return nil
		}
		enriched++
		if i, ok := p.rep.Index(key); ok {
			if st := &rows[i]; st.join == joinOne && st.user == h && st.set == set {
				st.flags |= rowSame
				return nil
			}
		}
		if _, ok := slices.BinarySearch(joined, h); !ok {
			gone = append(gone, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	joined = nil
	slices.Sort(withOverlay)
	// What the walks found answers, for the users the rows join, most of the questions the
	// rows' writes would ask the cache with a point read each (a miss, the most costly kind:
	// it consults every table that may hold the key): a user whose id's hash no source's
	// ownership has is the directory's, one whose hash no overlay has has none.
	p.walked, p.seed, p.owned, p.withOverlay = true, seed, owned, withOverlay
	// The rows to read again, in file order.
	var want []int32
	for i := range rows {
		st := &rows[i]
		switch st.join {
		case joinNone:
			p.sum.Unjoined++
			if p.sum.Unjoined <= maxKeys {
				want = append(want, int32(i))
			}
		case joinAmbiguous:
			p.sum.Ambiguous++
			if p.sum.Ambiguous <= maxKeys {
				want = append(want, int32(i))
			}
		default:
			_, has := slices.BinarySearch(withOverlay, st.user)
			if st.flags&rowSame != 0 || (st.flags&rowEmpty != 0 && !has) {
				p.sum.Unchanged++
				continue
			}
			want = append(want, int32(i))
		}
	}
	// Many rows to write (a first import writes every row): their users' ids come from one
	// more walk of the join index instead of a lookup each.
	var known *joinedIDs
	if n := len(want) - min(p.sum.Unjoined, maxKeys) - min(p.sum.Ambiguous, maxKeys); n > len(rows)/16 {
		if known, err = p.walkJoinedIDs(ctx, idx, c, want); err != nil {
			return err
		}
	}
	q := overlayQueue{p: p}
	at := func(i int32) (int64, int) { return rows[i].off, int(rows[i].line) }
	err = readRows(ctx, r, p.s.cfg, p.rep, len(rows), want, at, func(i int32, row hrcsv.Row) error {
		st := &rows[i]
		active, err := p.s.activeOf(row, c.today)
		if err != nil {
			return err
		}
		set := p.s.enrichSet(row, active)
		if d, err := cache.SetDigest(set); err != nil || d != st.set {
			return fmt.Errorf("the file changed since it was checked: line %d", row.Line)
		}
		switch st.join {
		case joinNone:
			p.sum.UnjoinedKeys = append(p.sum.UnjoinedKeys, row.Key)
			return nil
		case joinAmbiguous:
			p.sum.AmbiguousKeys = append(p.sum.AmbiguousKeys, row.Key)
			return nil
		}
		var id string
		if known != nil {
			var ok bool
			if id, ok = known.of(i); !ok {
				return fmt.Errorf("the directory's user of key %q changed during the pass; the next pass joins it", row.Key)
			}
		} else if id, err = p.joinedUser(ctx, idx, row.Key, seed, st.user); err != nil {
			return err
		}
		return q.add(ctx, enrichRow{row: row, id: id, set: set})
	})
	if err == nil {
		err = q.flush(ctx)
	}
	if err != nil {
		return err // an incomplete read reverts nothing (invariant 4)
	}
	return p.endEnrich(ctx, gone, enriched, wm)
}

// joinedIDs are the ids of the users the rows a pass writes join, by the row's place in want.
type joinedIDs struct {
	want  []int32 // the rows, sorted
	at    []idSpan
	arena []byte // the ids, one after the other
}

type idSpan struct {
	off uint32
	n   uint32 // 0: none found
}

func (j *joinedIDs) of(row int32) (string, bool) {
	k, ok := slices.BinarySearch(j.want, row)
	if !ok || j.at[k].n == 0 {
		return "", false
	}
	sp := j.at[k]
	return string(j.arena[sp.off : sp.off+sp.n]), true
}

// walkJoinedIDs walks the join index again, keys only, for the ids of the users the rows of
// want that join one join: the id whose hash the first walk found (and, should another
// source own a user of that hash, that is the directory's), as joinedUser would look each up.
// It costs about the id's bytes per row (36 for a UUID), and spares a lookup of each row's
// user, which is an iterator over every table of the cache.
func (p *pass) walkJoinedIDs(ctx context.Context, idx cache.Index, c *enrichCollector, want []int32) (*joinedIDs, error) {
	j := &joinedIDs{want: want, at: make([]idSpan, len(want))}
	rows := c.rows
	var value []byte
	var buf []int32
	first := true
	err := p.s.store.ForEachIndexed(ctx, idx, func(v, id []byte) error {
		if first || !bytes.Equal(v, value) {
			value, first = append(value[:0], v...), false
			buf = c.rowsOf(p.rep, value, buf)
		}
		if len(buf) == 0 {
			return nil
		}
		h := maphash.Bytes(p.seed, id)
		for _, i := range buf {
			if st := &rows[i]; st.join != joinOne || st.user != h {
				continue
			}
			k, ok := slices.BinarySearch(want, i)
			if !ok || j.at[k].n != 0 {
				continue
			}
			if dir, err := p.isDirectorys(ctx, string(id)); err != nil || !dir {
				return err
			}
			if len(j.arena)+len(id) > math.MaxUint32 {
				return fmt.Errorf("ids of %d joined users: too long", len(want))
			}
			j.at[k] = idSpan{off: uint32(len(j.arena)), n: uint32(len(id))}
			j.arena = append(j.arena, id...)
		}
		return nil
	})
	return j, err
}

// joinedUser returns the id of the directory user with the join value key whose hash the
// walk of the join index found.
func (p *pass) joinedUser(ctx context.Context, idx cache.Index, key string, seed maphash.Seed, h uint64) (string, error) {
	ids, err := p.directoryUsers(ctx, idx, key)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		if maphash.String(seed, id) == h {
			return id, nil
		}
	}
	return "", fmt.Errorf("the directory's user of key %q changed during the pass; the next pass joins it", key)
}
