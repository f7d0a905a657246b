// Package cache is ldapscim's crash-safe, queryable copy of the directory, kept in an embedded
// Badger database.
//
// ldapsync writes batches of SCIM resources into it with Apply; the SCIM API, the push workers
// and the CLI read from it. Next to the resources the store keeps secondary indexes (userName,
// externalId, email, DN, displayName, member → groups, manager → reports, lastModified), a
// change journal with monotonic sequence numbers, per-resource audit records, per-source sync
// watermarks and the set of held deletions. Every change, its indexes, its journal record and its audit record are
// written in one Badger transaction, so after a crash (even kill -9) the store holds either all
// of them or none.
//
// No Badger type crosses the package edge: errors are this package's sentinels (ErrNotFound,
// ErrInvalid, ...) or plain wrapped text. All Store methods are safe for concurrent use.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Errors returned by Store methods, possibly wrapped with more context.
var (
	ErrNotFound = errors.New("cache: not found")
	ErrInvalid  = errors.New("cache: invalid argument")
	ErrClosed   = errors.New("cache: store closed")
	// ErrTooBig means a single resource's writes do not fit into one transaction.
	ErrTooBig = errors.New("cache: change too big for one transaction")
	// ErrConflict means a write kept conflicting with concurrent writes and was given up.
	ErrConflict = errors.New("cache: write conflict")
	// ErrLocked means another process has the cache open: Badger allows one (Open).
	ErrLocked = errors.New("cache: in use by another process")
	// ErrCorrupt means a stored record could not be decoded.
	ErrCorrupt = errors.New("cache: corrupt record")
)

// Options configure Open.
type Options struct {
	// Dir is the database directory; "" keeps everything in memory (tests).
	Dir string
	// SyncWrites fsyncs every commit, for power-loss safety. Without it a commit is still
	// safe against a killed process (kill -9): it is in the OS page cache when Apply returns.
	SyncWrites bool
	// Log receives Badger's own messages at WARN and above, and the migrations'; nil discards them.
	Log *slog.Logger
	// DeferCompaction is for a short-lived process (every CLI command but serve). Each such
	// process leaves one small level-0 table behind (Badger flushes its memtable at Close),
	// and Badger merges level 0 into the levels below once it holds 5 of them, in whichever
	// process comes next, which then waits for it at Close (the scale issue measured a delta of
	// 1,000 changes at 9.8-12.5x a delta of 100 in 4 runs of 10). With DeferCompaction the store runs no compactions
	// while level 0 holds fewer than deferL0Limit tables, so that work is left to serve (which
	// compacts in the background) or, without a serve, to the one command in deferL0Limit
	// that finds the limit reached.
	DeferCompaction bool
	// ReplicaLag is set on replicas that a load balancer serves side by side ([ha] max_lag): the
	// longest a replica may take to apply a change after the source made it, clock skew
	// included. With it, meta.lastModified is derived from the source's own time of the change
	// (Batch.SourceTimes: the directory entry's modifyTimestamp) plus twice the lag,
	// and is never less than the write's time plus the lag (writer.modified), so that a
	// change another replica applies later is still "gt" every time a client saw before it
	// (invariant 6, docs/architecture.md). 0 (one instance): lastModified is the write's time.
	ReplicaLag time.Duration

	// memTableSize overrides the memtable size (tests use it to force ErrTxnTooBig).
	memTableSize int64
}

// Store is the cache. Create it with Open; all methods are safe for concurrent use.
// Close it once, after every other call has returned.
type Store struct {
	db   *badger.DB
	lock *os.File // holds the flock that makes ErrLocked (nil in memory)
	// wmu serializes write transactions: the journal sequence is read and bumped inside each
	// transaction, so concurrent writers would only conflict and retry.
	wmu sync.Mutex
	// gate holds off every read and write of db while a bulk load streams its tables
	// (load.go): view, write and the value log GC pass it.
	gate gate
	// empty is an empty in-memory database that reads use while a bulk load writes db
	// (load.go): the store held no resources before the load, so reads answer as it was.
	// Made by the first load, closed by Close.
	empty atomic.Pointer[badger.DB]
	dir   string // "" in memory
	log   *slog.Logger
	now   func() time.Time
	lag   time.Duration // Options.ReplicaLag
	chunk int           // resources per Apply transaction, before ErrTxnTooBig splitting
	// memberSlice is how many member changes of a group one transaction writes at most.
	memberSlice int
	// maxValue is the largest value an in-memory store takes; 0 on disk.
	maxValue int

	// head is the last journal sequence number committed, kept in memory so JournalHead (read by
	// every SCIM list request) costs no read.
	head atomic.Uint64
	// refs caches group refs for GroupsOfMany, valid for one head (scimread.go).
	refs groupRefs

	// afterCommit, if set (tests), is called after each committed write transaction.
	afterCommit func(chunkInfo)

	stopGC    context.CancelFunc
	gcDone    chan struct{}
	closeOnce sync.Once
}

// chunkInfo describes one committed write transaction, for tests.
type chunkInfo struct {
	writes int // keys set or deleted
	reads  int // point reads of the transaction's own (writer.get)
	last   bool
	res    Result
}

