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
	runs  []*run    // spilled run files, oldest first
	added int64     // pairs added, for the log
	// spilling, while a spill runs, delivers its outcome (and hands its buffer back).
	spilling   chan spilled
	spareArena []byte
	spareEnts  []sortEnt
}

// spilled is the outcome of a background spill.
type spilled struct {
	r     *run
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
		r, err := writeSorted(path, arena, ents)
		done <- spilled{r: r, err: err, arena: arena[:0], ents: ents[:0]}
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
	s.runs = append(s.runs, out.r)
	return nil
}

// writeSorted sorts a buffer and writes it as a run file, the last value of each key only.
func writeSorted(path string, arena []byte, ents []sortEnt) (*run, error) {
	sortEnts(arena, ents)
	return writeRun(path, max(1, int64(len(arena))/runMarks), func(put func(k, v []byte) error) error {
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

// run is a run file with a sparse index: the key and offset of its first pair and of a pair
// every so many bytes after (writeRun), so that a merge of part of the key space starts near
// it and splitKeys can weigh the ranges.
type run struct {
	path  string
	size  int64
	marks []runMark
}

type runMark struct {
	key []byte
	off int64
}

// mergeBuffers is about how many bytes of read buffers a merge of the runs uses.
const mergeBuffers = 8 << 20

// runMarks is about how many marks a run file of a spill gets; the base run gets one every
// runMarkEvery bytes.
const (
	runMarks     = 256
	runMarkEvery = 256 << 10
)

// writeRun writes the pairs fill puts, which must come in key order, to a new run file:
// uvarint key length, key, uvarint value length, value. It marks a pair every markEvery bytes.
func writeRun(path string, markEvery int64, fill func(put func(k, v []byte) error) error) (*run, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: bulk load: %v", err)
	}
	r := &run{path: path}
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [binary.MaxVarintLen64]byte
	next := int64(0) // the offset from which the next pair is marked
	err = fill(func(k, v []byte) error {
		if r.size >= next {
			r.marks = append(r.marks, runMark{key: slices.Clone(k), off: r.size})
			next = r.size + markEvery
		}
		n1 := binary.PutUvarint(hdr[:], uint64(len(k)))
		w.Write(hdr[:n1])
		w.Write(k)
		n2 := binary.PutUvarint(hdr[:], uint64(len(v)))
		w.Write(hdr[:n2])
		_, err := w.Write(v)
		r.size += int64(n1 + len(k) + n2 + len(v))
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("cache: bulk load: writing %s: %w", filepath.Base(path), err)
	}
	return r, nil
}

// splitKeys divides the key space of the runs, base (if not nil) and the buffer into at most
// n ranges of about equal bytes, and returns the keys between them (fewer than n-1 when the
// pairs are too few to divide). The buffer must be sorted.
func (s *kvSorter) splitKeys(base *run, n int) [][]byte {
	type sample struct {
		key []byte
		w   int64 // the bytes from key to the next sample of its source
	}
	var ss []sample
	var total int64
	for _, r := range append(slices.Clip(s.runs), base) {
		if r == nil {
			continue
		}
		for j, m := range r.marks {
			end := r.size
			if j+1 < len(r.marks) {
				end = r.marks[j+1].off
			}
			ss = append(ss, sample{m.key, end - m.off})
			total += end - m.off
		}
	}
	const memSamples = 1024
	step := max(1, len(s.ents)/memSamples)
	for i := 0; i < len(s.ents); i += step {
		var w int64
		for _, e := range s.ents[i:min(i+step, len(s.ents))] {
			w += int64(e.klen + e.vlen)
		}
		ss = append(ss, sample{s.ents[i].key(s.arena), w})
		total += w
	}
	slices.SortFunc(ss, func(a, b sample) int { return bytes.Compare(a.key, b.key) })
	var keys [][]byte
	var sum int64
	for _, x := range ss {
		if len(keys) == n-1 {
			break
		}
		if sum >= total*int64(len(keys)+1)/int64(n) && (len(keys) == 0 || bytes.Compare(x.key, keys[len(keys)-1]) > 0) && sum > 0 {
			keys = append(keys, slices.Clone(x.key))
		}
		sum += x.w
	}
	return keys
}

// merge calls fn with every key once, in key order, with the value added last. base, if set,
// is a run file of pairs that were there before (the store's own keys): any value added to
// the sorter wins over it. k and v are valid only during the call. The buffer is emptied.
func (s *kvSorter) merge(base *run, fn func(k, v []byte) error) error {
	if err := s.waitSpill(); err != nil {
		return err
	}
	s.sorted()
	err := s.mergeRange(base, nil, nil, fn)
	s.arena, s.ents = s.arena[:0], s.ents[:0]
	return err
}

// mergeRange is merge for the keys k with lo <= k < hi (a nil bound is open), on a sorted
// buffer, which it leaves as it is, with no spill under way: merges of disjoint ranges may
// run at once.
func (s *kvSorter) mergeRange(base *run, lo, hi []byte, fn func(k, v []byte) error) error {
	var h mergeHeap
	runs := s.runs
	if base != nil {
		runs = append([]*run{base}, runs...)
	}
	// Read buffers of mergeBuffers bytes in all, between 32 and 256 KB each.
	bufSize := min(max(mergeBuffers/max(len(runs), 1), 32<<10), 256<<10)
	for prio, r := range runs {
		c, err := openRun(r, prio, lo, hi, bufSize)
		if err != nil {
			return err
		}
		defer c.f.Close()
		if ok, err := c.next(); err != nil {
			return err
		} else if ok {
			h = append(h, c)
		}
	}
	mem := &memCursor{s: s, prio: len(runs), end: len(s.ents)}
	cmpKey := func(e sortEnt, k []byte) int { return bytes.Compare(e.key(s.arena), k) }
	if lo != nil {
		mem.start, _ = slices.BinarySearchFunc(s.ents, lo, cmpKey)
	}
	if hi != nil {
		mem.end, _ = slices.BinarySearchFunc(s.ents, hi, cmpKey)
	}
	mem.i = mem.start - 1
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
	return nil
}

// remove deletes the run files.
func (s *kvSorter) remove() {
	_ = s.waitSpill() // its run file is removed with the directory if it failed
	for _, r := range s.runs {
		os.Remove(r.path)
	}
	s.runs = nil
}

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

// runCursor reads a run file, from its first key at or past lo to its last key before hi.
type runCursor struct {
	prio    int
	name    string
	f       *os.File
	r       *bufio.Reader
	hi      []byte
	k, v    []byte
	prev    []byte
	pending bool // k and v hold a pair read ahead: the next next yields it
}

// openRun opens a cursor on r positioned before its first key at or past lo; the caller
// closes c.f.
func openRun(r *run, prio int, lo, hi []byte, bufSize int) (*runCursor, error) {
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("cache: bulk load: %v", err)
	}
	c := &runCursor{prio: prio, name: filepath.Base(r.path), f: f, hi: hi}
	if lo != nil {
		// From the last mark before lo: the pairs there before lo are skipped.
		j, _ := slices.BinarySearchFunc(r.marks, lo, func(m runMark, k []byte) int { return bytes.Compare(m.key, k) })
		if j > 0 {
			if _, err := f.Seek(r.marks[j-1].off, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("cache: bulk load: %v", err)
			}
		}
	}
	c.r = bufio.NewReaderSize(f, bufSize)
	for lo != nil {
		ok, err := c.read()
		if err != nil {
			f.Close()
			return nil, err
		}
		if !ok {
			break
		}
		if bytes.Compare(c.k, lo) >= 0 {
			c.pending = true
			break
		}
	}
	return c, nil
}

func (c *runCursor) key() []byte     { return c.k }
func (c *runCursor) value() []byte   { return c.v }
func (c *runCursor) lastKey() []byte { return c.prev }
func (c *runCursor) priority() int   { return c.prio }

func (c *runCursor) next() (bool, error) {
	c.prev = append(c.prev[:0], c.k...)
	if c.pending {
		c.pending = false
	} else if ok, err := c.read(); !ok || err != nil {
		return false, err
	}
	return c.hi == nil || bytes.Compare(c.k, c.hi) < 0, nil
}

// read reads the next pair into k and v; false at the end of the file.
func (c *runCursor) read() (bool, error) {
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

// memCursor reads the sorter's sorted buffer from ents[start] to before ents[end], the newest
// pairs; among equal keys in it the last one added is the one it yields last, so merge drops
// the earlier ones by looking ahead.
type memCursor struct {
	s          *kvSorter
	i          int
	start, end int
	prio       int
	prev       []byte
}

func (c *memCursor) key() []byte     { return c.s.ents[c.i].key(c.s.arena) }
func (c *memCursor) value() []byte   { return c.s.ents[c.i].value(c.s.arena) }
func (c *memCursor) lastKey() []byte { return c.prev }
func (c *memCursor) priority() int   { return c.prio }

func (c *memCursor) next() (bool, error) {
	if c.i >= c.start {
		c.prev = c.key()
	}
	c.i++
	// Skip to the last of a run of equal keys: the value added last.
	for c.i+1 < c.end && bytes.Equal(c.s.ents[c.i].key(c.s.arena), c.s.ents[c.i+1].key(c.s.arena)) {
		c.i++
	}
	return c.i < c.end, nil
}
