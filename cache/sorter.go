package cache

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// kvSorter orders more key-value pairs than memory holds, for a bulk load (load.go): pairs are
// buffered up to limit bytes, sorted, and written to run files in dir; merge then reads every
// run at once and yields each key once, in key order. For a key added more than once the value
// added last wins, as it would in a transaction. There are two buffers: while a full one is
// sorted and written on a goroutine of its own, add fills the other, so the caller (a first
// sync's writer, the busiest stage of its pipeline) does not wait for the disk. Memory is the
// two buffers plus one read buffer per run. Not safe for concurrent use.
type kvSorter struct {
	dir   string
	limit int
	arena []byte    // keys and values of the buffered pairs
	ents  []sortEnt // the buffered pairs, in the order added
	runs  []string  // spilled run files, oldest first
	added int64     // pairs added, for the log
	// spilling, while a spill runs, delivers its outcome (and hands its buffer back).
	spilling   chan spilled
	spareArena []byte
	spareEnts  []sortEnt
}

// spilled is the outcome of a background spill.
type spilled struct {
	path  string
	err   error
	arena []byte
	ents  []sortEnt
}

// sortEnt is one buffered pair: key at arena[off:off+klen], value right after it. prefix is
// the key's first 8 bytes as a big-endian number (zero-padded), so most comparisons of a sort
// need no look into the arena.
type sortEnt struct {
	prefix     uint64
	off        uint32
	klen, vlen uint32
}

func keyPrefix(k []byte) uint64 {
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

func (e sortEnt) key(arena []byte) []byte { return arena[e.off : e.off+e.klen] }
func (e sortEnt) value(arena []byte) []byte {
	return arena[e.off+e.klen : e.off+e.klen+e.vlen]
}

// sortBufferSize is how many bytes of keys and values each of a sorter's two buffers keeps
// before it is written as a run: the bulk load's main memory cost is twice this.
const sortBufferSize = 32 << 20

func newKVSorter(dir string, limit int) *kvSorter {
	return &kvSorter{dir: dir, limit: limit}
}

// add buffers a copy of k and v, writing a run first when the buffer is full.
func (s *kvSorter) add(k, v []byte) error {
	if len(s.arena)+len(k)+len(v) > s.limit && len(s.ents) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	if len(s.arena)+len(k)+len(v) > 1<<31 {
		return fmt.Errorf("%w: a bulk load value of %d bytes", ErrTooBig, len(v))
	}
	if s.arena == nil {
		// The whole buffer at once: growing it by doubling would copy it several times.
		s.arena = make([]byte, 0, s.limit)
		s.ents = make([]sortEnt, 0, s.limit/128)
	}
	off := len(s.arena)
	s.arena = append(s.arena, k...)
	s.arena = append(s.arena, v...)
	s.ents = append(s.ents, sortEnt{prefix: keyPrefix(k), off: uint32(off), klen: uint32(len(k)), vlen: uint32(len(v))})
	s.added++
	return nil
}

// sorted sorts the buffer by key, and equal keys in the order added (by arena offset).
func (s *kvSorter) sorted() { sortEnts(s.arena, s.ents) }

func sortEnts(arena []byte, ents []sortEnt) {
	slices.SortFunc(ents, func(a, b sortEnt) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		if c := bytes.Compare(a.key(arena), b.key(arena)); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
}

// spill hands the full buffer to a goroutine that sorts it and writes it as a run file (the
// last value of each key only), after the previous spill is through, and goes on with the
// other buffer.
func (s *kvSorter) spill() error {
	if err := s.waitSpill(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("cache: bulk load: %v", err)
	}
	path := filepath.Join(s.dir, fmt.Sprintf("run-%06d", len(s.runs)))
	arena, ents := s.arena, s.ents
	done := make(chan spilled, 1)
	s.spilling = done
	go func() {
		err := writeSorted(path, arena, ents)
		done <- spilled{path: path, err: err, arena: arena[:0], ents: ents[:0]}
	}()
	s.arena, s.ents = s.spareArena, s.spareEnts
	s.spareArena, s.spareEnts = nil, nil
	return nil
}

// waitSpill waits for the spill under way, if any, and records its run.
func (s *kvSorter) waitSpill() error {
	if s.spilling == nil {
		return nil
	}
	out := <-s.spilling
	s.spilling = nil
	s.spareArena, s.spareEnts = out.arena, out.ents
	if out.err != nil {
		return out.err
	}
	s.runs = append(s.runs, out.path)
	return nil
}

// writeSorted sorts a buffer and writes it as a run file, the last value of each key only.
func writeSorted(path string, arena []byte, ents []sortEnt) error {
	sortEnts(arena, ents)
	return writeRun(path, func(put func(k, v []byte) error) error {
		for i, e := range ents {
			if i+1 < len(ents) && bytes.Equal(e.key(arena), ents[i+1].key(arena)) {
				continue // a later value of the same key follows
			}
			if err := put(e.key(arena), e.value(arena)); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeRun writes the pairs fill puts, which must come in key order, to a new run file:
// uvarint key length, key, uvarint value length, value.
func writeRun(path string, fill func(put func(k, v []byte) error) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cache: bulk load: %v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [binary.MaxVarintLen64]byte
	err = fill(func(k, v []byte) error {
		w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(k)))])
		w.Write(k)
		w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(v)))])
		_, err := w.Write(v)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: bulk load: writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// merge calls fn with every key once, in key order, with the value added last. base, if set,
// is a run file of pairs that were there before (the store's own keys): any value added to
// the sorter wins over it. k and v are valid only during the call. The buffer is emptied.
func (s *kvSorter) merge(base string, fn func(k, v []byte) error) error {
	if err := s.waitSpill(); err != nil {
		return err
	}
	s.sorted()
	var h mergeHeap
	paths := s.runs
	if base != "" {
		paths = append([]string{base}, paths...)
	}
	// Read buffers of about mergeBuffers bytes in all, between 32 and 256 KB each.
	bufSize := min(max(mergeBuffers/len(paths), 32<<10), 256<<10)
	for prio, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("cache: bulk load: %v", err)
		}
		defer f.Close()
		c := &runCursor{prio: prio, r: bufio.NewReaderSize(f, bufSize), name: filepath.Base(p)}
		if ok, err := c.next(); err != nil {
			return err
		} else if ok {
			h = append(h, c)
		}
	}
	mem := &memCursor{s: s, i: -1, prio: len(paths)}
	if ok, _ := mem.next(); ok {
		h = append(h, mem)
	}
	heap.Init(&h)
	for len(h) > 0 {
		top := h[0]
		if err := fn(top.key(), top.value()); err != nil {
			return err
		}
		// Drop the older values of the same key, then move past the emitted pair.
		for {
			if err := h.advance(0); err != nil {
				return err
			}
			if len(h) == 0 || !bytes.Equal(h[0].key(), top.lastKey()) {
				break
			}
		}
	}
	s.arena, s.ents = s.arena[:0], s.ents[:0]
	return nil
}

