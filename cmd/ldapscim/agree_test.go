package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// TestHAServeDatesChangesByTheDirectory runs two `serve` replicas with [ha] max_lag = "4s" on
// one slapd: a changed user shows, on both, the same meta.lastModified, the directory's time of
// the change plus twice max_lag (serve hands [ha] max_lag to the cache), and until then neither
// shows a lastModified later than its clock. scimapi's TestReplicasAgree has the pulls.
func TestHAServeDatesChangesByTheDirectory(t *testing.T) {
	const lag = 4 * time.Second
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 12, Groups: 2, Seed: 21})}})
	etcd := testenv.StartEtcd(t, 1)
	endpoints, _ := json.Marshal(etcd.Endpoints)
	token := "agree-token"
	sum := sha256.Sum256([]byte(token))
	var apis []string
	var logs []*testenv.Output
	for _, name := range []string{"replica-a", "replica-b"} {
		addr := freeAddr(t)
		cfg := writeConfig(t, sl, t.TempDir(), fmt.Sprintf(`[schedule]
delta = "@every 1s"
full = ""
[admin]
listen = %q
[scim]
listen = %q
base_url = "http://%s/scim/v2"
[[scim.tokens]]
name = "t"
token_sha256 = %q
[ha]
etcd_endpoints = %s
election = "/ldapscim-agree/pusher"
node = %q
max_lag = %q
`, freeAddr(t), addr, addr, hex.EncodeToString(sum[:]), endpoints, name, lag.String()))
		_, stderr := startServe(t, cfg)
		apis, logs = append(apis, "http://"+addr+"/scim/v2"), append(logs, stderr)
	}
	why := func() string { return logs[0].String() + "\n" + logs[1].String() }
	// get reads one user from one replica; ok is false until it answers with one.
	get := func(api, filter string) (map[string]any, bool) {
		req, _ := http.NewRequest("GET", api+"/Users?filter="+strings.ReplaceAll(strings.ReplaceAll(filter, " ", "%20"), `"`, "%22"), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		var body struct{ Resources []map[string]any }
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Resources) != 1 {
			return nil, false
		}
		return body.Resources[0], true
	}
	lastModified := func(u map[string]any) time.Time {
		lm, err := time.Parse(time.RFC3339Nano, fmt.Sprint(u["meta"].(map[string]any)["lastModified"]))
		if err != nil {
			t.Fatalf("lastModified of %v: %v", u, err)
		}
		return lm
	}
	waitFor := func(filter string) {
		deadline := time.Now().Add(30 * time.Second)
		for _, api := range apis {
			for {
				u, ok := get(api, filter)
				if ok {
					if lm := lastModified(u); lm.After(time.Now()) {
						t.Fatalf("%s shows lastModified %v, later than its clock", api, lm)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never served %s:\n%s", api, filter, why())
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	waitFor(`externalId eq "E000001"`)
	first, _ := get(apis[0], `externalId eq "E000001"`)
	name := fmt.Sprint(first["userName"])

	time.Sleep(1100 * time.Millisecond) // a new modifyTimestamp second
	changed := time.Now().Truncate(time.Second)
	sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Agreed Officer\n", name, sl.BaseDN))
	waitFor(`title eq "Agreed Officer"`)
	// Past the stored time, both show it as it is.
	time.Sleep(time.Until(changed.Add(2*lag + 2*time.Second)))
	var shown []time.Time
	for _, api := range apis {
		u, ok := get(api, `title eq "Agreed Officer"`)
		if !ok {
			t.Fatalf("%s lost the change", api)
		}
		shown = append(shown, lastModified(u))
	}
	if !shown[0].Equal(shown[1]) {
		t.Errorf("the replicas show lastModified %v and %v", shown[0], shown[1])
	}
	if d := shown[0].Sub(changed); d < 2*lag || d >= 2*lag+time.Second {
		t.Errorf("lastModified %v is %v after the change's second %v, want modifyTimestamp + 2 x max_lag", shown[0], d, changed)
	}
}
