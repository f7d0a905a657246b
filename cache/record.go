package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// recordFormat is the first byte of a stored resource value.
const recordFormat = 1

const (
	hashLen   = sha256.Size
	headerLen = 1 + hashLen + 8 + 8 // format, hash, created, lastModified
)

// encoded is a resource in its canonical form: the JSON content that is hashed and stored, and
// where each attribute's value sits inside it (for diffs and audit records without re-encoding).
type encoded struct {
	res     *scim.Resource
	tb      byte
	content []byte
	hash    [hashLen]byte
	attrs   map[string]json.RawMessage // attribute name → its JSON value (a slice of content)
}

// content is the decoded canonical JSON. Its tags match scim.Resource, so the same bytes
// decode into a scim.Resource for Get.
type content struct {
	Type       scim.ResourceType          `json:"type"`
	ExternalID string                     `json:"externalId"`
	DN         string                     `json:"dn"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	Members    []scim.Member              `json:"members"`
}

// encode builds the canonical content of r: {"type","externalId","dn","attributes","members"}
// with attributes in sorted key order and values as encoding/json writes them. A nil attribute
// value counts as absent. The content hash covers everything but id and meta.
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
	buf = appendString(buf, string(r.Type))
	buf = append(buf, `,"externalId":`...)
	buf = appendString(buf, r.ExternalID)
	buf = append(buf, `,"dn":`...)
	buf = appendString(buf, r.DN)
	buf = append(buf, `,"attributes":{`...)
	spans := make([][2]int, len(names))
	for i, k := range names {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		start := len(buf)
		var err error
		if buf, err = appendValue(buf, r.Attributes[k]); err != nil {
			return nil, fmt.Errorf("%w: %s %s: attribute %q: %v", ErrInvalid, r.Type, r.ID, k, err)
		}
		spans[i] = [2]int{start, len(buf)}
	}
	buf = append(buf, `},"members":`...)
	buf = append(appendMembers(buf, r.Members), '}')
	e := &encoded{res: r, tb: typeByte(r.Type), content: buf, hash: sha256.Sum256(buf),
		attrs: make(map[string]json.RawMessage, len(names))}
	for i, k := range names {
		e.attrs[k] = buf[spans[i][0]:spans[i][1]:spans[i][1]]
	}
	return e, nil
}

// resourceValue is the stored value of a resource: header then content.
func resourceValue(e *encoded, created, modified time.Time) []byte {
	v := make([]byte, 0, headerLen+len(e.content))
	v = append(v, recordFormat)
	v = append(v, e.hash[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(created.UnixNano()))
	v = binary.BigEndian.AppendUint64(v, uint64(modified.UnixNano()))
	return append(v, e.content...)
}

// stored is a decoded resource value, for updates and deletes.
type stored struct {
	hash     [hashLen]byte
	created  time.Time
	modified time.Time
	content
}

func splitHeader(v []byte) (hash [hashLen]byte, created, modified time.Time, body []byte, err error) {
	if len(v) < headerLen || v[0] != recordFormat {
		return hash, created, modified, nil, fmt.Errorf("%w: resource header", ErrCorrupt)
	}
	copy(hash[:], v[1:])
	created = time.Unix(0, int64(binary.BigEndian.Uint64(v[1+hashLen:]))).UTC()
	modified = time.Unix(0, int64(binary.BigEndian.Uint64(v[1+hashLen+8:]))).UTC()
	return hash, created, modified, v[headerLen:], nil
}

func decodeStored(v []byte) (*stored, error) {
	h, c, m, body, err := splitHeader(v)
	if err != nil {
		return nil, err
	}
	st := &stored{hash: h, created: c, modified: m}
	if err := json.Unmarshal(body, &st.content); err != nil {
		return nil, fmt.Errorf("%w: resource: %v", ErrCorrupt, err)
	}
	return st, nil
}

// decodeResource turns a stored value into the resource Get returns.
func decodeResource(id string, v []byte) (*scim.Resource, error) {
	h, c, m, body, err := splitHeader(v)
	if err != nil {
		return nil, err
	}
	r := &scim.Resource{}
	if err := json.Unmarshal(body, r); err != nil {
		return nil, fmt.Errorf("%w: resource %s: %v", ErrCorrupt, id, err)
	}
	r.ID = id
	r.Meta = scim.Meta{Created: c, LastModified: m, Version: version(h)}
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
