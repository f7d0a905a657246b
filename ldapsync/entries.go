package ldapsync

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// entries is what a pass keeps of every entry it reads: enough to resolve manager and member
// DNs (and posixGroup memberUids) to references, and to tell which ids were read. At a million
// entries this is most of a pass's own memory, so it is kept compact:
//
//   - one fixed-size record per entry (entryRec, 48 bytes): the id (16 bytes: an entryUUID or
//     objectGUID in binary form), 12-byte keys of its normalized DN and of its first
//     case-folded uid, the offset of its display name in a byte arena, and its type;
//   - the display name once, in an append-only arena of 1 MiB chunks (a length byte and the
//     bytes: ~16 bytes for a typical "First Last");
//   - two open-addressing hash tables (by DN key, by uid key) whose slots hold only a record
//     number (4 bytes); the keys live in the records. They grow by half at a load of 4/5, so
//     they cost 5–7.5 bytes per entry each;
//   - which ids were read is answered by a sorted index of record numbers (4 bytes an entry),
//     built when first asked after a read; a full pass asks only once its read is over, after
//     it has dropped the two tables (dropLookups).
//
// Records and arena grow in chunks, so growing never copies them. During the read a user
// costs about 48 + 16 + 2×6 ≈ 76 bytes, plus a manager check for a user skipped as unchanged
// (mgrCheck, 16 or 24 bytes); TestPassStateBytesPerEntry measures it. The string-keyed maps of
// cache.Refs and the source records loaded up front that this replaced cost about 600.
//
// Keys are the first 12 bytes of SHA-256 of the normalized DN (or case-folded uid). Two of a
// million keys collide with probability about n²/2^97 ≈ 2^-57 a pass (2^-31 for a pass a
// minute for a century); a collision would make one DN resolve to the wrong entry. An id that
// is not a canonical lowercase UUID (neither entryUUID nor objectGUID: other servers) is kept
// as the first 16 bytes of its SHA-256 (2^-89 at a million), with its text in the arena after
// the display name.
type entries struct {
	recs  chunked[entryRec]
	names arena
	byDN  table // record numbers by entryRec.dn
	byUID table // by entryRec.uid
	// moreUIDs holds the second and further uids of users that have several (rare).
	moreUIDs map[key12]uint32
	// sorted holds every record number in id order once built; sortedN is how many records
	// there were then.
	sorted  []uint32
	sortedN uint32
}

// key12 is the key of a DN or uid.
type key12 [12]byte

type entryRec struct {
	id    [16]byte
	dn    key12
	uid   key12  // zero when the entry has no uid
	name  uint32 // arena offset of the display name (then the raw id, if recRawID)
	flags uint8
}

const (
	recGroup uint8 = 1 << iota // a Group (else a User)
	recRawID                   // id is not a UUID: rec.id is its hash, the text follows the name
)

// key16 returns the first 16 bytes of SHA-256 of s.
func key16(s string) [16]byte {
	h := sha256.Sum256([]byte(s))
	return [16]byte(h[:16])
}

// keySeeds seed keyOf's hashes, once per process: keys never leave the process (pass state).
var keySeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// keyOf is the 12-byte key of s: two seeded 64-bit hashes (hash/maphash), 96 bits of them. A
// full pass keys every entry's DN and every member DN of every group (two million at 1M users
// with an all-staff group): 72 ns a DN with its lower-casing, against 199 ns with SHA-256 (a
// micro-benchmark of a 46-byte DN).
func keyOf(s string) key12 {
	var k key12
	binary.LittleEndian.PutUint64(k[:8], maphash.String(keySeeds[0], s))
	binary.LittleEndian.PutUint32(k[8:], uint32(maphash.String(keySeeds[1], s)))
	return k
}

// dnKey is the key of a DN: its normalized form's hash.
func dnKey(d string) key12 { return keyOf(dn.Normalize(d)) }

// uidKey is the key of a uid: memberUid matches case-insensitively.
func uidKey(u string) key12 { return keyOf(strings.ToLower(u)) }

