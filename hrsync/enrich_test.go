package hrsync_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

const enrichHeader = "Personnel No;Department;Job Title;Start;End\r\n"

var dept = scim.SchemaEnterpriseUser + ":department"

func enrichConfig() hrcsv.Config {
	c := hrcsv.DefaultConfig()
	c.Name, c.Mode, c.Key, c.Join, c.StartDate, c.EndDate = "hr", hrcsv.ModeEnrich, "Personnel No", "externalId", "Start", "End"
	c.Mapping = map[string]string{dept: "Department", "title": "Job Title"}
	return c
}

// dirUser is a directory user as ldapsync writes it.
func dirUser(i int) *scim.Resource {
	return &scim.Resource{Type: scim.UserType, ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ExternalID: fmt.Sprintf("%d", 1000+i),
		Attributes: map[string]any{"userName": fmt.Sprintf("u%d", i), "title": "Engineer", "active": true}}
}

type enrichEnv struct {
	*env
}

func newEnrichEnv(t *testing.T, th ingest.Threshold, dirUsers int) *enrichEnv {
	t.Helper()
	e := newEnv(t, th)
	src, err := hrsync.New(enrichConfig(), th, e.st, hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	e.src = src
	var us []*scim.Resource
	for i := range dirUsers {
		us = append(us, dirUser(i))
	}
	if _, err := e.st.Apply(context.Background(), cache.Batch{Source: "ldap", Upserts: us}); err != nil {
		t.Fatal(err)
	}
	return &enrichEnv{e}
}

// run imports rows as a scheduled pass does; runForced as `import` does.
func (e *enrichEnv) run(rows ...string) hrsync.Summary {
	e.t.Helper()
	return e.runWith(false, rows...)
}

func (e *enrichEnv) runForced(rows ...string) hrsync.Summary {
	e.t.Helper()
	return e.runWith(true, rows...)
}

func (e *enrichEnv) runWith(force bool, rows ...string) hrsync.Summary {
	e.t.Helper()
	p := e.dir + fmt.Sprintf("/enrich-%d.csv", time.Now().UnixNano())
	if err := writeFile(p, enrichHeader+strings.Join(rows, "\r\n")+"\r\n"); err != nil {
		e.t.Fatal(err)
	}
	f := open(e.t, p)
	sum, err := e.src.Import(context.Background(), f, force, false)
	if err != nil {
		e.t.Fatalf("enrich pass: %v", err)
	}
	return sum
}

func (e *enrichEnv) get(i int) *scim.Resource {
	e.t.Helper()
	u, err := e.st.Get(context.Background(), scim.UserType, dirUser(i).ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func getPath(u *scim.Resource, raw string) any {
	p, _ := scim.ParsePath(scim.UserType, raw)
	v, _ := p.Get(u)
	return v
}

// TestEnrich: rows override the directory's values of the users they join, an unchanged file
// writes nothing but is read again, an end date deactivates, unjoined and ambiguous rows are
// reported, and a row that disappears gives the directory's values back.
func TestEnrich(t *testing.T) {
	ctx := context.Background()
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}, 4)
	// A second directory user with externalId 1003: the row 1003 is ambiguous.
	twin := dirUser(99)
	twin.ExternalID = "1003"
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "ldap", Upserts: []*scim.Resource{twin}}); err != nil {
		t.Fatal(err)
	}
	// A user another source owns (an HR file's contractor) is never joined.
	contractor := dirUser(98)
	contractor.ExternalID = "5555"
	if _, err := e.st.Apply(ctx, cache.Batch{Source: "csv:contractors", Own: true, Upserts: []*scim.Resource{contractor}}); err != nil {
		t.Fatal(err)
	}
	rows := []string{"1000;Sales;Head of Sales;;", "1001;R&D;;;", "1003;Ops;Boss;;", "4242;Ghost;Nobody;;", "5555;Ops;Boss;;"}
	// A dry run reports the updates and writes nothing.
	head := e.journalHead()
	f := open(e.t, writeTemp(t, e.dir, enrichHeader+strings.Join(rows, "\r\n")+"\r\n"))
	dry, err := e.src.Import(ctx, f, false, true)
	if err != nil || !dry.DryRun || dry.Updated != 2 || len(dry.Changes) != 2 || dry.Changes[0].Action != "update" || e.journalHead() != head {
		t.Fatalf("dry run: %+v %v (journal %d → %d)", dry, err, head, e.journalHead())
	}
	sum := e.run(rows...)
	if sum.Updated != 2 || sum.Unjoined != 2 || !reflect.DeepEqual(sum.UnjoinedKeys, []string{"4242", "5555"}) ||
		sum.Ambiguous != 1 || !reflect.DeepEqual(sum.AmbiguousKeys, []string{"1003"}) || sum.Created+sum.Deleted+sum.Deactivated != 0 {
		t.Fatalf("first pass: %+v", sum)
	}
	u0, u1 := e.get(0), e.get(1)
	if u0.String("title") != "Head of Sales" || getPath(u0, dept) != "Sales" || !u0.Active() {
		t.Fatalf("user 0: %v", u0.Attributes)
	}
	if u1.String("title") != "Engineer" || getPath(u1, dept) != "R&D" {
		t.Fatalf("user 1 (an empty title cell keeps the directory's): %v", u1.Attributes)
	}
	if e.get(3).String("title") != "Engineer" || getPath(e.get(3), dept) != nil {
		t.Fatal("an ambiguous row changed a user")
	}
	ovs, err := e.st.Overlays(ctx, []string{u0.ID})
	if err != nil || ovs[u0.ID] == nil || ovs[u0.ID].Source != "csv:hr" || ovs[u0.ID].Under["title"] != "Engineer" {
		t.Fatalf("overlay of user 0: %+v %v", ovs[u0.ID], err)
	}
	// The same file again: a scheduled pass skips it, since nothing changed in the directory
	// (TestEnrichFollowsTheDirectory changes it); forced, as `import` does, it is read, and
	// nothing is written.
	head = e.journalHead()
	if sum := e.run(rows...); !sum.Skipped || e.journalHead() != head {
		t.Fatalf("same file: %+v, journal %d → %d", sum, head, e.journalHead())
	}
	if sum := e.runForced(rows...); sum.Skipped || sum.Unchanged != 2 || sum.Updated != 0 || e.journalHead() != head {
		t.Fatalf("same file, forced: %+v, journal %d → %d", sum, head, e.journalHead())
	}
	// An end date reached deactivates; the row of user 1 disappears: its department goes.
	sum = e.run("1000;Sales;Head of Sales;;2026-12-01")
	if sum.Deactivated != 1 || sum.Updated != 1 || sum.Held != 0 {
		t.Fatalf("leaver pass: %+v", sum)
	}
	if e.get(0).Active() {
		t.Fatal("user 0 is active after its end date")
	}
	if u1 := e.get(1); getPath(u1, dept) != nil || u1.String("title") != "Engineer" {
		t.Fatalf("user 1 after its row went: %v", u1.Attributes)
	}
	// Its row goes too (the file keeps an unjoined one): user 0 has the directory's values back
	// but stays deprovisioned: a leaver who left the export is not re-enabled.
	e.run("4242;Ghost;Nobody;;")
	if u0 := e.get(0); u0.Active() || u0.String("title") != "Engineer" || getPath(u0, dept) != nil {
		t.Fatalf("user 0 after its row went: %v", u0.Attributes)
	}
	// A row that says user 0 works again reactivates them (one user: within the threshold).
	if sum := e.run("1000;Sales;Back;;"); sum.Reactivations != 1 || !e.get(0).Active() || e.get(0).String("title") != "Back" {
		t.Fatalf("reactivation: %+v %v", sum, e.get(0).Attributes)
	}
	e.run("4242;Ghost;Nobody;;")
	if has, _ := e.st.HasOverlays(ctx); has || !e.get(0).Active() {
		t.Fatal("overlays left after an empty file, or user 0 inactive")
	}
}