const (
	defaultChunk  = 500
	maxRetries    = 10
	gcInterval    = 10 * time.Minute
	gcDiscardRate = 0.5
)

// Open opens (or creates) the store described by opts.
func Open(opts Options) (*Store, error) {
	bo := badgerOptions(opts)
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	removeEmptyMemtables(opts.Dir, newLogger(opts.Log))
	db, err := openBadger(bo, opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("cache: open %q: %v", opts.Dir, err)
	}
	s := &Store{db: db, lock: lock, dir: opts.Dir, log: cacheLogger(opts.Log), now: time.Now, lag: max(opts.ReplicaLag, 0), chunk: defaultChunk, memberSlice: defaultMemberSlice, gcDone: make(chan struct{})}
	if bo.InMemory {
		s.maxValue = int(bo.ValueThreshold)
	}
	if err := s.recoverLoad(); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("cache: open %q: %v", opts.Dir, err)
	}
	err = db.View(func(txn *badger.Txn) error {
		seq, err := getCounter(txn, seqKey)
		s.head.Store(seq)
		return err
	})
	if err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("cache: open %q: reading the journal head: %v", opts.Dir, translate(err))
	}
	if err := s.upgradeIndexes(opts.Log); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("cache: open %q: %v", opts.Dir, translate(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopGC = cancel
	if opts.Dir == "" {
		close(s.gcDone)
	} else {
		go s.runGC(ctx)
	}
	return s, nil
}

// deferL0Limit is how many level-0 tables a store opened with DeferCompaction lets stand before
// it compacts (Badger's own trigger is 5; it stops writes at 15, which a store without
// compactions must never reach, so it raises that bound).
const deferL0Limit = 10

// openBadger opens the database; with DeferCompaction without compactions unless level 0
// holds deferL0Limit tables.
func openBadger(bo badger.Options, opts Options) (*badger.DB, error) {
	if !opts.DeferCompaction || bo.InMemory {
		return badger.Open(bo)
	}
	deferred := bo.WithNumCompactors(0).WithNumLevelZeroTablesStall(math.MaxInt32)
	db, err := badger.Open(deferred)
	if err != nil {
		return nil, err
	}
	l0 := db.Levels()[0].NumTables
	if l0 < deferL0Limit {
		return db, nil
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	cacheLogger(opts.Log).Info("compacting the cache: level 0 holds the tables of earlier commands", "tables", l0)
	return badger.Open(bo)
}

// badgerOptions tunes Badger for an appliance: one process, a directory of up to a million
// entries, a memory budget of a few hundred MB for the whole binary (which sets a soft memory
// limit, see cmd/ldapscim).
func badgerOptions(opts Options) badger.Options {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.Dir == "").
		WithSyncWrites(opts.SyncWrites).
		WithLogger(slogAdapter{newLogger(opts.Log)}).
		WithMetricsEnabled(false).
		// The memtable size bounds one transaction (15% of it, and 15%/96 bytes keys: 2.4 MB,
		// 26k keys at 16 MB). Apply stays far below: 500 resources per transaction, and a big
		// group goes in slices of memberSlice member changes (two keys each). Two memtables
		// (default 5): one filling, one flushing. Each is an arena allocated whole, and an L0
		// flush builds a table of the same size in memory, so the memtable size is the main
		// part of Badger's share of a pass's memory. 16 MB is a quarter of the default: in one
		// pair of first syncs of 100k users (1,000 resources per transaction, no memory limit) it
		// peaked at 514 MB anonymous against 638 MB at 32 MB; later pairs on a busy machine did
		// not separate the two clearly, in time or in memory.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		// Users (~1-2 KB) live in the LSM tree, where reads are one lookup; only the odd big
		// value (an audit record of a slice of 5,000 member ids) goes to the value log.
		WithValueThreshold(32 << 10).
		// Value log files of 64 MB (default 1 GB) let value log GC reclaim space on a small disk.
		WithValueLogFileSize(64 << 20).
		// No block cache: tables are not compressed (below) nor encrypted, so a block is read
		// straight from the memory-mapped table and the OS page cache does the caching. A block
		// cache would only copy blocks into ristretto, which Badger documents as "unnecessary
		// overhead which will affect the read performance" without compression or encryption;
		// looking up 10,000 different users by userName through the SCIM API (a hot cache miss
		// each) took about 25% less CPU per request without it (README, "SCIM API").
		// (Badger uses the index cache only for encrypted tables.)
		WithBlockCacheSize(0).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2).
		// No compression: a compressed L0 flush holds the table twice in builder buffers (about
		// +30% peak RSS on a first sync of 100k users) and costs CPU on every pass; the price
		// is 2-3x more disk, a few hundred MB for 100k users.
		WithCompression(options.None)
	// Tables of 2 MB at every level (default: doubling per level, 64 MB at L6 while the store
	// is small): compaction builds them in up to 8 parallel builders that each hold a table.
	bo.TableSizeMultiplier = 1
	if opts.Dir == "" {
		// In memory there is no value log: every value must fit under the threshold, whose
		// maximum is 1 MB; no value grows with a group since members have keys of their own.
		bo = bo.WithValueThreshold(1 << 20)
	}
	if opts.memTableSize > 0 {
		bo = bo.WithMemTableSize(opts.memTableSize)
		bo = bo.WithValueThreshold(min(bo.ValueThreshold, opts.memTableSize*15/100/4))
	}
	return bo
}