// remove deletes the run files.
func (s *kvSorter) remove() {
	_ = s.waitSpill() // a failed spill's file goes with the directory
	for _, p := range s.runs {
		os.Remove(p)
	}
	s.runs = nil
}

// mergeBuffers is about how many bytes of read buffers a merge of the runs uses.
const mergeBuffers = 8 << 20

// cursor is one sorted source of a merge.
type cursor interface {
	key() []byte
	value() []byte
	lastKey() []byte // the key before the last next, for dropping duplicates
	next() (bool, error)
	priority() int
}

type mergeHeap []cursor

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key(), h[j].key()); c != 0 {
		return c < 0
	}
	return h[i].priority() > h[j].priority() // the newest value of a key first
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(cursor)) }
func (h *mergeHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// advance moves cursor i to its next pair, or out of the heap at its end.
func (h *mergeHeap) advance(i int) error {
	ok, err := (*h)[i].next()
	if err != nil {
		return err
	}
	if ok {
		heap.Fix(h, i)
	} else {
		heap.Remove(h, i)
	}
	return nil
}

// runCursor reads a run file.
type runCursor struct {
	prio int
	name string
	r    *bufio.Reader
	k, v []byte
	prev []byte
}

func (c *runCursor) key() []byte     { return c.k }
func (c *runCursor) value() []byte   { return c.v }
func (c *runCursor) lastKey() []byte { return c.prev }
func (c *runCursor) priority() int   { return c.prio }

func (c *runCursor) next() (bool, error) {
	c.prev = append(c.prev[:0], c.k...)
	kl, err := binary.ReadUvarint(c.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cache: bulk load: reading %s: %v", c.name, err)
	}
	if c.k, err = readN(c.r, c.k, kl); err != nil {
		return false, fmt.Errorf("cache: bulk load: reading %s: %v", c.name, err)
	}
	vl, err := binary.ReadUvarint(c.r)
	if err == nil {
		c.v, err = readN(c.r, c.v, vl)
	}
	if err != nil {
		return false, fmt.Errorf("cache: bulk load: reading %s: %v", c.name, err)
	}
	return true, nil
}

func readN(r io.Reader, buf []byte, n uint64) ([]byte, error) {
	if n > 1<<31 {
		return nil, fmt.Errorf("a length of %d", n)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	_, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

// memCursor reads the sorter's sorted buffer, the newest pairs; among equal keys in it the
// last one added is the one it yields last, so merge drops the earlier ones by looking ahead.
type memCursor struct {
	s    *kvSorter
	i    int
	prio int
	prev []byte
}

func (c *memCursor) key() []byte     { return c.s.ents[c.i].key(c.s.arena) }
func (c *memCursor) value() []byte   { return c.s.ents[c.i].value(c.s.arena) }
func (c *memCursor) lastKey() []byte { return c.prev }
func (c *memCursor) priority() int   { return c.prio }

func (c *memCursor) next() (bool, error) {
	if c.i >= 0 {
		c.prev = c.key()
	}
	c.i++
	// Skip to the last of a run of equal keys: the value added last.
	for c.i+1 < len(c.s.ents) && bytes.Equal(c.s.ents[c.i].key(c.s.arena), c.s.ents[c.i+1].key(c.s.arena)) {
		c.i++
	}
	return c.i < len(c.s.ents), nil
}