// idKey returns the 16-byte form of an id: the UUID's bytes if it is a canonical lowercase
// UUID (as idOf returns them), else its hash (raw true).
func idKey(id string) (k [16]byte, raw bool) {
	if len(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-' {
		var h [32]byte
		n := 0
		for i := 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				continue
			}
			c := id[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return key16(id), true
			}
			h[n] = c
			n++
		}
		if _, err := hex.Decode(k[:], h[:]); err == nil {
			return k, false
		}
	}
	return key16(id), true
}

func uuidString(k [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], k[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], k[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], k[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], k[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], k[10:16])
	return string(b[:])
}

// add records an entry read in this pass and returns its record number. A DN or uid read
// again finds the newest record, as assigning to a map did.
func (es *entries) add(ref cache.Ref, dnk key12, uids []string) uint32 {
	var r entryRec
	r.dn = dnk
	var raw bool
	r.id, raw = idKey(ref.ID)
	if ref.Type == scim.GroupType {
		r.flags |= recGroup
	}
	var extra string
	if raw {
		r.flags |= recRawID
		extra = ref.ID
	}
	r.name = es.names.add(ref.Display, extra, raw)
	if len(uids) > 0 {
		r.uid = uidKey(uids[0])
	}
	n := es.recs.add(r)
	es.byDN.put(n, es.dnOf)
	if len(uids) > 0 {
		es.byUID.put(n, es.uidOf)
		for _, u := range uids[1:] {
			if es.moreUIDs == nil {
				es.moreUIDs = map[key12]uint32{}
			}
			es.moreUIDs[uidKey(u)] = n
		}
	}
	return n
}

func (es *entries) dnOf(n uint32) *key12  { return &es.recs.at(n).dn }
func (es *entries) uidOf(n uint32) *key12 { return &es.recs.at(n).uid }

// ref rebuilds the reference of record n.
func (es *entries) ref(n uint32) cache.Ref {
	r := es.recs.at(n)
	ref := cache.Ref{Type: scim.UserType}
	if r.flags&recGroup != 0 {
		ref.Type = scim.GroupType
	}
	var raw string
	ref.Display, raw = es.names.get(r.name, r.flags&recRawID != 0)
	if r.flags&recRawID != 0 {
		ref.ID = raw
	} else {
		ref.ID = uuidString(r.id)
	}
	return ref
}

// lookupDN returns the number of the record read with the DN of key k.
func (es *entries) lookupDN(k key12) (uint32, bool) { return es.byDN.get(&k, es.dnOf) }

// byDNKey returns the entry read with the DN of key k.
func (es *entries) byDNKey(k key12) (cache.Ref, bool) {
	n, ok := es.lookupDN(k)
	if !ok {
		return cache.Ref{}, false
	}
	return es.ref(n), true
}

// byUIDValue returns the user read with uid u (case-insensitively), the newest if several.
func (es *entries) byUIDValue(u string) (cache.Ref, bool) {
	k := uidKey(u)
	n, ok := es.byUID.get(&k, es.uidOf)
	if m, ok2 := es.moreUIDs[k]; ok2 && (!ok || m > n) {
		n, ok = m, true
	}
	if !ok {
		return cache.Ref{}, false
	}
	return es.ref(n), true
}

// dropLookups frees the DN and uid tables once no reference is resolved any more.
func (es *entries) dropLookups() {
	es.byDN, es.byUID, es.moreUIDs = table{}, table{}, nil
}

// read reports whether an entry with this id was read.
func (es *entries) read(id string) bool {
	if es.sortedN != es.recs.n {
		es.sorted = slices.Grow(es.sorted[:0], int(es.recs.n))
		for i := uint32(0); i < es.recs.n; i++ {
			es.sorted = append(es.sorted, i)
		}
		slices.SortFunc(es.sorted, func(a, b uint32) int {
			return bytes.Compare(es.recs.at(a).id[:], es.recs.at(b).id[:])
		})
		es.sortedN = es.recs.n
	}
	k, _ := idKey(id)
	_, ok := slices.BinarySearchFunc(es.sorted, k, func(n uint32, k [16]byte) int {
		return bytes.Compare(es.recs.at(n).id[:], k[:])
	})
	return ok
}

