package ldapsync

import (
	"context"
	"crypto/sha256"
	"encoding/binary"

	"hash/maphash"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/ldapwire"
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

// storedSource returns the stored source record of a user read in a full pass, nil if it has
// none. The bulk reader fetches the records of each batch of entries in one transaction before
// the batch is processed (srcBatch); other reads fetch them one at a time. Nothing is loaded up
// front: a pass keeps no source records beyond the batch in hand.
func (p *pass) storedSource(ctx context.Context, id string) ([]byte, error) {
	if b, ok := p.srcBatch[id]; ok {
		return b, nil
	}
	m, err := p.s.store.SourceHashes(ctx, []string{id})
	return m[id], err
}

// fetchSources returns the stored source records of a batch of entries, with a nil value for
// every id that has none.
func (p *pass) fetchSources(ctx context.Context, es []*ldapwire.Entry) (map[string][]byte, error) {
	ids := make([]string, 0, len(es))
	for _, e := range es {
		if id, ok := p.s.idOf(e); ok {
			ids = append(ids, id)
		}
	}
	m, err := p.s.store.SourceHashes(ctx, ids)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = make(map[string][]byte, len(ids))
	}
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			m[id] = nil
		}
	}
	return m, nil
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

// unchanged reports whether a user read in a full pass has the entry it was last stored from,
// and if so records it as read without normalizing it.
func (p *pass) unchanged(ctx context.Context, id, entryDN string, e attrGetter, digest [16]byte) (bool, error) {
	b, err := p.storedSource(ctx, id)
	if err != nil {
		return false, err
	}
	stored, ok := decodeSrc(b)
	if !ok || stored.Digest != digest {
		return false, nil
	}
	n := p.remember(cache.Ref{ID: id, Type: scim.UserType, Display: p.s.users.display(e)}, entryDN, e)
	p.sum.Unchanged++
	if mgrDN := p.s.users.managerDN(e); mgrDN != "" || stored.Manager.ID != "" {
		want := p.refHash(stored.Manager)
		var k key12
		if mgrDN != "" {
			k = dnKey(mgrDN)
			if m, ok := p.ents.lookupDN(k); ok {
				p.mgrChecks.add(mgrCheck{rec: n, mgr: m, want: want})
				return true, nil
			}
		}
		p.mgrChecksDN.add(mgrCheckDN{rec: n, mgr: k, want: want})
	}
	return true, nil
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
