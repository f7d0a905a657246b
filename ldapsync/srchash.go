package ldapsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/dn"
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

// srcRecord is a decoded source record.
type srcRecord struct {
	digest [16]byte
	mgr    cache.Ref // ID and Display of the manager lookup; empty when it did not resolve
}

func encodeSrc(digest [16]byte, mgr cache.Ref) []byte {
	b := make([]byte, 0, 16+len(mgr.ID)+1+len(mgr.Display))
	b = append(b, digest[:]...)
	b = append(b, mgr.ID...)
	b = append(b, 0)
	return append(b, mgr.Display...)
}

func decodeSrc(b []byte) (srcRecord, bool) {
	if len(b) < 17 {
		return srcRecord{}, false
	}
	var r srcRecord
	copy(r.digest[:], b)
	id, disp, ok := bytes.Cut(b[16:], []byte{0})
	if !ok {
		return srcRecord{}, false
	}
	r.mgr = cache.Ref{ID: string(id), Display: string(disp)}
	if r.mgr.ID != "" {
		r.mgr.Type = scim.UserType
	}
	return r, true
}

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

// loadSources reads the stored source records for a full pass.
func (p *pass) loadSources(ctx context.Context) error {
	p.src = map[string]srcRecord{}
	return p.s.store.ForEachSourceHash(ctx, func(id string, b []byte) error {
		if r, ok := decodeSrc(b); ok {
			p.src[id] = r
		}
		return nil
	})
}

// waitSources waits until the source records are loaded, once; p.src is usable after it.
func (p *pass) waitSources() error {
	if p.srcLoaded == nil {
		return nil
	}
	err := <-p.srcLoaded
	p.srcLoaded = nil
	return err
}

// mgrCheck is a skipped user whose manager reference is confirmed after the read.
type mgrCheck struct {
	id     string
	mgrDN  string
	want   cache.Ref
	digest [16]byte
}

// unchanged reports whether a user read in a full pass has the entry it was last stored from,
// and if so records it as read without normalizing it.
func (p *pass) unchanged(id, entryDN string, e attrGetter, digest [16]byte) bool {
	stored, ok := p.src[id]
	if !ok || stored.digest != digest {
		return false
	}
	p.remember(cache.Ref{ID: id, Type: scim.UserType, Display: p.s.users.display(e)}, entryDN, e)
	if mgrDN := p.s.users.managerDN(e); mgrDN != "" || stored.mgr.ID != "" {
		p.mgrChecks = append(p.mgrChecks, mgrCheck{id: id, mgrDN: mgrDN, want: stored.mgr, digest: digest})
	}
	p.sum.Unchanged++
	return true
}

// staleManagers returns the skipped users whose manager DN no longer resolves to the stored
// reference. Call it when the read is complete.
func (p *pass) staleManagers() []recheck {
	var stale []recheck
	for _, c := range p.mgrChecks {
		var got cache.Ref
		if c.mgrDN != "" {
			got = p.byDN[dn.Normalize(c.mgrDN)]
		}
		if got.ID != c.want.ID || got.Display != c.want.Display {
			stale = append(stale, recheck{id: c.id, typ: scim.UserType, rf: refs{manager: c.mgrDN}, digest: c.digest})
		}
	}
	p.mgrChecks = nil
	return stale
}

// managerDN returns the entry's manager DN, or "".
func (m *mapping) managerDN(e attrGetter) string {
	for i := range m.fields {
		if f := &m.fields[i]; f.schema != "" && f.attr == "manager" {
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
