package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// hrExport writes an HR export as Excel writes it in a European locale: a BOM, ';', CRLF,
// quoted fields with the delimiter, quotes and a line break, accents.
func hrExport(t *testing.T, dir, name string, rows ...string) string {
	t.Helper()
	head := "Employee ID;Email;First Name;Last Name;Job Title;Manager ID;Start Date;End Date\r\n"
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("\xef\xbb\xbf"+head+strings.Join(rows, "\r\n")+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func csvSection(path string) string {
	return fmt.Sprintf(`[[csv]]
name = "hr"
path = %q
key = "Employee ID"
start_date = "Start Date"
end_date = "End Date"
[csv.mapping]
userName = "Email"
"name.givenName" = "First Name"
"name.familyName" = "Last Name"
title = "Job Title"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager" = "Manager ID"
`, path)
}

var contractors = []string{
	"C001;jürgen.weiß@example.com;Jürgen;Weiß;\"Berater; \"\"Einkauf\"\"\r\nund Logistik\";;2020-01-01;",
	"C002;zoe@example.com;Zoë;Ødegård;Contractor;C001;2020-01-01;",
	"C003;leaver@example.com;Lea;Ver;Contractor;C001;2020-01-01;2021-06-30",
	"C004;new@example.com;Nia;Ewe;Contractor;C001;2020-01-01;2099-12-31",
}

// TestImportCommand: `import` of a real Excel-style export beside the directory, its dry
// run, a refused file, and the directory's passes leaving the HR users alone.
func TestImportCommand(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 20, Groups: 2, Seed: 3})}})
	dir := t.TempDir()
	file := hrExport(t, dir, "hr.csv", contractors[:3]...)
	rule := "[[rules]]\nname = \"contractors\"\nwhen = 'title eq \"Contractor\"'\nroles = [\"contractor\"]\ngroups = [\"Contractors\"]\n"
	cfg := writeConfig(t, sl, dir, "[admin]\nlisten = \"\"\n"+rule+csvSection(file))
	if _, _, err := runCLI(t, "sync", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "import", "--config", cfg, "--source", "hr", file, "--dry-run")
	if err != nil || !strings.Contains(out, "dry run of an import, nothing was written: csv:hr") || !strings.Contains(out, "created 3") ||
		!strings.Contains(out, "create     Jürgen Weiß") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "explain", "--config", cfg, "zoe@example.com"); err == nil {
		t.Fatal("the dry run wrote zoe")
	}
	out, _, err = runCLI(t, "import", "--config", file, "--source", "hr", file)
	if err == nil {
		t.Fatalf("a CSV file as the config: %s", out)
	}
	out, _, err = runCLI(t, "import", file, "--source", "hr", "--config", cfg)
	if err != nil || !strings.Contains(out, "created 3") || !strings.Contains(out, "rows") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "explain", "--config", cfg, "zoe@example.com")
	if err != nil || !strings.Contains(out, `"familyName": "Ødegård"`) || !strings.Contains(out, `externalId: "C002"`) ||
		!strings.Contains(out, "source: csv:hr (every attribute)") {
		t.Fatalf("explain zoe: %v\n%s", err, out)
	}
	out, _, _ = runCLI(t, "explain", "--config", cfg, "leaver@example.com")
	if !strings.Contains(out, `"active": false`) {
		t.Fatalf("a leaver whose end date passed is active:\n%s", out)
	}
	// A bad file changes nothing and says where.
	bad := hrExport(t, dir, "bad.csv", contractors[0], "C002;;Zoë;Ødegård;;;2020-01-01;", "C001;dup@example.com;D;U;;;;")
	_, _, err = runCLI(t, "import", "--config", cfg, "--source", "hr", bad)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), `line 4, column "Email": empty userName`) ||
		!strings.Contains(err.Error(), `line 5, column "Employee ID": duplicate key "C001" (first on line 2)`) {
		t.Fatalf("bad file: %v", err)
	}
	if _, _, err := runCLI(t, "explain", "--config", cfg, "zoe@example.com"); err != nil {
		t.Fatalf("a refused file deleted zoe: %v", err)
	}
	if _, _, err := runCLI(t, "import", "--config", cfg, "--source", "payroll", file); err == nil || exitCode(err) != 2 ||
		!strings.Contains(err.Error(), `no [[csv]] source is named "payroll"`) {
		t.Fatalf("unknown source: %v", err)
	}
	// The directory's full pass deletes none of them, and leaves them in the rules' groups.
	out, _, err = runCLI(t, "sync", "--config", cfg, "--full")
	if err != nil || !strings.Contains(out, "deleted 0") || !strings.Contains(out, "held 0") {
		t.Fatalf("full pass after the import: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "explain", "--config", cfg, "zoe@example.com")
	if err != nil || !strings.Contains(out, `rule "contractors" MATCHES: roles [contractor], groups [Contractors]`) ||
		!strings.Contains(out, "groups (direct): Contractors;") {
		t.Fatalf("zoe and the rules after a directory pass: %v\n%s", err, out)
	}
	// A row gone is a deletion of that user only.
	out, _, err = runCLI(t, "import", "--config", cfg, "--source", "hr", hrExport(t, dir, "two.csv", contractors[:2]...))
	if err != nil || !strings.Contains(out, "deleted 1") {
		t.Fatalf("one row gone: %v\n%s", err, out)
	}
}

// TestHRUsersReachTheTargetThroughServe: serve reads the [[csv]] file on its schedule and
// pushes its users to a real SCIM server (SCIMMY); `import` goes through serve's admin API.
func TestHRUsersReachTheTargetThroughServe(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 10, Groups: 1, Seed: 4})}})
	sc := testenv.StartScimmy(t)
	dir := t.TempDir()
	file := hrExport(t, dir, "hr.csv", contractors[:2]...)
	addr := freeAddr(t)
	cfg := writeConfig(t, sl, dir, strings.Replace(pushConfig(sc), `listen = ""`, fmt.Sprintf("listen = %q", addr), 1)+csvSection(file))
	_, stderr := startServe(t, cfg)
	waitReadyz(t, "http://"+addr, stderr)
	want := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			users := sc.State(t).Users
			names := map[string]bool{}
			for _, u := range users {
				names[fmt.Sprint(u["userName"])] = true
			}
			if len(users) == n && names["zoe@example.com"] {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the target has %d users (want %d with zoe); serve:\n%s", what, len(users), n, stderr.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	want(12, "the first pass")
	out, _, err := runCLI(t, "import", "--config", cfg, "--source", "hr", hrExport(t, dir, "more.csv", contractors[0], contractors[1], contractors[3]))
	if err != nil || !strings.Contains(out, "created 1") {
		t.Fatalf("import through serve: %v\n%s", err, out)
	}
	want(13, "after the import")
}

