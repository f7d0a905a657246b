package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/ldapscim/ldapscim/scim"
)

// A first sync writes every user and group of the directory into an empty store. Through
// transactions that costs Badger's whole write path several times over (memtable, level-0
// flush, compactions into every level); a Load writes the same keys and values once instead:
// its batches go to an external sorter (sorter.go), and Commit streams the sorted pairs into
// Badger as finished tables of the last level (Badger's StreamWriter), where they stay.
//
// What a Load writes is exactly what Apply would have written into the empty store, key for
// key and byte for byte (TestLoadWritesWhatApplyWrites): the same resources, indexes, member
// keys, journal and audit records, counters. Nothing is visible before Commit.
//
// Crash safety: until Commit starts nothing is in the store (the sorter's run files in
// loadDirName are removed by the next Open or Load). Commit replaces the store's content with
// the stream; a marker file (loadMarkerName) exists from before the first table until after
// the last, and an Open that finds it drops the partial content, so a first sync killed there
// starts over from an empty store. A store that had keys without resources (alerts, a push
// cursor, the journal of resources deleted since) keeps them through a Commit, but loses them
// when a Commit is interrupted.

const (
	loadDirName    = "load.tmp"
	loadMarkerName = "load.incomplete"
)

// Load is a bulk load into a store without resources; see BeginLoad. Not safe for concurrent
// use.
type Load struct {
	s      *Store
	sorter *kvSorter
	// seen holds a 64-bit hash of every id loaded: a second upsert of one id ends the load
	// (Apply), since it must read what the first wrote. 8 bytes per resource plus the map's
	// overhead.
	seen   map[uint64]struct{}
	seed   maphash.Seed
	head0  uint64 // the journal head at BeginLoad
	seq    uint64 // the last journal sequence number used
	counts map[byte]int64
	res    Result
	dups   Duplicates
	done   bool  // committed or aborted: Apply writes to the store
	err    error // of the Commit
	// afterWrite, if set (tests), is called after each write of tables during Commit.
	afterWrite func()
}

// Duplicates counts the users of a Load that share their userName with another user: each
// user after the first of a name. Sample names a few of those names (case-folded).
type Duplicates struct {
	Users  int
	Sample []string
}

func (d *Duplicates) note(name string) {
	d.Users++
	if len(d.Sample) < 5 && !slices.Contains(d.Sample, name) {
		d.Sample = append(d.Sample, name)
	}
}

// userNameOfIndexKey returns the (case-folded) userName of a userName index key.
func userNameOfIndexKey(k []byte) ([]byte, bool) {
	if len(k) < 3 || k[0] != kindIndex || k[1] != indexByte(IndexUserName) {
		return nil, false
	}
	n, w := binary.Uvarint(k[2:])
	if w <= 0 || uint64(len(k)-2-w) < n {
		return nil, false
	}
	return k[2+w : 2+w+int(n)], true
}

// ErrNotEmpty is returned by BeginLoad for a store that holds resources.
var ErrNotEmpty = errors.New("cache: the store is not empty")

// BeginLoad starts a bulk load, for a store that holds no resources (a first sync); it returns
// ErrNotEmpty otherwise, and ErrInvalid for an in-memory store. Apply the batches to the Load
// as to the store, then Commit it; Abort it on failure. Until Commit the store stays as it
// was.
func (s *Store) BeginLoad(ctx context.Context) (*Load, error) {
	if s.dir == "" {
		return nil, fmt.Errorf("%w: a bulk load needs a store on disk", ErrInvalid)
	}
	for _, t := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		n, err := s.Count(ctx, t)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, ErrNotEmpty
		}
	}
	tmp := filepath.Join(s.dir, loadDirName)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("cache: bulk load: %v", err)
	}
	head := s.head.Load()
	return &Load{
		s: s, sorter: newKVSorter(tmp, sortBufferSize), seen: map[uint64]struct{}{},
		seed: maphash.MakeSeed(), head0: head, seq: head, counts: map[byte]int64{},
	}, nil
}

