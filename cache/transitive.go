package cache

import (
	"context"
	"errors"
	"slices"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Nested groups. The cache stores each group's direct members, as the directory gives them,
// and the member → group index over them. The transitive closure — every group a resource is in
// directly or through groups that are members of other groups — is computed on read from that
// index, so it can never disagree with the direct memberships and needs no upkeep when a group
// changes. Membership cycles (AD allows them) terminate: each group is visited once.

// TransitiveGroupsOf returns every group that memberID belongs to directly or through nested
// groups, sorted by id, read from one snapshot. A group that is (through a cycle) a member of
// itself is included once. Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) TransitiveGroupsOf(ctx context.Context, memberID string) ([]Ref, error) {
	m, err := s.TransitiveGroupsOfMany(ctx, []string{memberID})
	if err != nil {
		return nil, err
	}
	if refs, ok := m[memberID]; ok {
		return refs, nil
	}
	return []Ref{}, nil
}

// TransitiveGroupsOfMany is TransitiveGroupsOf for several members at once, from one snapshot
// (a page of users). Ids without groups are absent from the map. Errors: ErrClosed, ErrCorrupt,
// ctx.Err(). Safe for concurrent use.
func (s *Store) TransitiveGroupsOfMany(ctx context.Context, memberIDs []string) (map[string][]Ref, error) {
	out := make(map[string][]Ref)
	err := s.view(ctx, func(txn *badger.Txn) error {
		w := closureWalker{txn: txn, direct: map[string][]string{}, names: map[string]refRecord{}}
		defer w.close()
		for _, id := range memberIDs {
			refs, err := w.closure(ctx, id)
			if err != nil {
				return err
			}
			if len(refs) > 0 {
				out[id] = refs
			}
		}
		return nil
	})
	return out, err
}

// closureWalker walks the member → group index within one read transaction, remembering the
// direct groups and the names it has already looked up.
type closureWalker struct {
	txn    *badger.Txn
	it     *badger.Iterator
	direct map[string][]string  // member id → group ids
	names  map[string]refRecord // group id → its ref record
}

func (w *closureWalker) close() {
	if w.it != nil {
		w.it.Close()
	}
}

// closure returns the groups reachable from id, breadth first, each once, sorted by id.
func (w *closureWalker) closure(ctx context.Context, id string) ([]Ref, error) {
	seen := map[string]bool{}
	queue := []string{id}
	var refs []Ref
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cur := queue[0]
		queue = queue[1:]
		for _, gid := range w.groupsOf(cur) {
			if seen[gid] {
				continue
			}
			seen[gid] = true
			rec, ok, err := w.name(gid)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // index entry of a group that is gone
			}
			refs = append(refs, Ref{ID: gid, Type: typeOf(rec.tb), Display: rec.display})
			queue = append(queue, gid)
		}
	}
	slices.SortFunc(refs, func(a, b Ref) int { return strings.Compare(a.ID, b.ID) })
	return refs, nil
}

// groupsOf returns the direct groups of id from the member index.
func (w *closureWalker) groupsOf(id string) []string {
	if g, ok := w.direct[id]; ok {
		return g
	}
	if w.it == nil {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{kindMember} // skip tables outside the member index
		w.it = w.txn.NewIterator(opts)
	}
	var groups []string
	prefix := memberPrefix(id)
	for w.it.Seek(prefix); w.it.ValidForPrefix(prefix); w.it.Next() {
		groups = append(groups, string(w.it.Item().Key()[len(prefix):]))
	}
	w.direct[id] = groups
	return groups
}

func (w *closureWalker) name(gid string) (refRecord, bool, error) {
	if rec, ok := w.names[gid]; ok {
		return rec, true, nil
	}
	v, err := getValue(w.txn, refKey(gid))
	if errors.Is(err, ErrNotFound) {
		return refRecord{}, false, nil
	}
	if err != nil {
		return refRecord{}, false, err
	}
	rec, err := decodeRef(v)
	if err != nil {
		return refRecord{}, false, err
	}
	w.names[gid] = rec
	return rec, true, nil
}