// TestEnrichMassReactivationIsRefused: an export whose end dates went missing would re-enable
// every leaver; above the threshold none is reactivated, and the summary says why.
func TestEnrichMassReactivationIsRefused(t *testing.T) {
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 1000, MaxDeletePercent: 100}, 40)
	var leavers, back []string
	for i := range 30 {
		leavers = append(leavers, fmt.Sprintf("%d;Sales;Seller;;2026-01-31", 1000+i))
		back = append(back, fmt.Sprintf("%d;Sales;Seller;;", 1000+i))
	}
	if sum := e.run(leavers...); sum.Deactivated != 30 {
		t.Fatalf("leavers: %+v", sum)
	}
	strict, err := hrsync.New(enrichConfig(), ingest.Threshold{MaxDeletes: 5, MaxDeletePercent: 10}, e.st,
		hrsync.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.today }})
	if err != nil {
		t.Fatal(err)
	}
	e.src = strict
	sum := e.run(back...)
	if sum.RefusedReactivations != 30 || sum.Reactivations != 0 || len(sum.Warnings) == 0 || !strings.Contains(sum.Warnings[0], "30 users would be active again") {
		t.Fatalf("mass reactivation: %+v", sum)
	}
	for i := range 30 {
		if e.get(i).Active() {
			t.Fatalf("user %d was reactivated", i)
		}
	}
	// Three at a time is within the threshold.
	if sum := e.run(append(back[:3:3], leavers[3:]...)...); sum.Reactivations != 3 || !e.get(0).Active() || e.get(3).Active() {
		t.Fatalf("three back: %+v", sum)
	}
}

