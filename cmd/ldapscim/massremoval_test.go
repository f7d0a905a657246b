package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/scim"
)

// `deletes list` shows a held mass removal of members with the group's name and how many are
// held; `deletes approve --all` removes just those members.
func TestDeletesListAndApproveMemberHold(t *testing.T) {
	cfg := evilCache(t)
	st, err := cache.Open(cache.Options{Dir: filepath.Join(filepath.Dir(cfg), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := &scim.Resource{Type: scim.GroupType, ID: "g1", DN: "cn=staff,dc=x", Attributes: map[string]any{"displayName": "staff"}}
	var held []string
	for i := range 40 {
		id := fmt.Sprintf("m%02d", i)
		u := &scim.Resource{Type: scim.UserType, ID: id, DN: "uid=" + id + ",dc=x",
			Attributes: map[string]any{"userName": id, "active": true}}
		if _, err := st.Apply(ctx, cache.Batch{Pass: "p1", Upserts: []*scim.Resource{u}}); err != nil {
			t.Fatal(err)
		}
		g.Members = append(g.Members, scim.Member{Value: id, Type: scim.UserType})
		if i >= 10 {
			held = append(held, id)
		}
	}
	holds := []cache.Hold{{ID: "g1", Type: scim.GroupType, Name: "staff", DN: g.DN, Pass: "p2", Kind: cache.HoldMembers,
		Members: held, Reason: "remove members: pass would remove 30 of 40 members", HeldAt: time.Unix(0, 0).UTC()}}
	if _, err := st.Apply(ctx, cache.Batch{Pass: "p2", Upserts: []*scim.Resource{g}, Holds: &holds}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "deletes", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "staff") || !strings.Contains(out, "30 of 40") || !strings.Contains(out, "1 held") {
		t.Fatalf("deletes list: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "deletes", "approve", "--config", cfg, "--all"); err != nil {
		t.Fatal(err)
	}
	st, err = cache.Open(cache.Options{Dir: filepath.Join(filepath.Dir(cfg), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.MemberCount(ctx, "g1"); err != nil || n != 10 {
		t.Fatalf("staff has %d members after approval (%v), want 10", n, err)
	}
	if hs, err := st.Holds(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("holds after approve --all: %+v, %v", hs, err)
	}
}

// TestMassMemberRemovalShownEverywhere: 30 of a 40-member group's members leave it in slapd
// (max_delete_percent = 50). The pass through serve keeps them and says so in its summary,
// the alert, `plan`, `deletes list` and /status; `deletes approve` says how many members it
// removed, and only then does the group shrink.
func TestMassMemberRemovalShownEverywhere(t *testing.T) {
	var ldif strings.Builder
	ldif.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	ldif.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	group := "dn: cn=staff,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: staff\n"
	var removal strings.Builder
	removal.WriteString("dn: cn=staff,ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\n")
	for i := range 40 {
		dn := fmt.Sprintf("uid=m%02d,ou=people,dc=example,dc=com", i)
		fmt.Fprintf(&ldif, "dn: %s\nobjectClass: inetOrgPerson\nuid: m%02d\ncn: M %02d\nsn: %02d\n\n", dn, i, i, i)
		group += "member: " + dn + "\n"
		if i >= 10 {
			removal.WriteString("member: " + dn + "\n")
		}
	}
	ldif.WriteString(group + "\n")
	dir := t.TempDir()
	ldifPath := filepath.Join(dir, "staff.ldif")
	if err := os.WriteFile(ldifPath, []byte(ldif.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{ldifPath}})

	chat := startChat(t)
	addr := freeAddr(t)
	cfg := writeConfig(t, sl, dir, fmt.Sprintf("[schedule]\ndelta = \"@every 1h\"\nfull = \"\"\n[admin]\nlisten = %q\n[[webhooks]]\nname = \"ops-chat\"\nurl = %q\nformat = \"slack\"\n", addr, chat.srv.URL))
	cfg = strings.Replace(mustRead(t, cfg), "max_delete_percent = 100.0", "max_delete_percent = 50.0", 1)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLI(t, "sync", "--config", cfgPath, "--full"); err != nil || !strings.Contains(out, "created 41") {
		t.Fatalf("first sync: %v\n%s", err, out)
	}
	cmd, stderr := startServe(t, cfgPath)
	waitFirstPass(t, "http://"+addr, stderr)
	sl.Modify(t, removal.String())

	out, _, err := runCLI(t, "plan", "--config", cfgPath, "--full")
	if err != nil || !regexp.MustCompile(`(?m)^hold +Group +staff .*would remove 30 of 40 members`).MatchString(out) {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "sync", "--config", cfgPath, "--full")
	if err != nil || !strings.Contains(out, "held member removals 30") || !strings.Contains(out, "deletes approve") {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "deletes", "list", "--config", cfgPath)
	if err != nil || !regexp.MustCompile(`(?m)^\S+ +Group +30 member\(s\) +staff `).MatchString(out) {
		t.Fatalf("deletes list: %v\n%s", err, out)
	}
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "30 member removal(s)") {
		t.Fatalf("/status: %d\n%s", resp.StatusCode, page)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		alerts := chat.texts()
		got := len(alerts) > 0 && strings.Contains(alerts[len(alerts)-1], "30 group member removal(s)")
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert naming the held member removals: %q", chat.texts())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _, err = runCLI(t, "deletes", "approve", "--config", cfgPath, "--all")
	if err != nil || out != "approved: deleted 0, deactivated 0, removed 30 group member(s)\n" {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exit: %v\n%s", err, stderr.String())
	}
	st, err := cache.Open(cache.Options{Dir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gs, err := st.List(context.Background(), scim.GroupType, "", 10)
	if err != nil || len(gs) != 1 {
		t.Fatalf("groups: %v, %v", gs, err)
	}
	if n, err := st.MemberCount(context.Background(), gs[0].ID); err != nil || n != 10 {
		t.Fatalf("staff has %d members after approval (%v), want 10", n, err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