// chunked is an append-only slice in fixed chunks: growing never copies, and at most one
// chunk is partly empty.
type chunked[T any] struct {
	c [][]T
	n uint32
}

const chunkBits = 14 // 16,384 records a chunk

func (c *chunked[T]) add(v T) uint32 {
	i := c.n
	if int(i>>chunkBits) == len(c.c) {
		c.c = append(c.c, make([]T, 0, 1<<chunkBits))
	}
	c.c[i>>chunkBits] = append(c.c[i>>chunkBits], v)
	c.n++
	return i
}

func (c *chunked[T]) at(i uint32) *T { return &c.c[i>>chunkBits][i&(1<<chunkBits-1)] }

// arena holds strings back to back in 1 MiB chunks; an offset is the chunk number (high 12
// bits) and the position in it (low 20 bits). A string longer than a chunk gets a chunk of
// its own.
type arena struct {
	c [][]byte
}

const arenaBits = 20

func (a *arena) add(s, extra string, withExtra bool) uint32 {
	need := binary.MaxVarintLen32 + len(s)
	if withExtra {
		need += binary.MaxVarintLen32 + len(extra)
	}
	last := len(a.c) - 1
	if last < 0 || len(a.c[last])+need > cap(a.c[last]) || len(a.c[last]) >= 1<<arenaBits {
		a.c = append(a.c, make([]byte, 0, max(need, 1<<arenaBits)))
		last++
	}
	b := a.c[last]
	off := uint32(last)<<arenaBits | uint32(len(b))
	b = binary.AppendUvarint(b, uint64(len(s)))
	b = append(b, s...)
	if withExtra {
		b = binary.AppendUvarint(b, uint64(len(extra)))
		b = append(b, extra...)
	}
	a.c[last] = b
	return off
}

func (a *arena) get(off uint32, withExtra bool) (s, extra string) {
	b := a.c[off>>arenaBits][off&(1<<arenaBits-1):]
	n, w := binary.Uvarint(b)
	s = string(b[w : w+int(n)])
	if withExtra {
		b = b[w+int(n):]
		n, w = binary.Uvarint(b)
		extra = string(b[w : w+int(n)])
	}
	return s, extra
}

// table is an open-addressing hash set of record numbers (stored +1; 0 is empty) with linear
// probing; the keys are in the records, which keyOf returns. Keys are SHA-256 prefixes, so
// their first 8 bytes are a uniform hash; a slot is picked by multiplying it with the table's
// size, which need not be a power of two.
type table struct {
	slots []uint32
	n     int
}

func (t *table) home(k *key12) int {
	hi, _ := bits.Mul64(binary.LittleEndian.Uint64(k[:8]), uint64(len(t.slots)))
	return int(hi)
}

func (t *table) get(k *key12, keyOf func(uint32) *key12) (uint32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	for i := t.home(k); ; {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if *keyOf(s - 1) == *k {
			return s - 1, true
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// put makes the record n the one its key finds.
func (t *table) put(n uint32, keyOf func(uint32) *key12) {
	if (t.n+1)*5 > len(t.slots)*4 {
		t.grow(keyOf)
	}
	k := keyOf(n)
	for i := t.home(k); ; {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = n + 1
			t.n++
			return
		}
		if *keyOf(s - 1) == *k {
			t.slots[i] = n + 1
			return
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

func (t *table) grow(keyOf func(uint32) *key12) {
	old := t.slots
	t.slots = make([]uint32, max(1024, len(old)+len(old)/2))
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := t.home(keyOf(s - 1))
		for t.slots[i] != 0 {
			if i++; i == len(t.slots) {
				i = 0
			}
		}
		t.slots[i] = s
	}
}
