package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// TestServeRunsSCIMAPI runs `ldapscim serve` as a process: the API answers with the synced
// users, and SIGTERM stops API and scheduler cleanly (exit 0).
func TestServeRunsSCIMAPI(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 40, Groups: 3, Seed: 2})}})
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("serve-test-token\n"), 0o600)
	sum := sha256.Sum256([]byte("other-token"))
	cfg := writeConfig(t, sl, dir, fmt.Sprintf(`[schedule]
delta = "@every 1h"
full = ""
[scim]
listen = %q
base_url = "http://%s/scim/v2"
[[scim.tokens]]
name = "file"
token_file = %q
[[scim.tokens]]
name = "hash"
token_sha256 = %q
`, addr, addr, tokFile, hex.EncodeToString(sum[:])))
	cmd, stderr := startServe(t, cfg)
	get := func(tok string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/scim/v2/Users?count=1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body := get("serve-test-token")
		if status == 200 && body["totalResults"] == float64(40) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API never answered with 40 users (last %d %v); stderr:\n%s", status, body, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, _ := get("other-token"); status != 200 {
		t.Errorf("token_sha256 token: %d", status)
	}
	if status, _ := get("wrong"); status != 401 {
		t.Errorf("wrong token: %d", status)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "serve-test-token") {
		t.Errorf("the token is logged:\n%s", stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if status, _ := get("serve-test-token"); status != 0 {
		t.Errorf("the API still answers after shutdown")
	}
}

// TestServeLogsSCIMListeningOnce: each start of serve logs "SCIM API listening" once, with the
// address, and a restart on the same cache and address does the same again.
func TestServeLogsSCIMListeningOnce(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 10, Groups: 1, Seed: 4})}})
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, sl, dir, fmt.Sprintf(`[admin]
listen = %q
[scim]
listen = %q
base_url = "http://%s/scim/v2"
[[scim.tokens]]
name = "t"
token_sha256 = %q
`, freeAddr(t), addr, addr, strings.Repeat("0", 64)))
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `level = "warn"`, `level = "info"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		cmd, stderr := startServe(t, cfg)
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stderr.String(), `msg="pass done"`) {
			if time.Now().After(deadline) {
				t.Fatalf("start %d: no pass in 20 s:\n%s", run, stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if resp, err := http.Get("http://" + addr + "/scim/v2/ServiceProviderConfig"); err != nil {
			t.Fatalf("start %d: the API does not answer: %v", run, err)
		} else {
			resp.Body.Close()
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("start %d: serve exited with %v:\n%s", run, err, stderr)
		}
		log := stderr.String()
		if n := strings.Count(log, `msg="SCIM API listening"`); n != 1 {
			t.Errorf("start %d logged \"SCIM API listening\" %d times, want once:\n%s", run, n, log)
		}
		if !strings.Contains(log, `msg="SCIM API listening" component=scimapi addr=`+addr+" ") {
			t.Errorf("start %d: the listening line lacks addr=%s:\n%s", run, addr, log)
		}
	}
}
