package cache

// Batched reads for the SCIM API (scimapi): one Badger transaction per page instead of one per
// resource, an ordered id snapshot for offset paging, and group reads that skip member data.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// IDs returns every id of typ in id order together with the journal head it reflects, read from
// one snapshot: applying the journal records after head to ids gives the current id set.
// Errors: ErrInvalid, ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) IDs(ctx context.Context, typ scim.ResourceType) ([]string, uint64, error) {
	tb, err := checkType(typ)
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	var head uint64
	prefix := resourcePrefix(tb)
	err = s.view(ctx, func(txn *badger.Txn) error {
		n, err := getCounter(txn, countKey(tb))
		if err != nil {
			return err
		}
		if head, err = getCounter(txn, seqKey); err != nil {
			return err
		}
		ids = make([]string, 0, n)
		return scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			ids = append(ids, string(k[len(prefix):]))
			return nil
		})
	})
	return ids, head, err
}

// GetMany returns the resources of typ named by ids that exist, in the order of ids, read from
// one snapshot; ids that do not exist (or belong to another type) are skipped. With
// withMembers false a group's Members stay nil and its member keys are never read, so a
// 1M-member group costs as much as a small one; with withMembers every member is loaded (use
// ForEachMember to stream a big group instead). Errors: ErrInvalid, ErrClosed,
// ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error) {
	tb, err := checkType(typ)
	if err != nil {
		return nil, err
	}
	out := make([]*scim.Resource, 0, len(ids))
	err = s.view(ctx, func(txn *badger.Txn) error {
		for i, id := range ids {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item, err := txn.Get(resourceKey(tb, id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				var r *scim.Resource
				var err error
				if withMembers || tb != 'G' {
					r, err = decodeResource(id, v)
				} else {
					r, err = decodeWithoutMembers(id, v)
				}
				out = append(out, r)
				return err
			})
			if err == nil && withMembers && tb == 'G' {
				out[len(out)-1].Members, err = readMembers(ctx, txn, id)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// decodeWithoutMembers decodes a stored resource up to its "members" key, which encode writes
// last, and stops there: the member array is never scanned.
func decodeWithoutMembers(id string, v []byte) (*scim.Resource, error) {
	h, body, err := splitHeader(v)
	if err != nil {
		return nil, err
	}
	r := &scim.Resource{ID: id, Meta: scim.Meta{Created: h.created, LastModified: h.modified, Version: version(h.hash)}}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := decodeFields(dec, r); err != nil {
		return nil, fmt.Errorf("%w: resource %s: %v", ErrCorrupt, id, err)
	}
	return r, nil
}

func decodeFields(dec *json.Decoder, r *scim.Resource) error {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("not an object (%v)", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var dst any
		switch t {
		case "members":
			return nil
		case "type":
			dst = &r.Type
		case "externalId":
			dst = &r.ExternalID
		case "dn":
			dst = &r.DN
		case "attributes":
			dst = &r.Attributes
		default:
			dst = new(json.RawMessage)
		}
		if err := dec.Decode(dst); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// GroupsOfMany is GroupsOf for several members at once, from one snapshot: the groups that
// list each id as a direct member, sorted by group id. Ids without groups are absent from the
// map. Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) GroupsOfMany(ctx context.Context, memberIDs []string) (map[string][]Ref, error) {
	out := make(map[string][]Ref)
	head := s.head.Load() // before the snapshot: the refs it reads are at least as new
	var fresh map[string]refRecord
	err := s.view(ctx, func(txn *badger.Txn) error {
		names := map[string]refRecord{}
		fresh = map[string]refRecord{}
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		// A prefix lets the iterator skip every table outside the member index; one member (a
		// GET of one user) narrows it to that member's keys.
		opts.Prefix = []byte{kindMember}
		if len(memberIDs) == 1 {
			opts.Prefix = memberPrefix(memberIDs[0])
		}
		it := txn.NewIterator(opts)
		defer it.Close()
		for _, mid := range memberIDs {
			prefix := memberPrefix(mid)
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				gid := string(it.Item().Key()[len(prefix):])
				rec, ok := names[gid]
				if !ok {
					if rec, ok = s.refs.get(head, gid); !ok {
						v, err := getValue(txn, refKey(gid))
						if errors.Is(err, ErrNotFound) {
							continue
						}
						if err != nil {
							return err
						}
						if rec, err = decodeRef(v); err != nil {
							return err
						}
						fresh[gid] = rec
					}
					names[gid] = rec
				}
				out[mid] = append(out[mid], Ref{ID: gid, Type: typeOf(rec.tb), Display: rec.display})
			}
		}
		return ctx.Err()
	})
	if err == nil {
		s.refs.put(head, fresh)
	}
	return out, err
}

// groupRefs keeps the type and display name of the groups GroupsOfMany read lately, so that
// rendering users (each with the groups it is a member of) does not read the same few group
// refs again for every user. It holds the refs of one journal head: every write of a ref ('f'
// key) appends a journal record in the same transaction and moves the head, so a ref read
// from a snapshot taken after head h was read is current as long as the head is h. An entry
// of another head is never returned, and putting refs of a new head drops the old ones.
type groupRefs struct {
	mu   sync.Mutex
	head uint64
	m    map[string]refRecord
}

// maxGroupRefs bounds the entries (a ref is an id, a display name and a hash: about 150 bytes).
const maxGroupRefs = 4096

func (c *groupRefs) get(head uint64, gid string) (refRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head != head {
		return refRecord{}, false
	}
	rec, ok := c.m[gid]
	return rec, ok
}

// put adds refs read after head was read.
func (c *groupRefs) put(head uint64, refs map[string]refRecord) {
	if len(refs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case head < c.head:
		return // a slow reader of an older head: the cache already holds a newer one
	case head > c.head || c.m == nil || len(c.m)+len(refs) > maxGroupRefs:
		c.head, c.m = head, make(map[string]refRecord, len(refs))
	}
	for gid, rec := range refs {
		if len(c.m) >= maxGroupRefs {
			break
		}
		c.m[gid] = rec
	}
}
