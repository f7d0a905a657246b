package cache

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/ldapscim/ldapscim/scim"
)

// Benchmarks run on a temp dir (the real setting), one op = one batch of 1000 users.
//
//	go test -run '^$' -bench . -benchmem ./cache/

func BenchmarkApplyCreate1000(b *testing.B) {
	s := openDir(b, b.TempDir())
	defer s.Close()
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		batch := users(i*1000, (i+1)*1000) // fresh ids: every op creates 1000 users
		b.StartTimer()
		res, err := s.Apply(ctx, Batch{Source: "ldap", Pass: "bench", Upserts: batch, Watermark: []byte("w")})
		if err != nil || res.Created != 1000 {
			b.Fatalf("Apply: %+v, %v", res, err)
		}
	}
}

func BenchmarkApplyUnchanged1000(b *testing.B) {
	s := openDir(b, b.TempDir())
	defer s.Close()
	ctx := context.Background()
	batch := users(0, 1000)
	if _, err := s.Apply(ctx, Batch{Upserts: batch}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := s.Apply(ctx, Batch{Source: "ldap", Pass: "bench", Upserts: batch})
		if err != nil || res.Unchanged != 1000 {
			b.Fatalf("Apply: %+v, %v", res, err)
		}
	}
}

func BenchmarkGetByUserName(b *testing.B) {
	s := openDir(b, b.TempDir())
	defer s.Close()
	ctx := context.Background()
	const n = 10000
	for i := 0; i < n; i += 1000 {
		if _, err := s.Apply(ctx, Batch{Upserts: users(i, i+1000)}); err != nil {
			b.Fatal(err)
		}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("USER%06d", i)
	}
	i := 0
	for b.Loop() {
		ids, err := s.Lookup(ctx, IndexUserName, names[i%n])
		if err != nil || len(ids) != 1 {
			b.Fatalf("Lookup: %v, %v", ids, err)
		}
		if _, err := s.Get(ctx, scim.UserType, ids[0]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFullSync100k applies 100k users in 1000-user batches to a temp dir, as a first full
// sync does, and reports the process's peak RSS. Run it alone for a meaningful RSS:
//
//	go test -run '^$' -bench FullSync100k -benchtime 1x ./cache/
func BenchmarkFullSync100k(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s := openDir(b, b.TempDir())
		b.StartTimer()
		for i := 0; i < 100_000; i += 1000 {
			if _, err := s.Apply(ctx, Batch{Source: "ldap", Upserts: users(i, i+1000), Watermark: []byte("w")}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
}

// peakRSS returns the process's peak resident set size in bytes (Linux), or 0.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkBulkLoad100k compares the two ways a first sync can write 100k users into an empty
// store. One op is a bulk load (Load: sorted runs, then Badger's StreamWriter) of the batches a
// first full sync hands over, with its last batch (the watermark) through a transaction, as a
// pass does; "apply-s" is the same batches through Apply (transactions, memtable, compaction),
// timed once; "floor-s" is Badger's StreamWriter alone writing exactly the keys and values
// Apply produced, already sorted and in memory: no way of writing them can be faster.
//
//	go test -run '^$' -bench BulkLoad100k -benchtime 3x ./cache/
func BenchmarkBulkLoad100k(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	batches := func(write func(Batch) error) {
		for i := 0; i < n; i += 2000 {
			if err := write(Batch{Source: "ldap", Pass: "first", Upserts: users(i, i+2000)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := write(Batch{Source: "ldap", Pass: "first", Watermark: []byte("w")}); err != nil {
			b.Fatal(err)
		}
	}
	src := openDir(b, b.TempDir())
	defer src.Close()
	start := time.Now()
	batches(func(batch Batch) error { _, err := src.Apply(ctx, batch); return err })
	apply := time.Since(start)

	var kvs []*pb.KV
	var size int
	err := src.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			kvs = append(kvs, &pb.KV{Key: it.Item().KeyCopy(nil), Value: v, Version: 1})
			size += len(it.Item().Key()) + len(v)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	floor := streamFloor(b, kvs)

	for b.Loop() {
		b.StopTimer()
		dst := openDir(b, b.TempDir())
		b.StartTimer()
		l, err := dst.BeginLoad(ctx)
		if err != nil {
			b.Fatal(err)
		}
		batches(func(batch Batch) error { _, err := l.Apply(ctx, batch); return err })
		if err := l.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got, _ := dst.Count(ctx, scim.UserType); got != n {
			b.Fatalf("%d users loaded", got)
		}
		dst.Close()
		b.StartTimer()
	}
	load := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(load, "load-s")
	b.ReportMetric(apply.Seconds(), "apply-s")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(load/apply.Seconds(), "load/apply")
	b.ReportMetric(float64(len(kvs)), "keys")
	b.ReportMetric(float64(size)/(1<<20), "MB")
}

// streamFloor writes kvs into a fresh database with Badger's StreamWriter and returns the time.
func streamFloor(b *testing.B, kvs []*pb.KV) time.Duration {
	dst, err := badger.Open(badgerOptions(Options{Dir: b.TempDir()}))
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	start := time.Now()
	sw := dst.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		b.Fatal(err)
	}
	buf := z.NewBuffer(8<<20, "floor")
	defer buf.Release()
	for i, kv := range kvs {
		badger.KVToBuffer(kv, buf)
		if buf.LenNoPadding() >= 4<<20 || i == len(kvs)-1 {
			if err := sw.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf.Reset()
		}
	}
	if err := sw.Flush(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkResolveDNs resolves the member DNs of a 100k-member group against a cache of 100k
// users on disk, in the order a directory lists them (not sorted), as a delta that re-reads
// the group does.
func BenchmarkResolveDNs(b *testing.B) {
	const n = 100000
	s := openDir(b, b.TempDir())
	defer s.Close()
	for from := 0; from < n; from += 5000 {
		mustApply(b, s, Batch{Upserts: users(from, from+5000)})
	}
	dns := make([]string, n)
	for i := range dns {
		dns[i] = user((i * 7919) % n).DN // a fixed shuffle
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		for start := 0; start < n; start += 16384 {
			_, ok, err := s.ResolveDNs(ctx, dns[start:min(start+16384, n)])
			if err != nil || !ok[0] {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/dn")
}