// Apply adds b to the load, with Store.Apply's semantics and result. A batch the load cannot
// take without reading what it wrote (a resource it loaded already, member edits, deletions,
// overlays, kept members, a watermark or holds) first commits the load, and it and every later
// batch go to the store.
func (l *Load) Apply(ctx context.Context, b Batch) (Result, error) {
	if l.done {
		if l.err != nil {
			return Result{}, l.err
		}
		return l.s.Apply(ctx, b)
	}
	if err := validate(&b); err != nil {
		return Result{}, err
	}
	hashes, ok := l.takes(&b)
	if !ok {
		if err := l.Commit(ctx); err != nil {
			return Result{}, err
		}
		return l.s.Apply(ctx, b)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	w := &writer{sink: l.sorter, now: l.s.now().UTC(), lag: l.s.lag, pass: b.Pass, seq: l.seq, seqLoaded: true}
	for i, r := range b.Upserts {
		l.seen[hashes[i]] = struct{}{}
		e, err := encode(r)
		if err != nil {
			// The batch's earlier resources are in the sorter already: the load is over,
			// as a failed Apply's batch is not in the store.
			l.Abort()
			return Result{}, err
		}
		e.src = b.SourceTimes[r.ID]
		if e.tb == 'G' {
			err = w.writeGroup(r.ID, e, memberPlan{added: e.members}, true)
		} else {
			err = w.upsert(e)
		}
		if err == nil {
			err = w.setSourceHash(&b, r.ID)
		}
		if err == nil && b.Own && e.tb == 'U' {
			// setSourceHash reads the ref to learn the type, which a load cannot.
			err = w.set(ownerKey(r.ID), append([]byte{'U'}, b.Source...))
		}
		if err != nil {
			l.Abort()
			return Result{}, fmt.Errorf("%s %s: %w", r.Type, r.ID, err)
		}
	}
	l.seq = w.seq
	for tb, d := range w.counts {
		l.counts[tb] += d
	}
	l.res.add(w.res)
	return w.res, nil
}

// takes reports whether b only creates resources the load has not written, with the hashes
// of their ids (seen's keys).
func (l *Load) takes(b *Batch) ([]uint64, bool) {
	if len(b.MemberEdits)+len(b.Deletes)+len(b.Overlays)+len(b.KeepMembers) > 0 || b.Watermark != nil || b.Holds != nil {
		return nil, false
	}
	hashes := make([]uint64, len(b.Upserts))
	ids := make(map[uint64]struct{}, len(b.Upserts))
	for i, r := range b.Upserts {
		h := maphash.String(l.seed, r.ID)
		if _, ok := l.seen[h]; ok {
			return nil, false
		}
		if _, ok := ids[h]; ok {
			return nil, false
		}
		ids[h] = struct{}{}
		hashes[i] = h
	}
	return hashes, true
}

// Duplicates returns the duplicate userNames the Commit found.
func (l *Load) Duplicates() Duplicates { return l.dups }

// Commit writes everything applied to the load into the store and ends the load: later
// Applies go to the store. It holds off every other write to the store while it streams. An
// error before the stream starts leaves the store as it was; an error (or a crash) while it
// streams leaves it empty, at once or at the next Open. Either way the load is over. Calling
// Commit again returns the first call's error.
func (l *Load) Commit(ctx context.Context) error {
	if l.done {
		return l.err
	}
	l.done = true
	defer l.sorter.removeDir()
	if l.sorter.added == 0 {
		return nil
	}
	l.err = l.commit(ctx)
	return l.err
}

// Abort ends the load without writing anything; the store stays as it was.
func (l *Load) Abort() {
	if !l.done {
		l.done = true
		l.err = fmt.Errorf("%w: the bulk load was aborted", ErrInvalid)
		l.sorter.removeDir()
	}
}

func (l *Load) commit(ctx context.Context) error {
	s := l.s
	start := time.Now()
	s.wmu.Lock() // Apply's lock first, then the gate, as Apply does
	defer s.wmu.Unlock()
	if s.empty.Load() == nil {
		e, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithMemTableSize(1 << 20).WithValueThreshold(1 << 16).WithCompression(options.None).
			WithBlockCacheSize(0).WithLogger(nil).WithMetricsEnabled(false))
		if err != nil {
			return fmt.Errorf("cache: bulk load: %v", err)
		}
		s.empty.Store(e)
	}
	s.gate.shut()
	defer s.gate.open()
	// Behind the gate: s.db directly (reads go to s.empty, writes are turned away).
	if s.head.Load() != l.head0 {
		return fmt.Errorf("%w: the store changed during a bulk load", ErrConflict)
	}
	var counts [2]uint64
	err := s.db.View(func(txn *badger.Txn) (err error) {
		for i, tb := range []byte{'U', 'G'} {
			if counts[i], err = getCounter(txn, countKey(tb)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return translate(err)
	}
	if counts[0]+counts[1] > 0 {
		return fmt.Errorf("%w: the store changed during a bulk load", ErrConflict)
	}
	for tb, d := range l.counts {
		if err := l.sorter.add(countKey(tb), binary.BigEndian.AppendUint64(nil, uint64(d))); err != nil {
			return err
		}
	}
	if l.seq != l.head0 {
		if err := l.sorter.add(seqKey, binary.BigEndian.AppendUint64(nil, l.seq)); err != nil {
			return err
		}
	}
	// The store's own keys, which Prepare drops: written back with the stream.
	base := filepath.Join(l.sorter.dir, "run-base")
	if err := os.MkdirAll(l.sorter.dir, 0o700); err != nil {
		return fmt.Errorf("cache: bulk load: %v", err)
	}
	err = writeRun(base, func(put func(k, v []byte) error) error {
		return s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.DefaultIteratorOptions)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if err := put(it.Item().Key(), v); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return translate(err)
	}
	s.log.Info("first sync: writing the loaded resources as finished tables", "resources", l.res.Created, "keys", l.sorter.added)
	marker := filepath.Join(s.dir, loadMarkerName)
	if err := writeSynced(marker); err != nil {
		return err
	}
	sw := s.db.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		sw.Cancel()
		return fmt.Errorf("cache: bulk load: %v", err)
	}
	st := newStreamer(sw, l.afterWrite)
	buf := st.buffer()
	n := 0
	var lastName []byte
	err = l.sorter.merge(base, func(k, v []byte) error {
		if name, ok := userNameOfIndexKey(k); ok {
			if string(name) == string(lastName) {
				l.dups.note(string(name))
			}
			lastName = append(lastName[:0], name...)
		}
		appendKV(buf, k, v)
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if st.failed.Load() {
				return errStop // the writer's error comes from close
			}
		}
		if buf.LenNoPadding() >= 4<<20 {
			st.send(buf)
			buf = st.buffer()
		}
		return nil
	})
	st.send(buf)
	if werr := st.close(); err == nil || errors.Is(err, errStop) {
		err = werr
	}
	if err == nil {
		err = sw.Flush()
	}
	if err != nil {
		// The store holds part of the load and none of what it had: empty it, as the next
		// Open would (the marker stays if that fails too).
		sw.Cancel()
		if derr := s.db.DropAll(); derr == nil {
			os.Remove(marker)
		}
		return fmt.Errorf("cache: bulk load: %w", translate(err))
	}
	if err := removeSynced(marker); err != nil {
		return err
	}
	s.head.Store(l.seq)
	s.log.Info("first sync: resources written", "resources", l.res.Created, "keys", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// appendKV adds the pair to buf as Badger's StreamWriter reads it: a protobuf-encoded pb.KV
// with version 1. It writes what badger.KVToBuffer(&pb.KV{Key: k, Value: v, Version: 1}, buf)
// writes (TestAppendKV), without the reflection of proto.Marshal, which cost about a tenth of
// a first sync's Commit.
func appendKV(buf *z.Buffer, k, v []byte) {
	out := buf.SliceAllocate(bytesFieldLen(k) + bytesFieldLen(v) + 2)[:0]
	out = appendBytesField(out, 1, k) // key
	out = appendBytesField(out, 2, v) // value
	_ = append(out, 4<<3, 1)          // version (field 4, varint): 1
}

// appendBytesField appends protobuf field f of type bytes; proto3 leaves out an empty one.
func appendBytesField(out []byte, f byte, b []byte) []byte {
	if len(b) == 0 {
		return out
	}
	out = append(out, f<<3|2)
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

func bytesFieldLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	n := 2
	for x := uint64(len(b)); x >= 0x80; x >>= 7 {
		n++
	}
	return n + len(b)
}

// writeSynced creates an empty file and makes it and its directory entry durable.
func writeSynced(path string) error {
	f, err := os.Create(path)
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("cache: bulk load: %v", err)
	}
	return nil
}

// removeSynced removes a file durably.
func removeSynced(path string) error {
	err := os.Remove(path)
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("cache: bulk load: %v", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// recoverLoad empties a store whose bulk load was interrupted (the marker file is there) and
// removes a load's leftover run files. Called by Open.
func (s *Store) recoverLoad() error {
	if s.dir == "" {
		return nil
	}
	os.RemoveAll(filepath.Join(s.dir, loadDirName))
	marker := filepath.Join(s.dir, loadMarkerName)
	if _, err := os.Stat(marker); err != nil {
		return nil
	}
	s.log.Warn("the cache's first sync was interrupted while it wrote its data: emptying the cache, the next sync starts over")
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("emptying the cache after an interrupted first sync: %v", err)
	}
	return removeSynced(marker)
}

// removeDir removes the sorter's run files and directory.
func (s *kvSorter) removeDir() {
	s.remove()
	os.RemoveAll(s.dir)
}

// streamer writes filled buffers of pairs through a StreamWriter on a goroutine of its own, so
// that merging the runs overlaps with Badger's decoding of the buffers; two buffers circulate.
type streamer struct {
	full   chan *z.Buffer
	free   chan *z.Buffer
	done   chan error
	failed atomic.Bool
}

func newStreamer(sw *badger.StreamWriter, after func()) *streamer {
	st := &streamer{full: make(chan *z.Buffer, 1), free: make(chan *z.Buffer, 2), done: make(chan error, 1)}
	for range 2 {
		st.free <- z.NewBuffer(8<<20, "ldapscim.load")
	}
	go func() {
		var err error
		for b := range st.full {
			if err == nil {
				if err = sw.Write(b); err != nil {
					st.failed.Store(true)
				}
				if after != nil {
					after()
				}
			}
			b.Reset()
			st.free <- b
		}
		st.done <- err
	}()
	return st
}

func (st *streamer) buffer() *z.Buffer { return <-st.free }
func (st *streamer) send(b *z.Buffer)  { st.full <- b }

// close waits for the last write and returns the first write error.
func (st *streamer) close() error {
	close(st.full)
	err := <-st.done
	for range 2 {
		(<-st.free).Release()
	}
	return err
}
