package ingest

import (
	"bytes"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// SourceRecord is what a source stores beside a user (cache.Batch.SourceHashes, written in the
// resource's transaction) so that a later full pass can skip the user when nothing it is built
// from changed: a digest of the source's record as read (the source decides what goes in it)
// and the manager reference it resolved to, since a user's resource is a function of both.
type SourceRecord struct {
	Digest  [16]byte
	Manager cache.Ref // ID and Display of the manager lookup; empty when it did not resolve
}

// Encode returns the stored form: the digest, the manager's id, a zero byte, its display.
func (r SourceRecord) Encode() []byte {
	b := make([]byte, 0, 16+len(r.Manager.ID)+1+len(r.Manager.Display))
	b = append(b, r.Digest[:]...)
	b = append(b, r.Manager.ID...)
	b = append(b, 0)
	return append(b, r.Manager.Display...)
}

// DecodeSource decodes a stored source record; false if b is none.
func DecodeSource(b []byte) (SourceRecord, bool) {
	if len(b) < 17 {
		return SourceRecord{}, false
	}
	var r SourceRecord
	copy(r.Digest[:], b)
	id, disp, ok := bytes.Cut(b[16:], []byte{0})
	if !ok {
		return SourceRecord{}, false
	}
	r.Manager = cache.Ref{ID: string(id), Display: string(disp)}
	if r.Manager.ID != "" {
		r.Manager.Type = scim.UserType
	}
	return r, true
}

// WithManager returns the stored form of b with its manager replaced by mgr, and whether b
// decoded: a report whose manager changed or went keeps its digest, so the next full pass
// does not see it as stale.
func WithManager(b []byte, mgr cache.Ref) ([]byte, bool) {
	rec, ok := DecodeSource(b)
	if !ok {
		return nil, false
	}
	rec.Manager = cache.Ref{ID: mgr.ID, Display: mgr.Display}
	return rec.Encode(), true
}
