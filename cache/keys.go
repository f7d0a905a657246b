package cache

// Key layout.
//
// Every key starts with one byte naming its record kind. Sequence numbers and times are
// fixed-width big-endian, so byte order is numeric order and a prefix scan is ordered. ids are
// non-empty and contain no NUL byte (Apply checks), so a NUL can end an id inside a key.
// A type byte is 'U' (User) or 'G' (Group).
//
//	'c' name                        counter, 8-byte big-endian uint64:
//	                                "seq" = last journal sequence number, "nU"/"nG" = resource counts,
//	                                "ixv" = index layout version (index.go)
//	'r' type id                     resource: format byte, then (format 1, users) 32-byte content
//	                                hash, created and lastModified (8-byte BE unix nanos each),
//	                                canonical JSON content; or (format 2, groups) 32-byte version
//	                                hash, created, lastModified, 32-byte content hash, 8-byte BE
//	                                member count, 32-byte member digest, canonical JSON content
//	                                without members (record.go, members.go)
//	'g' groupID NUL memberID        group → member: type byte then the member's display name. One
//	                                key per member, so a change of k members writes O(k) keys
//	'f' id                          ref: type byte, 32-byte content hash (groups: version hash), display name. Finds an id's
//	                                type, answers "unchanged?" without loading a big group, and
//	                                gives GroupsOf its display names
//	'x' index uvarint(len v) v id   empty; non-unique secondary index (userName, externalId, email,
//	                                displayName, manager); the length prefix makes "v" match exactly
//	'd' normalized DN               Ref of the resource that holds that DN (type byte,
//	                                uvarint(len id), id, display), so ResolveDN is one Get
//	'm' memberID NUL groupID        empty; member → groups index
//	't' type nanos id               empty; lastModified index (nanos: 8-byte BE unix nanos)
//	'j' seq                         JSON JournalRecord
//	'a' id NUL seq                  JSON AuditRecord
//	'w' source                      watermark bytes of a sync source
//	'h' id                          JSON Hold
//	's' id                          source hash: an opaque digest of the directory entry the
//	                                resource came from, set by the sync source (Batch.SourceHashes)
//	'o' id                          owner: type byte, then the name of the source that owns the
//	                                user (Batch.Own); absent for the directory's resources
//	'v' id                          JSON Overlay of a directory user an enriching source (an HR
//	                                file in enrich mode) joins: the attributes it sets and the
//	                                directory's values they replaced (overlay.go, Batch.Overlays)
//	'p' sub target NUL ...          push state per target or webhook (cache/push*.go), sub is:
//	    'c'                         cursor: 8-byte BE journal seq delivered up to
//	    'i' id                      JSON PushState: target id, hash and document last sent
//	    'l' id                      JSON DeadLetter of id (targets: one per resource)
//	    'l' id NUL seq              JSON DeadLetter of journal record seq of id (webhooks: per event)
//	    'e' nanos id                empty; a deletion due at nanos (deactivate_then_delete)
//	    's' groupID                 JSON []string: members of a scope source group last seen
//	    'm' groupID NUL memberID    the member's id at the target: one key per member the
//	                                target's copy of the group holds (pushmembers.go)
//	'q' id NUL target NUL nanos seq JSON PushAudit: one push attempt (8-byte BE nanos, 8-byte seq)
//	'n' sub sink ...                alerts of a chat webhook (alert sink) by name (alerts.go), sub is:
//	    'a' sink NUL seq            JSON StoredAlert, in the order raised (8-byte BE seq)
//	    'o' sink NUL kind NUL target NUL key  8-byte BE seq of the open alert of that condition
//	    'c' sink                    counter: the last seq given out
//	    'n' sink                    counter: how many records the sink holds (its bound)

import (
	"encoding/binary"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

const (
	kindCounter   = 'c'
	kindResource  = 'r'
	kindRef       = 'f'
	kindIndex     = 'x'
	kindDN        = 'd'
	kindMember    = 'm'
	kindGroupMem  = 'g'
	kindModified  = 't'
	kindJournal   = 'j'
	kindAudit     = 'a'
	kindWatermark = 'w'
	kindHold      = 'h'
	kindSource    = 's'
	kindOwner     = 'o'
	kindOverlay   = 'v'
	kindPush      = 'p'
	kindPushAudit = 'q'
	kindAlert     = 'n'
)

var (
	seqKey = []byte{kindCounter, 's', 'e', 'q'}
)

// typeByte returns the key byte of a resource type, or 0 for an unknown type.
func typeByte(t scim.ResourceType) byte {
	switch t {
	case scim.UserType:
		return 'U'
	case scim.GroupType:
		return 'G'
	}
	return 0
}

// typeOf is the inverse of typeByte.
func typeOf(b byte) scim.ResourceType {
	switch b {
	case 'U':
		return scim.UserType
	case 'G':
		return scim.GroupType
	}
	return ""
}

func countKey(tb byte) []byte { return []byte{kindCounter, 'n', tb} }

func key(kind byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 1, n)
	k[0] = kind
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func resourcePrefix(tb byte) []byte { return []byte{kindResource, tb} }

func resourceKey(tb byte, id string) []byte { return append(resourcePrefix(tb), id...) }

func refKey(id string) []byte { return key(kindRef, id) }

func dnKey(normalized string) []byte { return key(kindDN, normalized) }

func watermarkKey(source string) []byte { return key(kindWatermark, source) }

func holdKey(id string) []byte { return key(kindHold, id) }

func sourceKey(id string) []byte { return key(kindSource, id) }

func ownerKey(id string) []byte { return key(kindOwner, id) }

// indexPrefix is the prefix of every key of index byte ib with value v.
func indexPrefix(ib byte, v string) []byte {
	k := make([]byte, 0, 2+binary.MaxVarintLen64+len(v)+40)
	k = append(k, kindIndex, ib)
	k = binary.AppendUvarint(k, uint64(len(v)))
	return append(k, v...)
}

func indexKey(ib byte, v, id string) []byte { return append(indexPrefix(ib, v), id...) }

func memberPrefix(memberID string) []byte { return key(kindMember, memberID, "\x00") }

func memberKey(memberID, groupID string) []byte { return key(kindMember, memberID, "\x00", groupID) }

// groupMemberPrefix is the prefix of every member key of group groupID.
func groupMemberPrefix(groupID string) []byte { return key(kindGroupMem, groupID, "\x00") }

func groupMemberKey(groupID, memberID string) []byte {
	return key(kindGroupMem, groupID, "\x00", memberID)
}

func modifiedPrefix(tb byte) []byte { return []byte{kindModified, tb} }

func modifiedKey(tb byte, t time.Time, id string) []byte {
	k := make([]byte, 0, 10+len(id))
	k = append(k, kindModified, tb)
	k = binary.BigEndian.AppendUint64(k, nanos(t))
	return append(k, id...)
}

// nanos returns t as unix nanoseconds for a key; times before 1970 sort first.
func nanos(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

func journalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindJournal}, seq)
}

func auditPrefix(id string) []byte { return key(kindAudit, id, "\x00") }

func auditKey(id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(auditPrefix(id), seq)
}
