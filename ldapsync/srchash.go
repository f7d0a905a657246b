package ldapsync

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"hash/maphash"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// Source records let a full pass skip the users that did not change without normalizing them:
// most of a steady-state full pass would otherwise go into turning unchanged entries into
// resources only for the cache to find the same content hash.
//
// A user's resource is a function of its entry and of what its manager DN resolves to. The
// source record (cache.Batch.SourceHashes, stored in the resource's transaction) holds both: a
// digest of the entry as read (settings fingerprint, DN, every attribute the pass reads) and the
// manager reference it resolved to. An entry with the same digest is unchanged if its manager
// DN still resolves to the same reference, which the pass checks once the read is complete.

// encodeSrc returns the stored source record of a user with this digest and manager.
func encodeSrc(digest [16]byte, mgr cache.Ref) []byte {
	return ingest.SourceRecord{Digest: digest, Manager: cache.Ref{ID: mgr.ID, Display: mgr.Display}}.Encode()
}

// decodeSrc decodes a stored source record.
func decodeSrc(b []byte) (ingest.SourceRecord, bool) { return ingest.DecodeSource(b) }

// digest hashes an entry as read. Attribute order is the request order, so it is stable.
func (p *pass) digest(entryDN string, e attrGetter) [16]byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put([]byte(p.s.fingerprint()))
	put([]byte(entryDN))
	for _, a := range p.s.userAttrs() {
		vs := e.Get(a)
		binary.BigEndian.PutUint64(n[:], uint64(len(vs)))
		h.Write(n[:])
		for _, v := range vs {
			put(v)
		}
	}
	var sum [32]byte
	return [16]byte(h.Sum(sum[:0]))
}

// A full pass loads every stored source record before it reads, in one walk of the cache,
// into srcTable: 32 bytes a user (srcEntry), sorted by a 64-bit hash of the id, about 0.3 µs a
// record, where a read per entry cost 3-5 µs (ten times the walk: 3-5 s of CPU at 1M users).
// Records written while the pass reads are not in it; they are this pass's own (each entry is
// read once) or an approval's, which changes only the manager reference, and the manager check
// below compares that with what the manager DN resolves to at the end of the read.
type srcEntry struct {
	id     uint64   // idHash of the id
	digest [16]byte // the stored digest of the entry
	mgr    [8]byte  // refHash of the stored manager reference; zero: none
}

type srcTable []srcEntry

