package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// scan calls fn for each key with prefix, from seek (or the prefix) on, in key order. With
// keysOnly no values are loaded. The key passed to fn is only valid during the call. ctx is
// checked every 1024 keys.
func scan(ctx context.Context, txn *badger.Txn, prefix, seek []byte, keysOnly bool, fn func(k []byte, item *badger.Item) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = !keysOnly
	it := txn.NewIterator(opts)
	defer it.Close()
	if seek == nil {
		seek = prefix
	}
	n := 0
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		item := it.Item()
		if err := fn(item.Key(), item); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// scanJSON is scan that decodes every value into a T (what names it in ErrCorrupt).
func scanJSON[T any](ctx context.Context, txn *badger.Txn, prefix, seek []byte, what string, fn func(T) error) error {
	return scan(ctx, txn, prefix, seek, false, func(_ []byte, item *badger.Item) error {
		var v T
		if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &v) }); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
		}
		return fn(v)
	})
}

// listJSON returns every value under prefix decoded into a T, in key order, from one snapshot;
// an empty slice when none.
func listJSON[T any](ctx context.Context, s *Store, prefix []byte, what string) ([]T, error) {
	out := []T{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(ctx, txn, prefix, nil, what, func(v T) error {
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

func checkType(typ scim.ResourceType) (byte, error) {
	tb := typeByte(typ)
	if tb == 0 {
		return 0, fmt.Errorf("%w: unknown resource type %q", ErrInvalid, typ)
	}
	return tb, nil
}

// Get returns the resource typ/id with its Meta, a group with all of its members (use
// GetMany without members and ForEachMember to stream a big group). Errors: ErrNotFound, ErrInvalid (unknown
// type), ErrClosed. Safe for concurrent use.
func (s *Store) Get(ctx context.Context, typ scim.ResourceType, id string) (*scim.Resource, error) {
	tb, err := checkType(typ)
	if err != nil {
		return nil, err
	}
	var r *scim.Resource
	err = s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(resourceKey(tb, id))
		if err != nil {
			return err
		}
		err = item.Value(func(v []byte) error {
			r, err = decodeResource(id, v)
			return err
		})
		if err == nil && tb == 'G' {
			r.Members, err = readMembers(ctx, txn, id)
		}
		return err
	})
	return r, err
}

// Lookup returns the ids whose index idx holds value (folded as the index folds it), sorted;
// an empty slice when none. Errors: ErrInvalid (unknown index), ErrClosed. Safe for
// concurrent use.
func (s *Store) Lookup(ctx context.Context, idx Index, value string) ([]string, error) {
	ids := []string{}
	if idx == IndexDN {
		ref, ok, err := s.ResolveDN(ctx, value)
		if ok {
			ids = append(ids, ref.ID)
		}
		return ids, err
	}
	ib := indexByte(idx)
	if ib == 0 {
		return nil, fmt.Errorf("%w: unknown index %q", ErrInvalid, idx)
	}
	prefix := indexPrefix(ib, fold(idx, value))
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			ids = append(ids, string(k[len(prefix):]))
			return nil
		})
	})
	return ids, err
}

// CountIndexed returns, for each of values, how many ids index idx holds it for (up to 2:
// "more than one" is all a caller asking about duplicates needs). One snapshot and one iterator
// serve every value, visited in key order: a batch of a thousand users costs one iterator, not
// a thousand. Errors: ErrInvalid (unknown index or IndexDN), ErrClosed. Safe for concurrent use.
func (s *Store) CountIndexed(ctx context.Context, idx Index, values []string) ([]int, error) {
	ib := indexByte(idx)
	if ib == 0 || idx == IndexDN {
		return nil, fmt.Errorf("%w: index %q cannot be counted", ErrInvalid, idx)
	}
	prefixes := make([][]byte, len(values))
	order := make([]int, len(values))
	for i, v := range values {
		prefixes[i], order[i] = indexPrefix(ib, fold(idx, v)), i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(prefixes[a], prefixes[b]) })
	counts := make([]int, len(values))
	err := s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{kindIndex, ib}
		it := txn.NewIterator(opts)
		defer it.Close()
		for n, i := range order {
			if n%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			for it.Seek(prefixes[i]); it.ValidForPrefix(prefixes[i]) && counts[i] < 2; it.Next() {
				counts[i]++
			}
		}
		return nil
	})
	return counts, err
}

// ResolveDN returns the resource whose DN equals dn (compared in dn.Normalize form), or
// ok == false. Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) ResolveDN(ctx context.Context, dn string) (ref Ref, ok bool, err error) {
	norm := normalizeDN(dn)
	if norm == "" {
		return ref, false, ctx.Err()
	}
	err = s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, dnKey(norm))
		if err != nil {
			return err
		}
		ref, err = decodeDNValue(v)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Ref{}, false, nil
	}
	return ref, err == nil, err
}

