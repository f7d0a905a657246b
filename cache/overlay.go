package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Overlay is what an enriching source (an HR file in enrich mode) keeps beside a directory
// user it joins: the attributes it sets, and the directory's values they replaced, so that the
// directory's passes apply the source's values again over a fresh directory entry, and the
// source can restore the directory's values when its row disappears.
type Overlay struct {
	// Source names the source that wrote the overlay ("csv:NAME"); Key is its row's key.
	Source string `json:"source"`
	Key    string `json:"key"`
	// Set maps a SCIM path (a mapping key) to the value the source sets: a string, or for
	// "active" a bool.
	Set map[string]any `json:"set"`
	// Under maps a path of Set to the directory's value it replaced; a path of Set missing
	// from Under means the directory had no value there.
	Under map[string]any `json:"under,omitempty"`
}

func overlayKey(id string) []byte { return key(kindOverlay, id) }

// writeOverlay stores o for id (nil: deletes it).
func (w *writer) writeOverlay(id string, o *Overlay) error {
	if o == nil {
		return w.del(overlayKey(id))
	}
	v, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("overlay of %s: %w", id, err)
	}
	return w.set(overlayKey(id), v)
}

func decodeOverlay(id string, v []byte) (*Overlay, error) {
	var o Overlay
	if err := json.Unmarshal(v, &o); err != nil {
		return nil, fmt.Errorf("%w: overlay of %s: %v", ErrCorrupt, id, err)
	}
	return &o, nil
}

// Overlays returns the stored overlays of ids (ids without one are absent from the map), from
// one snapshot. Errors: ErrClosed, ErrCorrupt, ctx.Err(). Safe for concurrent use.
func (s *Store) Overlays(ctx context.Context, ids []string) (map[string]*Overlay, error) {
	out := map[string]*Overlay{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, id := range ids {
			v, err := getValue(txn, overlayKey(id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			o, err := decodeOverlay(id, v)
			if err != nil {
				return err
			}
			out[id] = o
		}
		return nil
	})
	return out, err
}

// ForEachOverlay calls fn with every stored overlay of source ("" : of every source), in id
// order, from one snapshot; an error of fn stops the walk and is returned.
func (s *Store) ForEachOverlay(ctx context.Context, source string, fn func(id string, o *Overlay) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{kindOverlay}, nil, false, func(k []byte, item *badger.Item) error {
			id := string(k[1:])
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			o, err := decodeOverlay(id, v)
			if err != nil {
				return err
			}
			if source != "" && o.Source != source {
				return nil
			}
			if err := fn(id, o); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// HasOverlays reports whether any overlay is stored: one seek, so that a directory pass of a
// cache without enriching sources pays nothing for them.
func (s *Store) HasOverlays(ctx context.Context) (bool, error) {
	var found bool
	err := s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues, opts.Prefix = false, []byte{kindOverlay}
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(opts.Prefix)
		found = it.Valid() && bytes.HasPrefix(it.Item().Key(), opts.Prefix)
		return nil
	})
	return found, err
}

// SetDigest is the digest of what an overlay sets (Overlay.Set): equal digests, equal Set. An
// enriching source compares its rows with the stored overlays by it, without decoding them
// (ForEachOverlayDigest).
func SetDigest(set map[string]any) ([16]byte, error) {
	b, err := json.Marshal(set)
	if err != nil {
		return [16]byte{}, fmt.Errorf("overlay set: %w", err)
	}
	return setDigest(b), nil
}

// setDigest is SetDigest of a Set as writeOverlay encodes it (json.Marshal: sorted keys).
func setDigest(raw []byte) [16]byte {
	sum := sha256.Sum256(raw)
	return [16]byte(sum[:16])
}

// overlayHead is the part of a stored overlay ForEachOverlayDigest reads: its Set stays raw.
type overlayHead struct {
	Source string          `json:"source"`
	Key    string          `json:"key"`
	Set    json.RawMessage `json:"set"`
}

// ForEachOverlayDigest calls fn with every stored overlay, in id order, from one snapshot: its
// user's id, its source, its row's key and the SetDigest of its Set, without decoding the maps
// of Set and Under. An enriching source's pass compares a whole file with what it stored in
// this one walk. An error of fn stops the walk and is returned. Errors: ErrClosed, ErrCorrupt,
// ctx.Err(). Safe for concurrent use.
func (s *Store) ForEachOverlayDigest(ctx context.Context, fn func(id, source, key string, set [16]byte) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{kindOverlay}, nil, false, func(k []byte, item *badger.Item) error {
			var h overlayHead
			var set [16]byte
			err := item.Value(func(v []byte) error {
				if !h.parse(v) {
					h = overlayHead{}
					if err := json.Unmarshal(v, &h); err != nil {
						return err
					}
				}
				if len(h.Set) == 0 {
					h.Set = json.RawMessage("null")
				}
				set = setDigest(h.Set)
				return nil
			})
			if err != nil {
				return fmt.Errorf("%w: overlay of %s: %v", ErrCorrupt, k[1:], err)
			}
			if err := fn(string(k[1:]), h.Source, h.Key, set); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
}

// parse reads an overlay as writeOverlay encodes it (json.Marshal of an Overlay: source, key,
// set and under, in that order, compact), in one pass over its bytes without decoding Set; Set
// stays a slice of v. It reports false for anything else, which json.Unmarshal then reads.
func (h *overlayHead) parse(v []byte) bool {
	rest, ok := bytes.CutPrefix(v, []byte(`{"source":`))
	if !ok {
		return false
	}
	if h.Source, rest, ok = jsonString(rest); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"key":`)); !ok {
		return false
	}
	if h.Key, rest, ok = jsonString(rest); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"set":`)); !ok {
		return false
	}
	n := objectEnd(rest)
	if n < 0 {
		return false
	}
	h.Set, rest = rest[:n], rest[n:]
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"under":`)); ok {
		if n = objectEnd(rest); n < 0 {
			return false
		}
		rest = rest[n:]
	}
	return string(rest) == "}"
}

// jsonString reads the JSON string b starts with, and returns it and what follows it.
func jsonString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	escaped := false
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !escaped {
				return string(b[1:i]), b[i+1:], true
			}
			var s string
			if json.Unmarshal(b[:i+1], &s) != nil {
				return "", nil, false
			}
			return s, b[i+1:], true
		}
	}
	return "", nil, false
}

// objectEnd returns the length of the JSON object (or null) b starts with, or -1.
func objectEnd(b []byte) int {
	if bytes.HasPrefix(b, []byte("null")) {
		return 4
	}
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	depth, str := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case str && c == '\\':
			i++
		case str:
			str = c != '"'
		case c == '"':
			str = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}
