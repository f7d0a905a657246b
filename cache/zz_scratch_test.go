package cache

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkZZCommit(b *testing.B) {
	const n = 100_000
	for round := range 3 {
		for _, streams := range []int{1, 2} {
			loadStreams = streams
			dst := openDir(b, b.TempDir())
			l, err := dst.BeginLoad(ctx0)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i += 2000 {
				if _, err := l.Apply(ctx0, Batch{Source: "ldap", Pass: "first", Upserts: users(i, i+2000)}); err != nil {
					b.Fatal(err)
				}
			}
			t, c := time.Now(), cpuNow()
			if err := l.Commit(ctx0); err != nil {
				b.Fatal(err)
			}
			fmt.Printf("round %d streams %d commit wall %v cpu %v\n", round, streams, time.Since(t).Round(time.Millisecond), (cpuNow() - c).Round(time.Millisecond))
			dst.Close()
		}
	}
}
