package cache

// Member reads for the SCIM API (scimapi): a group and its members streamed from one snapshot
// without a string per member, and one member looked up by id.

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// MemberBytes is one group member as StreamGroup hands it out. ID and Display are only valid
// during the call.
type MemberBytes struct {
	ID      []byte
	Type    scim.ResourceType
	Display []byte
}

// StreamGroup reads group gid and its direct members from one snapshot: head gets the group
// (Members nil, Meta.Version covering the members that follow), then member gets every member
// in id order, so a 1M-member group costs constant memory and no allocation per member. A head
// or member error stops the read and is returned as is. found is false (and nothing is called)
// when there is no such group. Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent
// use.
func (s *Store) StreamGroup(ctx context.Context, gid string, head func(*scim.Resource) error,
	member func(MemberBytes) error) (found bool, err error) {
	err = s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(resourceKey('G', gid))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		var g *scim.Resource
		if err := item.Value(func(v []byte) (err error) {
			g, err = decodeWithoutMembers(gid, v)
			return err
		}); err != nil {
			return err
		}
		if err := head(g); err != nil {
			return callbackError{err}
		}
		return streamMembers(ctx, txn, gid, member)
	})
	return found, err
}

// streamMembers calls fn with every member of gid in txn, in id order. Values stay in Badger's
// buffers (no prefetch copies); fn's errors come back as callbackError.
func streamMembers(ctx context.Context, txn *badger.Txn, gid string, fn func(MemberBytes) error) error {
	prefix := groupMemberPrefix(gid)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	n := 0
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		item := it.Item()
		id := item.Key()[len(prefix):]
		err := item.Value(func(v []byte) error {
			if len(v) < 1 || typeOf(v[0]) == "" {
				return fmt.Errorf("%w: member of group %s", ErrCorrupt, gid)
			}
			if err := fn(MemberBytes{ID: id, Type: typeOf(v[0]), Display: v[1:]}); err != nil {
				return callbackError{err}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Member returns member memberID of group gid with one key read; ok is false when it is not a
// direct member. Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) Member(ctx context.Context, gid, memberID string) (m scim.Member, ok bool, err error) {
	err = s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(groupMemberKey(gid, memberID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) (err error) {
			m, err = decodeMember(memberID, v)
			ok = err == nil
			return err
		})
	})
	return m, ok, err
}
