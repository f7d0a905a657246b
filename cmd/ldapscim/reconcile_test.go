package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/testenv"
)

// reconcileLDIF: four users with a title, eng (u00, u01) and all (every user).
func reconcileLDIF(t *testing.T) string {
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range 4 {
		fmt.Fprintf(&b, "dn: uid=u%02d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%02d\ncn: User %02d\nsn: %02d\ntitle: Engineer\n\n", i, i, i, i)
	}
	b.WriteString("dn: cn=eng,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: eng\nmember: uid=u00,ou=people,dc=example,dc=com\nmember: uid=u01,ou=people,dc=example,dc=com\n\n")
	b.WriteString("dn: cn=all,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: all\n")
	for i := range 4 {
		fmt.Fprintf(&b, "member: uid=u%02d,ou=people,dc=example,dc=com\n", i)
	}
	p := filepath.Join(t.TempDir(), "reconcile.ldif")
	if err := os.WriteFile(p, []byte(b.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// editTarget changes the SCIMMY target by hand.
func editTarget(t *testing.T, sc *testenv.Scimmy, method, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	if body == nil {
		b = nil
	}
	req, _ := http.NewRequest(method, sc.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+sc.Token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
}

// byName returns the target's users by userName and groups by displayName, each group with
// its members' userNames, sorted.
func byName(t *testing.T, sc *testenv.Scimmy) (map[string]map[string]any, map[string][]string) {
	st := sc.State(t)
	users, names := map[string]map[string]any{}, map[string]string{}
	for _, u := range st.Users {
		users[fmt.Sprint(u["userName"])] = u
		names[fmt.Sprint(u["id"])] = fmt.Sprint(u["userName"])
	}
	groups := map[string][]string{}
	for _, g := range st.Groups {
		ms := []string{}
		list, _ := g["members"].([]any)
		for _, m := range list {
			ms = append(ms, names[fmt.Sprint(m.(map[string]any)["value"])])
		}
		slices.Sort(ms)
		groups[fmt.Sprint(g["displayName"])] = ms
	}
	return users, groups
}

// `ldapscim reconcile` through a running serve (its admin API): the drift test of issue 14.
// At the target a user is deleted, a title changed, a member removed and an unrelated user
// created; reconcile reports the three drifts and the unrelated user as unmanaged, --apply
// fixes the three and leaves that user alone, and afterwards there is no drift, with serve
// running or not.
func TestReconcileCommand(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{reconcileLDIF(t)}})
	sc := testenv.StartScimmy(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfig(t, sl, dir, strings.Replace(pushConfig(sc), `listen = ""`, fmt.Sprintf("listen = %q", addr), 1))
	serve, stderr := startServe(t, cfg)
	waitReadyz(t, "http://"+addr, stderr)
	deadline := time.Now().Add(time.Minute)
	for {
		_, g := byName(t, sc)
		if len(g["all"]) == 4 && len(g["eng"]) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("push did not finish: %v\n%s", g, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _, err := runCLI(t, "reconcile", "--config", cfg, "--target", "scimmy")
	if err != nil || !strings.Contains(out, "the target is in line with the cache") {
		t.Fatalf("reconcile after push: %v\n%s", err, out)
	}

	u, _ := byName(t, sc)
	var gid string
	for _, g := range sc.State(t).Groups {
		if g["displayName"] == "eng" {
			gid = fmt.Sprint(g["id"])
		}
	}
	patch := func(op map[string]any) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": []any{op}}
	}
	editTarget(t, sc, "DELETE", "/Users/"+fmt.Sprint(u["u03"]["id"]), nil)
	editTarget(t, sc, "PATCH", "/Users/"+fmt.Sprint(u["u01"]["id"]), patch(map[string]any{"op": "replace", "path": "title", "value": "Hand-edited"}))
	editTarget(t, sc, "PATCH", "/Groups/"+gid, patch(map[string]any{"op": "remove", "path": fmt.Sprintf(`members[value eq "%s"]`, u["u00"]["id"])}))
	editTarget(t, sc, "POST", "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "zed", "active": true})

	out, _, err = runCLI(t, "reconcile", "--config", cfg, "--target", "scimmy")
	want := []string{"  missing   user  u03 -> create\n", "  differing user  u01: differs in title -> update\n",
		"  differing group eng: differs in members; members +1 -0 -> update\n",
		"drift: 1 missing, 2 differing, 0 extra (0 held); 0 adopted by name; 1 unmanaged",
		"nothing was changed; run with --apply to correct it"}
	for _, w := range want {
		if err != nil || !strings.Contains(out, w) {
			t.Fatalf("reconcile: %v; want %q in\n%s", err, w, out)
		}
	}
	if u, _ := byName(t, sc); u["u01"]["title"] != "Hand-edited" || u["u03"] != nil {
		t.Fatal("a dry run changed the target")
	}
	out, _, err = runCLI(t, "reconcile", "--apply", "--target", "scimmy", "--config", cfg) // flags in any order
	if err != nil || !strings.Contains(out, "corrected all but the held ones (0 failed)") {
		t.Fatalf("reconcile --apply: %v\n%s", err, out)
	}
	users, groups := byName(t, sc)
	if len(users) != 5 || users["u03"] == nil || users["u01"]["title"] != "Engineer" || users["zed"]["active"] != true {
		t.Fatalf("after --apply: %v", users)
	}
	if !slices.Equal(groups["eng"], []string{"u00", "u01"}) || !slices.Equal(groups["all"], []string{"u00", "u01", "u02", "u03"}) {
		t.Fatalf("after --apply: groups %v", groups)
	}
	out, _, err = runCLI(t, "targets", "status", "--config", cfg)
	if err != nil || !regexp.MustCompile(`(?m)^scimmy: last reconciliation \S+ \(requested\): 1 missing, 2 differing, 0 extra \(0 held\), 1 unmanaged; corrected$`).MatchString(out) {
		t.Fatalf("targets status after --apply: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "reconcile", "--config", cfg, "--target", "scimmy")
	if err != nil || !strings.Contains(out, "the target is in line with the cache") || !strings.Contains(out, "1 unmanaged") {
		t.Fatalf("second reconcile: %v\n%s", err, out)
	}
	if _, _, err = runCLI(t, "reconcile", "--config", cfg, "--target", "nope"); err == nil || exitCode(err) != 2 ||
		!strings.Contains(err.Error(), `no [[targets]] entry is named "nope"`) {
		t.Fatalf("unknown target: %v", err)
	}
	if _, _, err = runCLI(t, "reconcile", "--config", cfg); err == nil || exitCode(err) != 2 {
		t.Fatalf("without --target: %v", err)
	}

	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr.String())
	}
	// Without serve the command opens the cache itself, with the same answer.
	out, _, err = runCLI(t, "reconcile", "--config", cfg, "--target", "scimmy", "--json")
	var rep map[string]any
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep["missing"] != float64(0) || rep["unmanaged"] != float64(1) {
		t.Fatalf("reconcile without serve: %v\n%s", err, out)
	}
}