// Ref returns the type and display name of the resource with that id without loading it.
// Errors: ErrNotFound, ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) Ref(ctx context.Context, id string) (Ref, error) {
	var ref Ref
	err := s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, refKey(id))
		if err != nil {
			return err
		}
		rec, err := decodeRef(v)
		if err != nil {
			return err
		}
		ref = Ref{ID: id, Type: typeOf(rec.tb), Display: rec.display}
		return nil
	})
	return ref, err
}

// GroupsOf returns the groups that list memberID as a direct member, sorted by id.
// Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) GroupsOf(ctx context.Context, memberID string) ([]Ref, error) {
	refs := []Ref{}
	prefix := memberPrefix(memberID)
	err := s.view(ctx, func(txn *badger.Txn) error {
		var ids []string
		err := scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			ids = append(ids, string(k[len(prefix):]))
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			v, err := getValue(txn, refKey(id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			rec, err := decodeRef(v)
			if err != nil {
				return err
			}
			refs = append(refs, Ref{ID: id, Type: typeOf(rec.tb), Display: rec.display})
		}
		return nil
	})
	return refs, err
}

// Count returns the number of resources of typ. Errors: ErrInvalid, ErrClosed. Safe for
// concurrent use.
func (s *Store) Count(ctx context.Context, typ scim.ResourceType) (int, error) {
	tb, err := checkType(typ)
	if err != nil {
		return 0, err
	}
	var n uint64
	err = s.view(ctx, func(txn *badger.Txn) (err error) {
		n, err = getCounter(txn, countKey(tb))
		return err
	})
	return int(n), err
}

// ForEachID calls fn with every id of typ in id order, without loading any resource, and stops
// at fn's first error, which it returns. Errors: ErrInvalid, ErrClosed, ctx.Err(). Safe for
// concurrent use; fn sees one consistent snapshot.
func (s *Store) ForEachID(ctx context.Context, typ scim.ResourceType, fn func(id string) error) error {
	tb, err := checkType(typ)
	if err != nil {
		return err
	}
	prefix := resourcePrefix(tb)
	return s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			if err := fn(string(k[len(prefix):])); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// Owner returns the source that owns the user with that id (Batch.Own), or "" for one no
// source owns: the directory's. Errors: ErrClosed, ErrCorrupt, ctx.Err().
func (s *Store) Owner(ctx context.Context, id string) (string, error) {
	var owner string
	err := s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, ownerKey(id))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(v) > 0 {
			owner = string(v[1:])
		}
		return nil
	})
	return owner, err
}

