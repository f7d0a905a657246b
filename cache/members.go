package cache

// Group members. A group's members are not part of its value: each member is a key of its own
// ('g' groupID NUL memberID, value: type byte and display name), next to the member → groups
// index ('m' memberID NUL groupID). The group's value carries a member count and an
// order-independent digest of the member set, so
//   - a change of k members writes O(k) keys and a journal record naming those k ids, whatever
//     the group's size, and no value grows with it;
//   - "are the members unchanged?" is answered by comparing digests, without reading the keys;
//   - a group too big for one transaction is written in slices of memberSlice changes, each
//     its own transaction with its own journal record, so every committed slice is a consistent
//     state and re-applying the group after a crash writes only what is still missing.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// defaultMemberSlice is how many member changes one transaction writes at most (each is two
// keys and a few dozen bytes of audit), well under Badger's per-transaction limit.
const defaultMemberSlice = 5000

// memberSummary summarizes a group's member set: how many, and the XOR of every member's
// hash. XOR makes it independent of order and lets a slice of changes update it alone.
type memberSummary struct {
	count  int64
	digest [hashLen]byte
}

func memberHash(m scim.Member) [hashLen]byte {
	var stack [128]byte // most members fit: no allocation per member of a million-member group
	buf := stack[:0]
	buf = append(buf, typeByte(m.Type))
	buf = append(buf, m.Value...)
	buf = append(buf, 0)
	buf = append(buf, m.Display...)
	return sha256.Sum256(buf)
}

func (s *memberSummary) toggle(m scim.Member) {
	h := memberHash(m)
	for i := range s.digest {
		s.digest[i] ^= h[i]
	}
}

func (s *memberSummary) add(m scim.Member)    { s.toggle(m); s.count++ }
func (s *memberSummary) remove(m scim.Member) { s.toggle(m); s.count-- }

func summarize(members []scim.Member) memberSummary {
	var s memberSummary
	for _, m := range members {
		s.add(m)
	}
	return s
}

// versionHash is a group's version: its content hash and its member summary together.
func versionHash(contentHash [hashLen]byte, s memberSummary) [hashLen]byte {
	buf := make([]byte, 0, 2*hashLen+8)
	buf = append(buf, contentHash[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(s.count))
	buf = append(buf, s.digest[:]...)
	return sha256.Sum256(buf)
}

// sortedMembers returns members sorted by id with duplicates dropped (the first one stays),
// without copying when they already are. Errors: ErrInvalid for an empty id, an id with a NUL
// byte, or an unknown member type.
func sortedMembers(members []scim.Member) ([]scim.Member, error) {
	sorted := true
	for i, m := range members {
		if err := validID(m.Value); err != nil {
			return nil, fmt.Errorf("member: %w", err)
		}
		if typeByte(m.Type) == 0 {
			return nil, fmt.Errorf("%w: member %q: unknown type %q", ErrInvalid, m.Value, m.Type)
		}
		if i > 0 && members[i-1].Value >= m.Value {
			sorted = false
		}
	}
	if sorted {
		return members, nil
	}
	out := slices.Clone(members)
	slices.SortStableFunc(out, func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
	return slices.CompactFunc(out, func(a, b scim.Member) bool { return a.Value == b.Value }), nil
}

func memberValue(m scim.Member) []byte {
	v := make([]byte, 0, 1+len(m.Display))
	return append(append(v, typeByte(m.Type)), m.Display...)
}

func decodeMember(id string, v []byte) (scim.Member, error) {
	if len(v) < 1 || typeOf(v[0]) == "" {
		return scim.Member{}, fmt.Errorf("%w: member %s", ErrCorrupt, id)
	}
	return scim.Member{Value: id, Type: typeOf(v[0]), Display: string(v[1:])}, nil
}

// memberPlan is the difference between a group's stored members and the wanted ones.
type memberPlan struct {
	removed []scim.Member    // stored members that go (as stored, for the digest)
	changed [][2]scim.Member // members that stay with another type or display: old, new
	added   []scim.Member
}

func (p *memberPlan) size() int { return len(p.removed) + len(p.changed) + len(p.added) }

// take removes up to n changes from p and returns them: additions first, then changes, then
// removals. A group written in slices thus grows before it shrinks: between two slices a
// member may be in it a little early or leave it a little late, never leave it early, which
// would revoke access that the directory still grants.
func (p *memberPlan) take(n int) memberPlan {
	var part memberPlan
	k := min(n, len(p.added))
	part.added, p.added = p.added[:k:k], p.added[k:]
	n -= k
	k = min(n, len(p.changed))
	part.changed, p.changed = p.changed[:k:k], p.changed[k:]
	n -= k
	k = min(n, len(p.removed))
	part.removed, p.removed = p.removed[:k:k], p.removed[k:]
	return part
}

// planMembers compares want (sorted, unique) with the stored members of gid in snapshot txn,
// in one merge over both sorted lists.
func planMembers(ctx context.Context, txn *badger.Txn, gid string, want []scim.Member) (memberPlan, error) {
	var p memberPlan
	i := 0
	prefix := groupMemberPrefix(gid)
	err := scan(ctx, txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
		id := string(k[len(prefix):])
		for i < len(want) && want[i].Value < id {
			p.added = append(p.added, want[i])
			i++
		}
		return item.Value(func(v []byte) error {
			old, err := decodeMember(id, v)
			if err != nil {
				return err
			}
			if i < len(want) && want[i].Value == id {
				if want[i] != old {
					p.changed = append(p.changed, [2]scim.Member{old, want[i]})
				}
				i++
				return nil
			}
			p.removed = append(p.removed, old)
			return nil
		})
	})
	p.added = append(p.added, want[i:]...)
	return p, err
}

// allMembers returns every stored member of gid whose type byte and display are in the keys,
// as a removal plan.
func allMembers(ctx context.Context, txn *badger.Txn, gid string) (memberPlan, error) {
	return planMembers(ctx, txn, gid, nil)
}

// writeMembers writes one part of a member plan of group gid and updates sum to match.
func (w *writer) writeMembers(gid string, part memberPlan, sum *memberSummary) error {
	for _, m := range part.removed {
		if err := w.del(groupMemberKey(gid, m.Value)); err != nil {
			return err
		}
		if err := w.del(memberKey(m.Value, gid)); err != nil {
			return err
		}
		sum.remove(m)
	}
	for _, c := range part.changed {
		if err := w.set(groupMemberKey(gid, c[1].Value), memberValue(c[1])); err != nil {
			return err
		}
		sum.remove(c[0])
		sum.add(c[1])
	}
	for _, m := range part.added {
		if err := w.set(groupMemberKey(gid, m.Value), memberValue(m)); err != nil {
			return err
		}
		if err := w.set(memberKey(m.Value, gid), nil); err != nil {
			return err
		}
		sum.add(m)
	}
	return nil
}

// memberDiff is the audit diff of one part of a member plan, as AttrChange documents it.
func memberDiff(part memberPlan) []AttrChange {
	var diff []AttrChange
	if len(part.removed)+len(part.added) > 0 {
		diff = append(diff, AttrChange{Path: "members", Old: idsOrNil(memberIDs(part.removed)), New: idsOrNil(memberIDs(part.added))})
	}
	if len(part.changed) > 0 {
		ids := make([]string, len(part.changed))
		for i, c := range part.changed {
			ids[i] = c[1].Value
		}
		diff = append(diff, AttrChange{Path: "members.display", New: ids})
	}
	return diff
}

func memberIDs(ms []scim.Member) []string {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.Value
	}
	return ids
}

