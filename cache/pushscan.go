package cache

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// PushRef is the compact part of a PushState: which resource a target holds under which id.
type PushRef struct {
	ID       string
	Type     scim.ResourceType
	TargetID string
}

// ForEachPushRef calls fn with every resource target holds, as far as ldapscim knows, in id
// order, from one snapshot, and stops at fn's first error, which it returns. Only the type and
// the target's id are decoded (not the document last sent), so a scan of a target that holds a
// million resources costs little more than their keys. Reconciliation uses it to map the
// target's ids back to the cache's. Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for
// concurrent use.
func (s *Store) ForEachPushRef(ctx context.Context, target string, fn func(PushRef) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		prefix := pushKey('i', target)
		return scan(ctx, txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
			var ps struct {
				Type     scim.ResourceType `json:"type"`
				TargetID string            `json:"targetId"`
			}
			id := string(k[len(prefix):])
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &ps) }); err != nil {
				return fmt.Errorf("%w: push state %s/%s: %v", ErrCorrupt, target, id, err)
			}
			if err := fn(PushRef{ID: id, Type: ps.Type, TargetID: ps.TargetID}); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}