// Close flushes and closes the store. Calling it again returns nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stopGC()
		<-s.gcDone
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if e := s.db.Close(); e != nil {
			err = fmt.Errorf("cache: close: %v", e)
		}
		if e := s.empty.Load(); e != nil {
			e.Close()
		}
		s.lock.Close()
	})
	return err
}

// removeEmptyMemtables deletes the zero-length memtable files (*.mem) in dir before Badger
// opens it. A process killed while Badger created one leaves it empty, and Badger then refuses
// the directory for good ("while opening fid: N err: Create a new file"; seen by `make
// reliability` after a kill -9 during serve's start). An empty memtable file holds no
// write-ahead log, so nothing is lost with it.
func removeEmptyMemtables(dir string, log *slog.Logger) {
	if dir == "" {
		return
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	removed := 0
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && fi.Size() == 0 && os.Remove(n) == nil {
			removed++
		}
	}
	if removed > 0 {
		log.Warn("removed empty memtable files a crash left behind", "dir", dir, "files", removed)
	}
}

// lockDir takes an exclusive flock on dir/ldapscim.lock, held until Close: a second process
// gets ErrLocked, a sentinel the CLI can test, where Badger's own lock only gives a message.
// It returns nil for an in-memory store.
func lockDir(dir string) (*os.File, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: open %q: %v", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "ldapscim.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: open %q: %v", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %q", ErrLocked, dir)
		}
		return nil, fmt.Errorf("cache: open %q: locking: %v", dir, err)
	}
	return f, nil
}

// runGC reclaims value log space (big groups rewritten by updates) now and then.
func (s *Store) runGC(ctx context.Context) {
	defer close(s.gcDone)
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for ctx.Err() == nil && s.runValueLogGC() == nil {
			}
		}
	}
}

func (s *Store) runValueLogGC() error {
	if err := s.gate.enter(); err != nil {
		return err
	}
	defer s.gate.leave()
	return s.db.RunValueLogGC(gcDiscardRate)
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.gate.enter(); err != nil {
		if e := s.empty.Load(); e != nil {
			// A first sync's bulk load is writing the store, which held no resources
			// before it: the reader sees the store as it was until the load is done.
			return translate(e.View(fn))
		}
		return err
	}
	defer s.gate.leave()
	return translate(s.db.View(fn))
}

// write runs fn in one read-write transaction and commits it, retrying on conflicts.
// fn is called again from scratch on a retry; w.now is fresh per attempt.
func (s *Store) write(fn func(w *writer) error) (*writer, error) {
	if s.db.IsClosed() {
		return nil, ErrClosed
	}
	if err := s.gate.enter(); err != nil {
		return nil, err
	}
	defer s.gate.leave()
	for attempt := 0; ; attempt++ {
		w, err := s.writeOnce(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, translate(err)
		}
		return w, nil
	}
}

func (s *Store) writeOnce(fn func(w *writer) error) (*writer, error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	w := &writer{txn: txn, now: s.now().UTC(), lag: s.lag, maxValue: s.maxValue}
	if err := fn(w); err != nil {
		return nil, err
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	if w.seqDirty {
		// Writes that use the journal hold wmu, so heads are stored in order.
		s.head.Store(w.seq)
	}
	return w, nil
}

// translate maps Badger errors to this package's errors; no Badger error value escapes.
func translate(err error) error {
	var cb callbackError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cb):
		return cb.err
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid), errors.Is(err, ErrClosed),
		errors.Is(err, ErrTooBig), errors.Is(err, ErrConflict), errors.Is(err, ErrCorrupt), errors.Is(err, ErrBusy),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, badger.ErrTxnTooBig):
		return ErrTooBig
	case errors.Is(err, badger.ErrConflict):
		return ErrConflict
	}
	return fmt.Errorf("cache: %v", err)
}

// callbackError carries an error returned by a caller's callback through a Badger
// transaction, so translate hands it back unchanged.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// cacheLogger is the store's own logger (migrations, bulk loads); nil discards.
func cacheLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.With("component", "cache")
}

func newLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.With("component", "badger")
}

// slogAdapter passes Badger's WARNING and ERROR messages to slog and drops the chatty rest.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(f string, args ...any) {
	a.l.Error(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (a slogAdapter) Warningf(f string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, args...))
	if strings.HasPrefix(msg, "Cache life expectancy") || strings.HasPrefix(msg, "Block cache might be too small") {
		// Badger's block-cache statistics, printed when the cache turns over quickly, as it
		// does on purpose here (small caches, a bulk write): nothing for an admin to act on.
		a.l.Debug(msg)
		return
	}
	a.l.Warn(msg)
}

func (slogAdapter) Infof(string, ...any)  {}
func (slogAdapter) Debugf(string, ...any) {}