// TestEnrichHeldDeactivation: a mass end-dating crosses the threshold and is held; the stored
// overlays then carry no deactivation, so that a directory pass merging them (as ldapsync
// does) keeps the users active, and the other values of the rows apply.
func TestEnrichHeldDeactivation(t *testing.T) {
	ctx := context.Background()
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 2, MaxDeletePercent: 100}, 10)
	var rows []string
	for i := range 5 {
		rows = append(rows, fmt.Sprintf("%d;Sales;Leaver;;2026-11-30", 1000+i))
	}
	sum := e.run(rows...)
	if sum.Held != 5 || sum.Deactivated != 0 {
		t.Fatalf("mass end-dating: %+v", sum)
	}
	holds, err := e.st.Holds(ctx)
	if err != nil || len(holds) != 5 {
		t.Fatalf("holds: %d %v", len(holds), err)
	}
	for i := range 5 {
		u := e.get(i)
		if !u.Active() || u.String("title") != "Leaver" {
			t.Fatalf("user %d: %v", i, u.Attributes)
		}
		ovs, err := e.st.Overlays(ctx, []string{u.ID})
		if err != nil {
			t.Fatal(err)
		}
		o := ovs[u.ID]
		if o == nil || o.Set["title"] != "Leaver" {
			t.Fatalf("overlay of user %d: %+v", i, o)
		}
		if _, ok := o.Set["active"]; ok {
			t.Fatalf("overlay of held user %d sets active: %+v", i, o.Set)
		}
		// A directory pass of this user: a fresh entry with a new title, merged.
		fresh := dirUser(i)
		fresh.Attributes["title"] = "Changed in the directory"
		ingest.MergeOverlay(fresh, o)
		if !fresh.Active() {
			t.Fatalf("user %d: a directory pass would apply the held deactivation", i)
		}
	}
	// The next pass holds them again and still writes no deactivation.
	if sum := e.run(rows...); sum.Held != 5 || sum.Deactivated != 0 {
		t.Fatalf("second pass: %+v", sum)
	}
	// An admin approves user 0's hold: the overlay takes the deactivation, so a directory
	// pass keeps it.
	if _, err := ingest.ApproveHolds(ctx, e.st, "ldap", []string{dirUser(0).ID}); err != nil {
		t.Fatal(err)
	}
	ovs, err := e.st.Overlays(ctx, []string{dirUser(0).ID})
	if err != nil || ovs[dirUser(0).ID].Set["active"] != false || ovs[dirUser(0).ID].Under["active"] != true {
		t.Fatalf("overlay of user 0 after the approval: %+v %v", ovs[dirUser(0).ID], err)
	}
	if fresh := dirUser(0); ingest.MergeOverlay(fresh, ovs[dirUser(0).ID]) != nil && fresh.Active() {
		t.Fatal("a directory pass would reactivate the approved leaver")
	}
	// Two leavers are under the threshold: applied (user 0's was), and their overlays carry it.
	sum = e.run(rows[:2]...)
	if sum.Deactivated != 1 || sum.Held != 0 || sum.Unchanged != 1 {
		t.Fatalf("two leavers: %+v", sum)
	}
	for i := range 2 {
		if e.get(i).Active() {
			t.Fatalf("user %d active", i)
		}
		ovs, _ := e.st.Overlays(ctx, []string{dirUser(i).ID})
		if ovs[dirUser(i).ID].Set["active"] != false {
			t.Fatalf("overlay of deactivated user %d: %+v", i, ovs[dirUser(i).ID])
		}
	}
}

