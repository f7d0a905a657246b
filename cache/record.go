package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim"
)

// The first byte of a stored resource value names its format.
const (
	// formatPlain is a resource whose value holds all of its content (users; groups of caches
	// written before per-member keys, which Open migrates).
	formatPlain = 1
	// formatGroup is a group whose members live in their own keys (members.go); the value
	// holds its attributes and a summary of the member set.
	formatGroup = 2
)

const (
	hashLen        = sha256.Size
	plainHeaderLen = 1 + hashLen + 8 + 8                    // format, hash, created, lastModified
	groupHeaderLen = plainHeaderLen + hashLen + 8 + hashLen // + content hash, member count, member digest
)

// encoded is a resource in its canonical form: the JSON content that is hashed and stored, and
// where each attribute's value sits inside it (for diffs and audit records without re-encoding).
// A group's content leaves its members out; they are summarized by a count and a digest.
type encoded struct {
	res     *scim.Resource
	tb      byte
	content []byte
	// hash is what the ref key stores and meta.version shows: the content hash for users, the
	// version hash (content hash and member digest) for groups.
	hash  [hashLen]byte
	attrs map[string]json.RawMessage // attribute name → its JSON value (a slice of content)
	src   time.Time                  // the source's time of the change (Batch.SourceTimes)
	// Groups only: the members sorted by id without duplicates, and their summary.
	members     []scim.Member
	contentHash [hashLen]byte
	summary     memberSummary
}

