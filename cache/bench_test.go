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

// BenchmarkBulkLoadFloor100k puts a number on how fast Badger can take a first sync at all. It
// applies 100k users the way a first full sync does (timed separately, as "apply-s"), then
// writes exactly the keys and values that produced, already sorted, into a fresh database with
// Badger's StreamWriter: its fastest bulk path, which skips the write-ahead log, the memtable
// and compaction. One op is that stream write ("floor-s"). No sync could write the same data
// faster, since it would also have to sort it.
//
//	go test -run '^$' -bench BulkLoadFloor100k -benchtime 1x ./cache/
func BenchmarkBulkLoadFloor100k(b *testing.B) {
	ctx := context.Background()
	src := openDir(b, b.TempDir())
	defer src.Close()
	start := time.Now()
	for i := 0; i < 100_000; i += 1000 {
		if _, err := src.Apply(ctx, Batch{Source: "ldap", Upserts: users(i, i+1000), Watermark: []byte("w")}); err != nil {
			b.Fatal(err)
		}
	}
	apply := time.Since(start)

	// Every key kind is its own stream: kinds differ in the first byte, so streams never
	// overlap, and each one is sorted because the iterator is.
	var kvs []*pb.KV
	var bytes int
	err := src.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			k := it.Item().KeyCopy(nil)
			kvs = append(kvs, &pb.KV{Key: k, Value: v, Version: 1, StreamId: uint32(k[0])})
			bytes += len(k) + len(v)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		dst, err := badger.Open(badgerOptions(Options{Dir: b.TempDir()}))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sw := dst.NewStreamWriter()
		if err := sw.Prepare(); err != nil {
			b.Fatal(err)
		}
		buf := z.NewBuffer(8<<20, "floor")
		for i, kv := range kvs {
			badger.KVToBuffer(kv, buf)
			if buf.LenNoPadding() >= 4<<20 || i == len(kvs)-1 {
				if err := sw.Write(buf); err != nil {
					b.Fatal(err)
				}
				buf.Reset()
			}
		}
		buf.Release()
		if err := sw.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := dst.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(apply.Seconds(), "apply-s")
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "floor-s")
	b.ReportMetric(float64(len(kvs)), "keys")
	b.ReportMetric(float64(bytes)/(1<<20), "MB")
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