// TestEnrichConfig: the join attribute and the paths enrich mode takes.
func TestEnrichConfig(t *testing.T) {
	for _, c := range []struct {
		join, path, want string
	}{
		{"mail", "title", "join"},
		{"externalId", `emails[type eq "work"].value`, "multi-valued"},
		{"userName", scim.SchemaEnterpriseUser + ":manager", "manager"},
	} {
		cfg := enrichConfig()
		cfg.Join = c.join
		cfg.Mapping = map[string]string{c.path: "Job Title"}
		_, err := hrsync.New(cfg, ingest.Threshold{}, nil, hrsync.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("join %s, path %s: %v, want an error naming %q", c.join, c.path, err, c.want)
		}
	}
}

func writeTemp(t *testing.T, dir, content string) string {
	t.Helper()
	p := fmt.Sprintf("%s/dry-%d.csv", dir, time.Now().UnixNano())
	if err := writeFile(p, content); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(p, content string) error { return os.WriteFile(p, []byte(content), 0o600) }

func open(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func (e *enrichEnv) journalHead() uint64 {
	e.t.Helper()
	st, err := e.st.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st.JournalHead
}

// TestTruncatedEnrichFileKeepsTheValues: a file that no longer lists most of the users it
// enriched (a truncated export) gives none of them the directory's values back: with the
// values their roles would go. Under the threshold, users whose rows left are reverted.
func TestTruncatedEnrichFileKeepsTheValues(t *testing.T) {
	e := newEnrichEnv(t, ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 20}, 50)
	var rows []string
	for i := range 50 {
		rows = append(rows, fmt.Sprintf("%d;Finance;Analyst;;", 1000+i))
	}
	if sum := e.run(rows...); sum.Updated != 50 {
		t.Fatalf("first file: %+v", sum)
	}
	sum := e.run(rows[:5]...) // 45 of 50 gone
	if sum.KeptOverlays != 45 || sum.Updated != 0 || len(sum.Warnings) == 0 {
		t.Fatalf("truncated file: %+v; want 45 users kept with the file's values and a warning", sum)
	}
	for _, i := range []int{5, 49} {
		u := e.get(i)
		if u.Attributes["title"] != "Analyst" || u.Attributes[scim.SchemaEnterpriseUser].(map[string]any)["department"] != "Finance" {
			t.Fatalf("user %d lost the file's values after a truncated file: %v", i, u.Attributes)
		}
	}
	// A few rows gone (5 of 50, under both limits): those users get the directory's values.
	sum = e.run(rows[:45]...)
	if sum.KeptOverlays != 0 || sum.Updated != 5 {
		t.Fatalf("5 rows gone: %+v; want their 5 users reverted", sum)
	}
	if u := e.get(47); u.Attributes["title"] != "Engineer" {
		t.Fatalf("user 47 keeps %v after its row left within the limits", u.Attributes["title"])
	}
	if u := e.get(3); u.Attributes["title"] != "Analyst" {
		t.Fatalf("user 3, still in the file, has %v", u.Attributes["title"])
	}
}