// readMembers returns every member of gid from txn, sorted by id; nil when none.
func readMembers(ctx context.Context, txn *badger.Txn, gid string) ([]scim.Member, error) {
	var members []scim.Member
	err := forEachMember(ctx, txn, gid, "", func(m scim.Member) error {
		members = append(members, m)
		return nil
	})
	return members, err
}

func forEachMember(ctx context.Context, txn *badger.Txn, gid, after string, fn func(scim.Member) error) error {
	prefix := groupMemberPrefix(gid)
	var seek []byte
	if after != "" {
		seek = append(groupMemberKey(gid, after), 0)
	}
	return scan(ctx, txn, prefix, seek, false, func(k []byte, item *badger.Item) error {
		return item.Value(func(v []byte) error {
			m, err := decodeMember(string(k[len(prefix):]), v)
			if err != nil {
				return err
			}
			return fn(m)
		})
	})
}

// ForEachMember calls fn with the direct members of group gid whose ids sort after after ("":
// from the first), in id order, from one snapshot, and stops at fn's first error, which it
// returns. Memory stays constant whatever the group's size. A group that does not exist has no
// members. Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) ForEachMember(ctx context.Context, gid, after string, fn func(scim.Member) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		return forEachMember(ctx, txn, gid, after, func(m scim.Member) error {
			if err := fn(m); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// Members returns up to limit direct members of group gid with ids after after, in id order
// (limit <= 0: all). Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) Members(ctx context.Context, gid, after string, limit int) ([]scim.Member, error) {
	out := []scim.Member{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return forEachMember(ctx, txn, gid, after, func(m scim.Member) error {
			out = append(out, m)
			if limit > 0 && len(out) >= limit {
				return errStop
			}
			return nil
		})
	})
	return out, err
}

// IsMember reports whether memberID is a direct member of group gid, with one key read.
// Errors: ErrClosed. Safe for concurrent use.
func (s *Store) IsMember(ctx context.Context, gid, memberID string) (bool, error) {
	err := s.view(ctx, func(txn *badger.Txn) error {
		_, err := txn.Get(groupMemberKey(gid, memberID))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MemberCount returns how many direct members group gid has, from its stored summary.
// Errors: ErrNotFound (no such group), ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) MemberCount(ctx context.Context, gid string) (int, error) {
	var h header
	err := s.view(ctx, func(txn *badger.Txn) (err error) {
		h, err = groupHeader(txn, gid)
		return err
	})
	return int(h.summary.count), err
}

// groupHeader reads the header of stored group gid. Errors: ErrNotFound, ErrCorrupt (not a
// group in the current format).
func groupHeader(txn *badger.Txn, gid string) (header, error) {
	var h header
	item, err := txn.Get(resourceKey('G', gid))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, err
	}
	err = item.Value(func(v []byte) (err error) {
		h, _, err = splitHeader(v)
		return err
	})
	if err == nil && h.format != formatGroup {
		err = fmt.Errorf("%w: group %s in an old format", ErrCorrupt, gid)
	}
	return h, err
}
