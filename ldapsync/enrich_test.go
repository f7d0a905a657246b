package ldapsync_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

var deptPath = scim.SchemaEnterpriseUser + ":department"

// enrichSource is an HR file in enrich mode joined by externalId (employeeNumber in the
// default mapping), setting department and title, with the env's threshold.
func (e *env) enrichSource() (*hrsync.Source, func(rows ...string) hrsync.Summary) {
	e.t.Helper()
	c := hrcsv.DefaultConfig()
	c.Name, c.Mode, c.Key, c.Join, c.EndDate = "hr", hrcsv.ModeEnrich, "Personnel No", "externalId", "End"
	c.Path = filepath.Join(e.t.TempDir(), "hr.csv")
	c.Mapping = map[string]string{deptPath: "Department", "title": "Job Title"}
	th := ingest.Threshold{MaxDeletes: e.safe.MaxDeletes, MaxDeletePercent: e.safe.MaxDeletePercent}
	src, err := hrsync.New(c, th, e.store, hrsync.Options{Log: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	return src, func(rows ...string) hrsync.Summary {
		e.t.Helper()
		body := "Personnel No;Department;Job Title;End\r\n" + strings.Join(rows, "\r\n") + "\r\n"
		if err := os.WriteFile(c.Path, []byte(body), 0o600); err != nil {
			e.t.Fatal(err)
		}
		sum, err := src.Sync(context.Background())
		if err != nil {
			e.t.Fatalf("enrich pass: %v", err)
		}
		return sum
	}
}

func attr(u *scim.Resource, raw string) any {
	p, _ := scim.ParsePath(scim.UserType, raw)
	v, _ := p.Get(u)
	return v
}

// TestEnrichOverDirectory: an HR file in enrich mode overrides the directory's department
// and title of the users it joins; the directory's passes keep the override (a delta of
// another attribute, a change of the overridden one, a full pass); a row that goes gives the
// directory's current value back; unjoined and ambiguous rows are reported.
func TestEnrichOverDirectory(t *testing.T) {
	ctx := context.Background()
	e := smallEnv(t, nil)
	e.sync(true)
	_, run := e.enrichSource()
	sum := run("E100;Sales;Head of Sales;", "E404;Nowhere;Nobody;")
	if sum.Updated != 1 || sum.Unjoined != 1 || !slices.Equal(sum.UnjoinedKeys, []string{"E404"}) {
		t.Fatalf("first enrich pass: %+v", sum)
	}
	check := func(when, title, dept, display string) {
		t.Helper()
		ann := e.user("ann")
		if ann.String("title") != title || attr(ann, deptPath) != dept || ann.DisplayName() != display || !ann.Active() {
			t.Fatalf("%s: ann has title %q, department %v, displayName %q, active %v; want %q, %q, %q, active",
				when, ann.String("title"), attr(ann, deptPath), ann.DisplayName(), ann.Active(), title, dept, display)
		}
	}
	check("after the enrich pass", "Head of Sales", "Sales", "Ann Smith")
	if bob := e.user("bob"); bob.String("title") != "Engineering Manager" {
		t.Fatalf("bob, whom no row joins: %v", bob.Attributes)
	}
	// A directory delta of another attribute keeps the HR values.
	e.sl.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: displayName\ndisplayName: Ann S.\n")
	if sum := e.sync(false); sum.Updated == 0 {
		t.Fatalf("delta: %+v", sum)
	}
	check("after a delta of displayName", "Head of Sales", "Sales", "Ann S.")
	// The directory changes the title: the HR file's still wins.
	e.sl.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n")
	e.sync(false)
	check("after a delta of title", "Head of Sales", "Sales", "Ann S.")
	e.sync(true)
	check("after a full pass", "Head of Sales", "Sales", "Ann S.")
	// The row goes: the directory's current values come back.
	sum = run("E404;Nowhere;Nobody;")
	if sum.Updated != 1 {
		t.Fatalf("row gone: %+v", sum)
	}
	check("after the row went", "Staff Engineer", "Engineering", "Ann S.")
	if has, _ := e.store.HasOverlays(ctx); has {
		t.Fatal("an overlay is left after its row went")
	}
	// Carl takes ann's employee number: the row joins two users and is skipped.
	e.sl.Modify(t, "dn: uid=carl,ou=people,dc=example,dc=com\nchangetype: modify\nadd: employeeNumber\nemployeeNumber: E100\n")
	e.sync(false)
	sum = run("E100;Sales;Head of Sales;")
	if sum.Ambiguous != 1 || !slices.Equal(sum.AmbiguousKeys, []string{"E100"}) || sum.Updated != 0 {
		t.Fatalf("ambiguous row: %+v", sum)
	}
	check("after an ambiguous row", "Staff Engineer", "Engineering", "Ann S.")
}

// TestEnrichHeldDeactivationSurvivesDirectoryPasses: end-dating more users than the threshold
// allows is held; a directory change of such a user, read by a delta and a full pass, leaves
// the user active (the overlay must not carry the held deactivation). Under the threshold the
// deactivation applies, and a directory delta keeps it.
func TestEnrichHeldDeactivationSurvivesDirectoryPasses(t *testing.T) {
	ctx := context.Background()
	e := smallEnv(t, func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 1, 100 })
	e.sync(true)
	_, run := e.enrichSource()
	sum := run("E100;Sales;Leaver;2020-01-31", "E101;Sales;Leaver;2020-01-31")
	if sum.Held != 2 || sum.Deactivated != 0 {
		t.Fatalf("mass end-dating: %+v", sum)
	}
	if holds, err := e.store.Holds(ctx); err != nil || len(holds) != 2 {
		t.Fatalf("holds: %+v %v", holds, err)
	}
	for _, n := range []string{"ann", "bob"} {
		if u := e.user(n); !u.Active() || u.String("title") != "Leaver" {
			t.Fatalf("%s after the held end-dating: %v", n, u.Attributes)
		}
	}
	e.sl.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Principal\n")
	if sum := e.sync(false); sum.Deactivated != 0 {
		t.Fatalf("delta after the held end-dating deactivated: %+v", sum)
	}
	if ann := e.user("ann"); !ann.Active() || ann.String("title") != "Leaver" {
		t.Fatalf("ann after a directory delta: %v", ann.Attributes)
	}
	if sum := e.sync(true); sum.Deactivated != 0 || !e.user("ann").Active() || !e.user("bob").Active() {
		t.Fatalf("full pass after the held end-dating: %+v", sum)
	}
	// The hold stays as long as the file says so.
	if sum := run("E100;Sales;Leaver;2020-01-31", "E101;Sales;Leaver;2020-01-31"); sum.Held != 2 || sum.Deactivated != 0 {
		t.Fatalf("second enrich pass: %+v", sum)
	}
	// One leaver is under the threshold: applied, and kept by a directory delta of that user.
	sum = run("E101;Sales;Leaver;2020-01-31")
	if sum.Deactivated != 1 || sum.Held != 0 {
		t.Fatalf("one leaver: %+v", sum)
	}
	if e.user("bob").Active() || !e.user("ann").Active() || e.user("ann").String("title") != "Principal" {
		t.Fatalf("after one leaver: bob %v, ann %v", e.user("bob").Attributes, e.user("ann").Attributes)
	}
	e.sl.Modify(t, "dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Director\n")
	e.sync(false)
	if bob := e.user("bob"); bob.Active() || bob.String("title") != "Leaver" {
		t.Fatalf("bob after a directory delta: %v", bob.Attributes)
	}
	ovs, err := e.store.Overlays(ctx, []string{e.user("bob").ID})
	if o := ovs[e.user("bob").ID]; err != nil || o == nil || o.Under["title"] != "Director" {
		t.Fatalf("bob's overlay does not follow the directory: %+v %v", o, err)
	}
}