// ForEachOwnedSource calls fn with the id and the source hash (Batch.SourceHashes; nil when it
// has none) of every resource of typ that source (not "") owns, in id order: a source's full
// pass compares what it read with what it stored in one ordered walk of the owner and source
// hash keys, instead of one read per id. hash is valid only during fn. It stops at fn's first
// error and returns it. Errors: ErrInvalid, ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) ForEachOwnedSource(ctx context.Context, typ scim.ResourceType, source string, fn func(id string, hash []byte) error) error {
	tb, err := checkType(typ)
	if err != nil {
		return err
	}
	if source == "" {
		return fmt.Errorf("%w: ForEachOwnedSource needs a source", ErrInvalid)
	}
	want := append([]byte{tb}, source...)
	return s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues, opts.Prefix = false, []byte{kindSource}
		hashes := txn.NewIterator(opts)
		defer hashes.Close()
		hashes.Seek(opts.Prefix)
		return scan(ctx, txn, []byte{kindOwner}, nil, false, func(k []byte, item *badger.Item) error {
			mine := false
			if err := item.Value(func(v []byte) error { mine = bytes.Equal(v, want); return nil }); err != nil || !mine {
				return err
			}
			id := k[1:]
			// The source hash keys are in the same id order: step to id, a few keys at a
			// time while the walk is dense (other sources' keys between), else seek.
			for i := 0; hashes.Valid() && bytes.Compare(hashes.Item().Key()[1:], id) < 0; i++ {
				if i == 8 {
					hashes.Seek(sourceKey(string(id)))
					break
				}
				hashes.Next()
			}
			var hash []byte
			if hashes.Valid() && bytes.Equal(hashes.Item().Key()[1:], id) {
				if hash, err = hashes.Item().ValueCopy(nil); err != nil {
					return err
				}
			}
			if err := fn(string(id), hash); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// CountOwned counts the resources of typ that source owns (Batch.Own), or with source "", those
// no source owns (the directory's): what a source's deletion threshold counts against. It reads
// the owner keys only, so it costs O(owned resources), not O(all). Errors: ErrInvalid, ErrClosed.
// Safe for concurrent use.
func (s *Store) CountOwned(ctx context.Context, typ scim.ResourceType, source string) (int, error) {
	tb, err := checkType(typ)
	if err != nil {
		return 0, err
	}
	var total uint64
	owned := 0
	err = s.view(ctx, func(txn *badger.Txn) error {
		if source == "" {
			if total, err = getCounter(txn, countKey(tb)); err != nil {
				return err
			}
		}
		return scan(ctx, txn, []byte{kindOwner}, nil, false, func(_ []byte, item *badger.Item) error {
			return item.Value(func(v []byte) error {
				if len(v) > 0 && v[0] == tb && (source == "" || string(v[1:]) == source) {
					owned++
				}
				return nil
			})
		})
	})
	if err != nil {
		return 0, err
	}
	if source != "" {
		return owned, nil
	}
	return max(int(total)-owned, 0), nil
}

// ForEachOwned calls fn with the id of every resource of typ that source owns (Batch.Own), in
// id order; with source "", of every resource no source owns: the directory's. It stops at
// fn's first error and returns it. Errors: ErrInvalid, ErrClosed, ctx.Err(). Safe for
// concurrent use.
func (s *Store) ForEachOwned(ctx context.Context, typ scim.ResourceType, source string, fn func(id string) error) error {
	tb, err := checkType(typ)
	if err != nil {
		return err
	}
	if source != "" {
		want := append([]byte{tb}, source...)
		return s.view(ctx, func(txn *badger.Txn) error {
			return scan(ctx, txn, []byte{kindOwner}, nil, false, func(k []byte, item *badger.Item) error {
				v, err := item.ValueCopy(nil)
				if err != nil || !bytes.Equal(v, want) {
					return err
				}
				if err := fn(string(k[1:])); err != nil {
					return callbackError{err}
				}
				return nil
			})
		})
	}
	// The directory's: every resource of typ, skipping the owned ids, which a second iterator
	// over the owner keys walks in the same id order (a merge, in constant memory).
	prefix := resourcePrefix(tb)
	return s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues, opts.Prefix = false, []byte{kindOwner}
		owned := txn.NewIterator(opts)
		defer owned.Close()
		owned.Seek(opts.Prefix)
		return scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			id := k[len(prefix):]
			for owned.Valid() && bytes.Compare(owned.Item().Key()[1:], id) < 0 {
				owned.Next()
			}
			if owned.Valid() && bytes.Equal(owned.Item().Key()[1:], id) {
				return nil
			}
			if err := fn(string(id)); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// List returns up to limit resources of typ with ids greater than afterID, in id order
// (limit <= 0: all). Errors: ErrInvalid, ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) List(ctx context.Context, typ scim.ResourceType, afterID string, limit int) ([]*scim.Resource, error) {
	tb, err := checkType(typ)
	if err != nil {
		return nil, err
	}
	prefix := resourcePrefix(tb)
	seek := append(resourceKey(tb, afterID), 0) // the smallest key after afterID
	list := []*scim.Resource{}
	err = s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, seek, false, func(k []byte, item *badger.Item) error {
			id := string(k[len(prefix):])
			err := item.Value(func(v []byte) error {
				r, err := decodeResource(id, v)
				list = append(list, r)
				return err
			})
			if err == nil && tb == 'G' {
				list[len(list)-1].Members, err = readMembers(ctx, txn, id)
			}
			if err == nil && limit > 0 && len(list) >= limit {
				return errStop
			}
			return err
		})
	})
	return list, err
}

// ModifiedSince calls fn with the id of every resource of typ whose meta.lastModified is after
// t, oldest change first, and stops at fn's first error, which it returns. Errors: ErrInvalid,
// ErrClosed, ctx.Err(). Safe for concurrent use.
func (s *Store) ModifiedSince(ctx context.Context, typ scim.ResourceType, t time.Time, fn func(id string) error) error {
	tb, err := checkType(typ)
	if err != nil {
		return err
	}
	prefix := modifiedPrefix(tb)
	seek := binary.BigEndian.AppendUint64(modifiedPrefix(tb), nanos(t)+1)
	return s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, seek, true, func(k []byte, _ *badger.Item) error {
			if err := fn(string(k[len(prefix)+8:])); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// Journal returns up to limit journal records with Seq > afterSeq, in order (limit <= 0: all).
// Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) Journal(ctx context.Context, afterSeq uint64, limit int) ([]JournalRecord, error) {
	recs := []JournalRecord{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(ctx, txn, []byte{kindJournal}, journalKey(afterSeq+1), "journal", func(rec JournalRecord) error {
			recs = append(recs, rec)
			if limit > 0 && len(recs) >= limit {
				return errStop
			}
			return nil
		})
	})
	return recs, err
}