// TestKill9DuringImport: kill -9 of `import` of 100k rows into an empty cache, once while its
// bulk load writes the cache's tables and once while it reads the file, then the same import
// again: every row is a user exactly once, created once, and nothing was deleted.
func TestKill9DuringImport(t *testing.T) {
	const n = 100000
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{adminLDIF(t, 1)}})
	dir := t.TempDir()
	file := filepath.Join(dir, "hr.csv")
	writeHRExport(t, file, n, -1)
	cfg := writeConfig(t, sl, dir, "[admin]\nlisten = \"\"\n"+csvSection(file))
	// How long a whole import takes here, in a cache of its own.
	probeDir := t.TempDir()
	probe := writeConfig(t, sl, probeDir, "[admin]\nlisten = \"\"\n"+csvSection(file))
	start := time.Now()
	if out, err := command(context.Background(), "import", "--config", probe, "--source", "hr", file).CombinedOutput(); err != nil {
		t.Fatalf("probe import: %v\n%s", err, out)
	}
	took := time.Since(start)
	cacheDir := filepath.Join(dir, "cache")
	marker := filepath.Join(cacheDir, "load.incomplete") // cache/load.go: while tables are written

	// 1. Killed while the bulk load writes its tables: the next open empties the cache.
	imp := command(context.Background(), "import", "--config", cfg, "--source", "hr", file)
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10*took + 30*time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			imp.Process.Kill()
			t.Fatal("the import never wrote its tables as a bulk load")
		}
		time.Sleep(time.Millisecond)
	}
	imp.Process.Signal(syscall.SIGKILL)
	if err := imp.Wait(); err == nil {
		t.Fatal("the import finished before the kill")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the kill did not land while the tables were written: %v", err)
	}
	if written := len(testenv.ReadCache(t, cacheDir).Versions); written != 0 {
		t.Fatalf("%d users in the cache after a kill in the middle of its first import; an interrupted load must leave none", written)
	}

	// 2. Killed while it reads the file.
	imp = command(context.Background(), "import", "--config", cfg, "--source", "hr", file)
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(took / 3)
	imp.Process.Signal(syscall.SIGKILL)
	if err := imp.Wait(); err == nil {
		t.Fatal("the import finished before the kill")
	}
	t.Logf("killed at %v of an import that takes %v: %d users written", took/3, took, len(testenv.ReadCache(t, cacheDir).Versions))

	out, _, err := runCLI(t, "import", "--config", cfg, "--source", "hr", file)
	if err != nil || !strings.Contains(out, "deleted 0") {
		t.Fatalf("the import again: %v\n%s", err, out)
	}
	cs := testenv.ReadCache(t, cacheDir) // no directory pass ran on this cache: HR users only
	if len(cs.Versions) != n {
		t.Fatalf("%d users after the import again, want %d", len(cs.Versions), n)
	}
	created := map[string]int{}
	for _, r := range cs.Journal {
		switch r.Op {
		case cache.OpCreated:
			created[r.ID]++
		case cache.OpDeleted, cache.OpDeactivated:
			t.Fatalf("journal: %s %s", r.Op, r.ID)
		}
	}
	for id, c := range created {
		if c != 1 {
			t.Fatalf("%s created %d times", id, c)
		}
	}
	if len(created) != n {
		t.Fatalf("%d users created, want %d", len(created), n)
	}
}

