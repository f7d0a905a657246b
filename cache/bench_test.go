package cache

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// Benchmarks run on a temp dir (the real setting), one op = one batch of 1000 users.
//
//	go test -run '^$' -bench . -benchmem ./cache/

func BenchmarkApplyCreate1000(b *testing.B) {
	s := openDir(b, b.TempDir())
	defer s.Close()
	ctx := context.Background()
	batches := make([][]*scim.Resource, 0, 64)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if len(batches) <= i%64 {
			batches = append(batches, nil)
		}
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
