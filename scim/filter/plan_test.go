package filter

import (
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

func TestPlan(t *testing.T) {
	tests := []struct{ filter, want string }{
		{`userName eq "x"`, `index(userName eq "x")`},
		{`USERNAME Eq "X"`, `index(userName eq "X")`},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`, `index(userName eq "x")`},
		{`id eq "abc"`, `index(id eq "abc")`},
		{`urn:ietf:params:scim:schemas:core:2.0:Group:id eq "abc"`, `index(id eq "abc")`},
		{`externalId eq 123abc`, `index(externalId eq "123abc")`},
		{`externalId eq 12345`, `index(externalId eq "12345")`},
		{`displayName eq "Admins"`, `index(displayName eq "Admins")`},
		{`emails.value eq "a@b.c"`, `index(emails.value eq "a@b.c")`},
		{`emails eq "a@b.c"`, `index(emails.value eq "a@b.c")`},
		{`emails[value eq "a@b.c"]`, `index(emails.value eq "a@b.c")`},
		{`emails[type eq "work"].value eq "a@b.c"`, `index(emails.value eq "a@b.c")`},
		{`emails[type eq "work" and value eq "a@b.c"]`, `index(emails.value eq "a@b.c")`},
		{`emails[value eq "a" or value eq "b"]`, `union(index(emails.value eq "a"), index(emails.value eq "b"))`},
		{`emails[value eq "a" or type eq "work"]`, `scan`},
		{`members.value eq "u1"`, `index(members.value eq "u1")`},
		{`members[value eq "u1"]`, `index(members.value eq "u1")`},
		{`members eq "u1"`, `index(members.value eq "u1")`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1"`, `index(manager.value eq "m1")`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m1"`, `index(manager.value eq "m1")`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName eq "m1"`, `scan`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value ne "m1"`, `scan`},
		{`manager.value eq "m1"`, `scan`}, // not the enterprise manager
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, `index(meta.lastModified gt "2011-05-13T04:42:34Z")`},
		{`meta.lastModified ge "2011-05-13T04:42:34Z"`, `index(meta.lastModified ge "2011-05-13T04:42:34Z")`},
		{`meta.lastModified lt "2011-05-13T04:42:34Z"`, `scan`},
		{`meta.lastModified gt "yesterday"`, `scan`},
		// and → intersect, dropping what is not indexable; or → union unless a branch scans.
		{`userName eq "x" and externalId eq "y"`, `intersect(index(userName eq "x"), index(externalId eq "y"))`},
		{`userName eq "x" and title pr`, `index(userName eq "x")`},
		{`title pr and active eq true`, `scan`},
		{`userName eq "x" or externalId eq "y"`, `union(index(userName eq "x"), index(externalId eq "y"))`},
		{`userName eq "x" or title pr`, `scan`},
		{`(userName eq "a" or userName eq "b") and meta.lastModified gt "2020-01-01T00:00:00Z"`,
			`intersect(union(index(userName eq "a"), index(userName eq "b")), index(meta.lastModified gt "2020-01-01T00:00:00Z"))`},
		{`userName eq "a" and (id eq "b" and externalId eq "c")`, `intersect(index(userName eq "a"), index(id eq "b"), index(externalId eq "c"))`},
		{`userName eq "a" or (id eq "b" or externalId eq "c")`, `union(index(userName eq "a"), index(id eq "b"), index(externalId eq "c"))`},
		// Everything else scans.
		{`userName ne "x"`, `scan`},
		{`userName sw "x"`, `scan`},
		{`userName eq null`, `scan`},
		{`userName pr`, `scan`},
		{`not (userName eq "x")`, `scan`},
		{`title eq "x"`, `scan`},
		{`name.givenName eq "x"`, `scan`},
		{`emails.type eq "work"`, `scan`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1"`, `scan`},
		{`urn:x:userName eq "x"`, `scan`},
		{`emails[not (value eq "x")]`, `scan`},
	}
	for _, tt := range tests {
		e := must(t, tt.filter)
		p := Plan(e)
		if got := p.String(); got != tt.want {
			t.Errorf("Plan(%s) = %s, want %s", tt.filter, got, tt.want)
		}
		if p.Residual != e {
			t.Errorf("Plan(%s): residual is not the original expression", tt.filter)
		}
	}
}

func TestPlanIndexDetails(t *testing.T) {
	cases := []struct {
		filter string
		want   Index
	}{
		{`userName eq "X"`, Index{Attr: "userName", Op: OpEq, Value: "X"}},
		{`id eq "X"`, Index{Attr: "id", Op: OpEq, Value: "X", CaseExact: true}},
		{`members.value eq "X"`, Index{Attr: "members.value", Op: OpEq, Value: "X", CaseExact: true}},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, Index{Attr: "meta.lastModified", Op: OpGt,
			Value: "2011-05-13T04:42:34Z", Time: time.Date(2011, 5, 13, 4, 42, 34, 0, time.UTC), CaseExact: true}},
	}
	for _, c := range cases {
		got, ok := Plan(must(t, c.filter)).Access.(Index)
		if !ok || got != c.want {
			t.Errorf("Plan(%s) = %#v, want %#v", c.filter, got, c.want)
		}
	}
	if p := Plan(nil); p.String() != "scan" || p.Residual != nil {
		t.Errorf("Plan(nil) = %v", p)
	}
}

// TestPlanIndexAgreesWithMatch: every resource that matches a filter must be among the
// candidates of its index, with the case folding the index declares.
func TestPlanIndexAgreesWithMatch(t *testing.T) {
	r := bjensen()
	for _, f := range []string{
		`userName eq "BJENSEN@EXAMPLE.COM"`,
		`emails[type eq "work"].value eq "BJensen@example.com"`,
		`externalId eq "Bjensen-X"`,
		`id eq "2819c223-7f76-453a-919d-413861904646"`,
	} {
		e := must(t, f)
		ix := Plan(e).Access.(Index)
		if ok, err := Match(e, r, scim.UserResource); err != nil || !ok {
			t.Fatalf("%s does not match: %v", f, err)
		}
		m := must(t, ix.Attr+" eq "+quoted(ix.Value))
		if ok, _ := Match(m, r, scim.UserResource); !ok {
			t.Errorf("%s: index %v would miss the resource", f, ix)
		}
	}
}

func quoted(s string) string {
	var b strings.Builder
	quote(&b, s)
	return b.String()
}