// userIDByExternalID opens the cache in dir (no command may hold it) and returns the id of
// the user with that externalId.
func userIDByExternalID(t *testing.T, dir, externalID string) string {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids, err := st.Lookup(context.Background(), cache.IndexExternalID, externalID)
	if err != nil || len(ids) != 1 {
		t.Fatalf("users with externalId %s: %v %v", externalID, ids, err)
	}
	return ids[0]
}

// TestImportEnrichCommand: `import` of an HR file in enrich mode over the sample directory:
// the joined user takes its department and title, explain says they come from the file,
// unjoined rows are printed, the directory's passes keep the values, a leaver is inactive, and
// a file without the row gives the directory's values back.
func TestImportEnrichCommand(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 20, Groups: 2, Seed: 3})}})
	dir := t.TempDir()
	write := func(rows ...string) string {
		p := filepath.Join(dir, "enrich.csv")
		if err := os.WriteFile(p, []byte("Personnel No;Department;Job Title;End\r\n"+strings.Join(rows, "\r\n")+"\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("E000001;Payroll Dept;Chief Payroll Officer;", "E000002;Leavers;Gone;2020-01-31", "X999;Nowhere;Nobody;")
	section := fmt.Sprintf(`[[csv]]
name = "payroll"
path = %q
mode = "enrich"
key = "Personnel No"
join = "externalId"
end_date = "End"
[csv.mapping]
title = "Job Title"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "Department"
`, file)
	cfg := writeConfig(t, sl, dir, "[admin]\nlisten = \"\"\n"+section)
	if _, _, err := runCLI(t, "sync", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	first, second := userIDByExternalID(t, cacheDir, "E000001"), userIDByExternalID(t, cacheDir, "E000002")
	out, _, err := runCLI(t, "import", "--config", cfg, "--source", "payroll", file)
	if err != nil || !strings.Contains(out, "updated 1, deactivated 1") || !strings.Contains(out, "1 row(s) join no directory user: X999") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	explain := func(id string) string {
		t.Helper()
		out, _, err := runCLI(t, "explain", "--config", cfg, id)
		if err != nil {
			t.Fatalf("explain %s: %v", id, err)
		}
		return out
	}
	out = explain(first)
	if !strings.Contains(out, `"title": "Chief Payroll Officer"`) || !strings.Contains(out, `"department": "Payroll Dept"`) ||
		!strings.Contains(out, "source: ldap (every attribute but: title from csv:payroll, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department from csv:payroll)") {
		t.Fatalf("explain the enriched user:\n%s", out)
	}
	if out := explain(second); !strings.Contains(out, `"active": false`) {
		t.Fatalf("the leaver is active:\n%s", out)
	}
	// The directory's full pass keeps the values, and the leaver inactive.
	if out, _, err := runCLI(t, "sync", "--config", cfg, "--full"); err != nil || !strings.Contains(out, "held 0") {
		t.Fatalf("full pass: %v\n%s", err, out)
	}
	if out := explain(first); !strings.Contains(out, `"title": "Chief Payroll Officer"`) {
		t.Fatalf("the full pass dropped the HR title:\n%s", out)
	}
	if out := explain(second); !strings.Contains(out, `"active": false`) {
		t.Fatalf("the full pass reactivated the leaver:\n%s", out)
	}
	// Without the rows, the directory's values are back.
	out, _, err = runCLI(t, "import", "--config", cfg, "--source", "payroll", write("X999;Nowhere;Nobody;"))
	if err != nil || !strings.Contains(out, "updated 2") {
		t.Fatalf("import without the rows: %v\n%s", err, out)
	}
	out = explain(first)
	if strings.Contains(out, "Chief Payroll Officer") || strings.Contains(out, "Payroll Dept") || !strings.Contains(out, "source: ldap (every attribute)") {
		t.Fatalf("the directory's values are not back:\n%s", out)
	}
	// A leaver whose row left the export stays deprovisioned; only the deactivation remains.
	if out := explain(second); !strings.Contains(out, `"active": false`) || !strings.Contains(out, "active from csv:payroll") {
		t.Fatalf("the leaver's row went and the leaver is active again:\n%s", out)
	}
}