// loadSources reads every stored source record into p.srcs; users is a capacity hint.
func (p *pass) loadSources(ctx context.Context, users int) error {
	t := make(srcTable, 0, users)
	err := p.s.store.ForEachSourceRecord(ctx, func(id, rec []byte) error {
		if e, ok := p.srcEntryOf(id, rec); ok {
			t = append(t, e)
		} // else compared with nothing: the entry is normalized and compared by content
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(t, func(a, b srcEntry) int { return cmp.Compare(a.id, b.id) })
	p.srcs = t
	return nil
}

// srcEntryOf returns the table entry of a stored source record, false if it does not decode.
func (p *pass) srcEntryOf(id, rec []byte) (srcEntry, bool) {
	r, ok := decodeSrc(rec)
	if !ok {
		return srcEntry{}, false
	}
	e := srcEntry{id: p.idHash(id), digest: r.Digest}
	if r.Manager.ID != "" {
		e.mgr = p.refHash(r.Manager)
	}
	return e, true
}

// find returns the stored entry of id whose digest is digest. Two ids may share a hash (2^-64
// a pair): every entry with it is tried, and only a matching digest, which covers the entry's
// DN, counts.
func (t srcTable) find(id uint64, digest [16]byte) (srcEntry, bool) {
	i, _ := slices.BinarySearchFunc(t, id, func(e srcEntry, id uint64) int { return cmp.Compare(e.id, id) })
	for ; i < len(t) && t[i].id == id; i++ {
		if t[i].digest == digest {
			return t[i], true
		}
	}
	return srcEntry{}, false
}

func (p *pass) idHash(id []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(p.mgrSeed)
	h.Write(id)
	return h.Sum64()
}

// A skipped user whose manager reference is confirmed after the read is kept in 16 or 24
// bytes: its record, its manager's and a 64-bit hash of the stored reference's id and display.
// The manager is its record when it was read already (mgrCheck: at the end the check looks
// up that record's DN again, in case a later entry took it over), else the key of its DN
// (mgrCheckDN; zero: no manager DN). A hash collision (2^-64 a check) would miss one changed
// manager display until the user's entry changes.
type mgrCheck struct {
	rec, mgr uint32
	want     [8]byte
}

type mgrCheckDN struct {
	rec  uint32
	mgr  key12
	want [8]byte
}

func (p *pass) refHash(ref cache.Ref) [8]byte {
	var h maphash.Hash
	h.SetSeed(p.mgrSeed)
	h.WriteString(ref.ID)
	h.WriteByte(0)
	h.WriteString(ref.Display)
	var out [8]byte
	binary.LittleEndian.PutUint64(out[:], h.Sum64())
	return out
}

// unchanged reports whether a user read in a full pass has the entry it was last stored from
// (p.srcs), and if so records it as read without normalizing it.
func (p *pass) unchanged(id, entryDN string, e attrGetter, digest [16]byte) bool {
	stored, ok := p.srcs.find(p.idHash([]byte(id)), digest)
	if !ok {
		return false
	}
	n := p.remember(cache.Ref{ID: id, Type: scim.UserType, Display: p.s.users.display(e)}, entryDN, e)
	p.sum.Unchanged++
	if mgrDN := p.s.users.managerDN(e); mgrDN != "" || stored.mgr != ([8]byte{}) {
		want := stored.mgr
		if want == ([8]byte{}) {
			want = p.refHash(cache.Ref{})
		}
		var k key12
		if mgrDN != "" {
			k = dnKey(mgrDN)
			if m, ok := p.ents.lookupDN(k); ok {
				p.mgrChecks.add(mgrCheck{rec: n, mgr: m, want: want})
				return true
			}
		}
		p.mgrChecksDN.add(mgrCheckDN{rec: n, mgr: k, want: want})
	}
	return true
}

// staleManagers returns the skipped users whose manager DN no longer resolves to the stored
// reference, with the reference it resolves to now and their stored digest. Call it when the
// read is complete.
func (p *pass) staleManagers(ctx context.Context) ([]recheck, error) {
	var stale []recheck
	check := func(rec uint32, mgr key12, want [8]byte) {
		var got cache.Ref
		if mgr != (key12{}) {
			got, _ = p.ents.byDNKey(mgr)
		}
		if p.refHash(got) != want {
			stale = append(stale, recheck{id: p.ents.ref(rec).ID, typ: scim.UserType, mgr: &got})
		}
	}
	for i := uint32(0); i < p.mgrChecks.n; i++ {
		c := p.mgrChecks.at(i)
		check(c.rec, p.ents.recs.at(c.mgr).dn, c.want)
	}
	for i := uint32(0); i < p.mgrChecksDN.n; i++ {
		c := p.mgrChecksDN.at(i)
		check(c.rec, c.mgr, c.want)
	}
	p.mgrChecks, p.mgrChecksDN = chunked[mgrCheck]{}, chunked[mgrCheckDN]{}
	if len(stale) == 0 {
		return nil, nil
	}
	ids := make([]string, len(stale))
	for i, rc := range stale {
		ids[i] = rc.id
	}
	srcs, err := p.s.store.SourceHashes(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range stale {
		// The user was skipped as unchanged: its digest is the stored one.
		rec, _ := decodeSrc(srcs[stale[i].id])
		stale[i].digest = rec.Digest
	}
	return stale, nil
}

// managerDN returns the entry's manager DN, or "".
func (m *mapping) managerDN(e attrGetter) string {
	for i := range m.fields {
		if f := &m.fields[i]; f.Schema != "" && f.Attr == "manager" {
			if v := first(e, f.sources); len(v) > 0 {
				return str(v[0])
			}
		}
	}
	return ""
}

// display returns what a resource built from e shows as its display name: displayName, else
// userName (as displayOf does for a resource).
func (m *mapping) display(e attrGetter) string {
	for _, name := range []string{"displayName", "userName"} {
		if f := m.find(name, ""); f != nil {
			if v := first(e, f.sources); len(v) > 0 {
				if s := str(v[0]); s != "" {
					return s
				}
			}
		}
	}
	return ""
}