// content is the decoded canonical JSON. Its tags match scim.Resource, so the same bytes
// decode into a scim.Resource for Get.
type content struct {
	Type       scim.ResourceType          `json:"type"`
	ExternalID string                     `json:"externalId"`
	DN         string                     `json:"dn"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	Members    []scim.Member              `json:"members"` // formatPlain groups only
}

// encode builds the canonical content of r: {"type","externalId","dn","attributes","members"}
// with attributes in sorted key order and values as encoding/json writes them (a group's
// content stops before "members"). A nil attribute value counts as absent. The content hash
// covers everything but id and meta.
func encode(r *scim.Resource) (*encoded, error) {
	names := make([]string, 0, len(r.Attributes))
	for k, v := range r.Attributes {
		if v != nil {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	buf := make([]byte, 0, 256+128*len(names))
	buf = append(buf, `{"type":`...)
	buf = jsonappend.String(buf, string(r.Type))
	buf = append(buf, `,"externalId":`...)
	buf = jsonappend.String(buf, r.ExternalID)
	buf = append(buf, `,"dn":`...)
	buf = jsonappend.String(buf, r.DN)
	buf = append(buf, `,"attributes":{`...)
	spans := make([][2]int, len(names))
	for i, k := range names {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonappend.String(buf, k)
		buf = append(buf, ':')
		start := len(buf)
		var err error
		if buf, err = jsonappend.Value(buf, r.Attributes[k]); err != nil {
			return nil, fmt.Errorf("%w: %s %s: attribute %q: %v", ErrInvalid, r.Type, r.ID, k, err)
		}
		spans[i] = [2]int{start, len(buf)}
	}
	buf = append(buf, '}')
	tb := typeByte(r.Type)
	if tb != 'G' {
		buf = append(append(buf, `,"members":`...), appendMembers(nil, r.Members)...)
	}
	buf = append(buf, '}')
	e := &encoded{res: r, tb: tb, content: buf, hash: sha256.Sum256(buf),
		attrs: make(map[string]json.RawMessage, len(names))}
	for i, k := range names {
		e.attrs[k] = buf[spans[i][0]:spans[i][1]:spans[i][1]]
	}
	if tb == 'G' {
		members, err := sortedMembers(r.Members)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Type, r.ID, err)
		}
		e.members, e.contentHash = members, e.hash
		e.summary = summarize(members)
		e.hash = versionHash(e.contentHash, e.summary)
	}
	return e, nil
}

// resourceValue is the stored value of a user: header then content.
func resourceValue(e *encoded, created, modified time.Time) []byte {
	v := make([]byte, 0, plainHeaderLen+len(e.content))
	v = append(v, formatPlain)
	v = append(v, e.hash[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(created.UnixNano()))
	v = binary.BigEndian.AppendUint64(v, uint64(modified.UnixNano()))
	return append(v, e.content...)
}

// groupValue is the stored value of a group: header with its member summary, then content.
func groupValue(contentHash [hashLen]byte, sum memberSummary, created, modified time.Time, body []byte) []byte {
	v := make([]byte, 0, groupHeaderLen+len(body))
	v = append(v, formatGroup)
	vh := versionHash(contentHash, sum)
	v = append(v, vh[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(created.UnixNano()))
	v = binary.BigEndian.AppendUint64(v, uint64(modified.UnixNano()))
	v = append(v, contentHash[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(sum.count))
	v = append(v, sum.digest[:]...)
	return append(v, body...)
}

// header is the decoded header of a stored resource value.
type header struct {
	format   byte
	hash     [hashLen]byte // content hash (formatPlain) or version hash (formatGroup)
	created  time.Time
	modified time.Time
	// formatGroup only:
	contentHash [hashLen]byte
	summary     memberSummary
}

func splitHeader(v []byte) (h header, body []byte, err error) {
	if len(v) < plainHeaderLen || (v[0] != formatPlain && v[0] != formatGroup) {
		return h, nil, fmt.Errorf("%w: resource header", ErrCorrupt)
	}
	h.format = v[0]
	copy(h.hash[:], v[1:])
	h.created = time.Unix(0, int64(binary.BigEndian.Uint64(v[1+hashLen:]))).UTC()
	h.modified = time.Unix(0, int64(binary.BigEndian.Uint64(v[1+hashLen+8:]))).UTC()
	if h.format == formatPlain {
		return h, v[plainHeaderLen:], nil
	}
	if len(v) < groupHeaderLen {
		return h, nil, fmt.Errorf("%w: group header", ErrCorrupt)
	}
	rest := v[plainHeaderLen:]
	copy(h.contentHash[:], rest)
	h.summary.count = int64(binary.BigEndian.Uint64(rest[hashLen:]))
	copy(h.summary.digest[:], rest[hashLen+8:])
	return h, v[groupHeaderLen:], nil
}

// stored is a decoded resource value, for updates and deletes. A formatGroup group's Members
// are not part of it.
type stored struct {
	header
	body []byte // the canonical content
	content
}

func decodeStored(v []byte) (*stored, error) {
	h, body, err := splitHeader(v)
	if err != nil {
		return nil, err
	}
	st := &stored{header: h, body: body}
	if err := json.Unmarshal(body, &st.content); err != nil {
		return nil, fmt.Errorf("%w: resource: %v", ErrCorrupt, err)
	}
	return st, nil
}

// decodeResource turns a stored value into the resource Get returns; a formatGroup group's
// Members are left for the caller to read from the member keys.
func decodeResource(id string, v []byte) (*scim.Resource, error) {
	h, body, err := splitHeader(v)
	if err != nil {
		return nil, err
	}
	r := &scim.Resource{}
	if err := decodeContent(body, r); err != nil {
		return nil, fmt.Errorf("%w: resource %s: %v", ErrCorrupt, id, err)
	}
	r.ID = id
	r.Meta = scim.Meta{Created: h.created, LastModified: h.modified, Version: version(h.hash)}
	return r, nil
}

// version is meta.version: the first 128 bits of the content hash in hex.
func version(h [hashLen]byte) string { return hex.EncodeToString(h[:16]) }

// Ref names a resource: its id, type and display name (users: displayName, else userName;
// groups: displayName).
type Ref struct {
	ID      string            `json:"id"`
	Type    scim.ResourceType `json:"type"`
	Display string            `json:"display,omitempty"`
}

// display returns the name a Ref shows for r.
func display(r *scim.Resource) string {
	if d := r.DisplayName(); d != "" || r.Type == scim.GroupType {
		return d
	}
	return r.UserName()
}

// refValue is the value of a ref key: type byte, content hash, display name.
func refValue(tb byte, hash [hashLen]byte, display string) []byte {
	v := make([]byte, 0, 1+hashLen+len(display))
	v = append(v, tb)
	v = append(v, hash[:]...)
	return append(v, display...)
}

type refRecord struct {
	tb      byte
	hash    [hashLen]byte
	display string
}

func decodeRef(v []byte) (refRecord, error) {
	if len(v) < 1+hashLen || typeOf(v[0]) == "" {
		return refRecord{}, fmt.Errorf("%w: ref", ErrCorrupt)
	}
	r := refRecord{tb: v[0], display: string(v[1+hashLen:])}
	copy(r.hash[:], v[1:])
	return r, nil
}

// dnValue is the value of a DN index key: the Ref of the resource holding the DN.
func dnValue(ref Ref) []byte {
	v := make([]byte, 0, 2+len(ref.ID)+len(ref.Display))
	v = append(v, typeByte(ref.Type))
	v = binary.AppendUvarint(v, uint64(len(ref.ID)))
	v = append(v, ref.ID...)
	return append(v, ref.Display...)
}

func decodeDNValue(v []byte) (Ref, error) {
	if len(v) < 2 {
		return Ref{}, fmt.Errorf("%w: dn index", ErrCorrupt)
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || uint64(len(v)-1-k) < n {
		return Ref{}, fmt.Errorf("%w: dn index", ErrCorrupt)
	}
	id := v[1+k : 1+k+int(n)]
	return Ref{ID: string(id), Type: typeOf(v[0]), Display: string(v[1+k+int(n):])}, nil
}