// JournalHead returns the sequence number of the last journal record, 0 when none.
// Errors: ErrClosed. Safe for concurrent use.
func (s *Store) JournalHead(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.db.IsClosed() {
		return 0, ErrClosed
	}
	return s.head.Load(), nil
}

// Audit returns the audit records of id, oldest first; an empty slice when none (the records
// of a deleted resource stay). Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) Audit(ctx context.Context, id string) ([]AuditRecord, error) {
	return listJSON[AuditRecord](ctx, s, auditPrefix(id), "audit")
}

// Watermark returns the watermark stored for source, or nil, nil when none.
// Errors: ErrClosed. Safe for concurrent use.
func (s *Store) Watermark(ctx context.Context, source string) ([]byte, error) {
	var wm []byte
	err := s.view(ctx, func(txn *badger.Txn) (err error) {
		wm, err = getValue(txn, watermarkKey(source))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return wm, err
}

// Stats summarizes the store.
type Stats struct {
	Users, Groups int
	JournalHead   uint64
	Holds         int
}

// Stats returns resource counts, the journal head and the number of held deletions, from one
// snapshot. Errors: ErrClosed. Safe for concurrent use.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.view(ctx, func(txn *badger.Txn) error {
		u, err := getCounter(txn, countKey('U'))
		if err != nil {
			return err
		}
		g, err := getCounter(txn, countKey('G'))
		if err != nil {
			return err
		}
		if st.JournalHead, err = getCounter(txn, seqKey); err != nil {
			return err
		}
		st.Users, st.Groups = int(u), int(g)
		return scan(ctx, txn, []byte{kindHold}, nil, true, func([]byte, *badger.Item) error {
			st.Holds++
			return nil
		})
	})
	return st, err
}

// SourceHashes returns the stored source hashes of ids (see Batch.SourceHashes); ids without
// one are left out. Errors: ErrClosed. Safe for concurrent use.
func (s *Store) SourceHashes(ctx context.Context, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, id := range ids {
			v, err := getValue(txn, sourceKey(id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[id] = v
		}
		return nil
	})
	return out, err
}

// ResolveDNs is ResolveDN for many DNs at once, from one snapshot: refs[i] and ok[i] answer
// dns[i]. A group's member list costs one transaction instead of one per member.
// Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) ResolveDNs(ctx context.Context, dns []string) (refs []Ref, ok []bool, err error) {
	refs, ok = make([]Ref, len(dns)), make([]bool, len(dns))
	err = s.view(ctx, func(txn *badger.Txn) error {
		for i, d := range dns {
			if i%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			norm := normalizeDN(d)
			if norm == "" {
				continue
			}
			item, err := txn.Get(dnKey(norm))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) (err error) {
				refs[i], err = decodeDNValue(v)
				return err
			})
			if err != nil {
				return err
			}
			ok[i] = true
		}
		return nil
	})
	return refs, ok, err
}

// ForEachIndexed calls fn with every value and id index idx holds (as the index folds the
// value), keys only, from one snapshot: ordered by the value's length, then the value, then
// the id, so the ids of one value come together. A pass that joins a whole file with the
// directory walks the index once instead of looking each row up. value and id are valid only
// during fn. It stops at fn's first error and returns it. Errors: ErrInvalid (unknown index or
// IndexDN), ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) ForEachIndexed(ctx context.Context, idx Index, fn func(value, id []byte) error) error {
	ib := indexByte(idx)
	if ib == 0 || idx == IndexDN {
		return fmt.Errorf("%w: index %q cannot be walked", ErrInvalid, idx)
	}
	prefix := []byte{kindIndex, ib}
	return s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, nil, true, func(k []byte, _ *badger.Item) error {
			rest := k[len(prefix):]
			n, w := binary.Uvarint(rest)
			if w <= 0 || uint64(len(rest)-w) < n {
				return fmt.Errorf("%w: index key %q", ErrCorrupt, k)
			}
			if err := fn(rest[w:w+int(n)], rest[w+int(n):]); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// ForEachOwner calls fn with the id of every resource of typ some source owns (Batch.Own) and
// the name of that source, in id order. id and source are valid only during fn. It stops at
// fn's first error and returns it. Errors: ErrInvalid, ErrClosed, ctx.Err(). Safe for
// concurrent use.
func (s *Store) ForEachOwner(ctx context.Context, typ scim.ResourceType, fn func(id, source []byte) error) error {
	tb, err := checkType(typ)
	if err != nil {
		return err
	}
	return s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{kindOwner}, nil, false, func(k []byte, item *badger.Item) error {
			return item.Value(func(v []byte) error {
				if len(v) == 0 || v[0] != tb {
					return nil
				}
				if err := fn(k[1:], v[1:]); err != nil {
					return callbackError{err}
				}
				return nil
			})
		})
	})
}
