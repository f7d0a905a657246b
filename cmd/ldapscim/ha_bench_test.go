package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// BenchmarkHAFailover measures failover with three serve replicas on one slapd, one SCIMMY
// target and a 3-member etcd, over LDAPSCIM_BENCH_HA_TRIALS trials (default 10) at lease_ttl
// LDAPSCIM_BENCH_HA_TTL (default 10s, the default of [ha]). Each trial kills the leader with
// -9, changes a user's title in the directory right after, and times two things from the kill:
// until another replica says it leads (/admin/v1/info), and until the change is at the target
// (the new leader's first successful push; delta passes run every second, so the change is in
// every cache long before the lease expires). The killed replica is started again before the
// next trial, so three replicas run at every kill. It prints a table, the median and the max.
func BenchmarkHAFailover(b *testing.B) {
	trials, ttl := 10, 10*time.Second
	if v := os.Getenv("LDAPSCIM_BENCH_HA_TRIALS"); v != "" {
		fmt.Sscan(v, &trials)
	}
	if v := os.Getenv("LDAPSCIM_BENCH_HA_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("LDAPSCIM_BENCH_HA_TTL: %v", err)
		}
		ttl = d
	}
	const users = 100
	for i := 0; i < b.N; i++ {
		sl := testenv.StartSlapd(b, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(b, sampledata.Options{Users: users, Groups: 4, Seed: 14})}})
		sc := testenv.StartScimmy(b)
		etcd := testenv.StartEtcd(b, 3)
		reps := startHAReplicas(b, sl, sc, etcd.Endpoints, haReplicas{
			names: []string{"replica-a", "replica-b", "replica-c"}, ttl: ttl, target: "groups = true\n"})
		leader := waitLeader(b, reps, 30*time.Second)
		waitCreated(b, sc, users+4, 60*time.Second, leader)
		names := targetUserNames(b, sc)

		var takeovers, pushes []time.Duration
		fmt.Printf("\nHA failover: 3 serve replicas, %d users, lease_ttl %v, delta every 1s, %d cores\n", users, ttl, numCPU())
		fmt.Printf("| trial | killed    | new leader | takeover | first push |\n|-------|-----------|------------|----------|------------|\n")
		for trial := range trials {
			killed := time.Now()
			leader.cmd.Process.Kill()
			leader.cmd.Wait()
			name, title := names[trial%len(names)], fmt.Sprintf("Failover %d", trial)
			sl.Modify(b, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: %s\n", name, sl.BaseDN, title))
			var rest []*replica
			for _, r := range reps {
				if r != leader {
					rest = append(rest, r)
				}
			}
			var takeover, push time.Duration
			var next *replica
			for deadline := killed.Add(ttl + 30*time.Second); takeover == 0 || push == 0; {
				if time.Now().After(deadline) {
					b.Fatalf("trial %d: takeover %v, push %v, after %v", trial, takeover, push, time.Since(killed))
				}
				if takeover == 0 {
					for _, r := range rest {
						if st, ok := r.info(); ok && st.Role == "leader" {
							takeover, next = time.Since(killed), r
						}
					}
				}
				if push == 0 && targetTitle(b, sc, name) == title {
					push = time.Since(killed)
				}
				time.Sleep(20 * time.Millisecond)
			}
			takeovers, pushes = append(takeovers, takeover), append(pushes, push)
			fmt.Printf("| %5d | %-9s | %-10s | %6.2f s | %8.2f s |\n", trial+1, leader.name, next.name, takeover.Seconds(), push.Seconds())
			// The killed replica comes back as a follower before the next kill.
			leader.cmd, leader.stderr = startServe(b, leader.cfg)
			leader = waitLeader(b, reps, 30*time.Second)
		}
		mt, xt := medianMax(takeovers)
		mp, xp := medianMax(pushes)
		fmt.Printf("takeover (another replica leads): median %.2f s, max %.2f s\n", mt.Seconds(), xt.Seconds())
		fmt.Printf("failover (kill -9 -> the change at the target): median %.2f s, max %.2f s (lease_ttl %v, %d trials)\n",
			mp.Seconds(), xp.Seconds(), ttl, trials)
		b.ReportMetric(mp.Seconds(), "failover-median-s")
		b.ReportMetric(xp.Seconds(), "failover-max-s")
	}
}

// medianMax returns the median (the lower middle one for an even count) and the max.
func medianMax(ds []time.Duration) (median, maximum time.Duration) {
	s := slices.Clone(ds)
	slices.SortFunc(s, func(a, b time.Duration) int { return cmp.Compare(a, b) })
	return s[(len(s)-1)/2], s[len(s)-1]
}

// targetUserNames returns the userNames the target holds.
func targetUserNames(tb testing.TB, sc *testenv.Scimmy) []string {
	var names []string
	for _, u := range sc.State(tb).Users {
		names = append(names, fmt.Sprint(u["userName"]))
	}
	slices.Sort(names)
	return names
}

// targetTitle returns user name's title at the target ("" when it has none or is not there).
func targetTitle(tb testing.TB, sc *testenv.Scimmy, name string) string {
	for _, u := range sc.State(tb).Users {
		if fmt.Sprint(u["userName"]) == name {
			t, _ := u["title"].(string)
			return t
		}
	}
	return ""
}
