package filter

import (
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// FuzzParse checks that no input makes the package panic, that whatever parses prints back to
// an equal expression, and that validation, evaluation and planning of it do not panic either.
func FuzzParse(f *testing.F) {
	for _, s := range rfcExamples {
		f.Add(s)
	}
	for _, s := range entraExamples {
		f.Add(s)
	}
	for _, s := range []string{
		`not (a pr)`, `a eq "\u00e9\ud83d\ude00\n"`, `x eq -1.5e+3 or y eq null`, `members[value eq "x"]`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
		`meta.created lt "2020-01-01T00:00:00.5+02:00"`, `active eq false`, `groups.$ref pr`,
	} {
		f.Add(s)
	}
	user, group := fuzzUser(), fuzzGroup()
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse(%q): error %T, want *Error", s, err)
			}
			return
		}
		out := e.String()
		e2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) → %q, which does not parse: %v", s, out, err)
		}
		if !Equal(e, e2) {
			t.Fatalf("Parse(%q) → %q → %q: not Equal", s, out, e2)
		}
		_ = Plan(e)
		for _, c := range []struct {
			rs *scim.ResourceSchema
			r  *scim.Resource
		}{{scim.UserResource, user}, {scim.GroupResource, group}} {
			if m, err := Compile(e, c.rs); err == nil {
				m.Match(c.r)
				m.Match(&scim.Resource{})
			} else if _, ok := err.(*Error); !ok {
				t.Fatalf("Compile(%q): error %T, want *Error", s, err)
			}
		}
	})
}

func fuzzUser() *scim.Resource {
	return &scim.Resource{
		Type: scim.UserType, ID: "u1", ExternalID: "E1",
		Attributes: map[string]any{
			"userName": "bjensen", "active": true, "title": "Boss",
			"name":                    map[string]any{"givenName": "Barbara", "familyName": "Jensen"},
			"emails":                  []any{map[string]any{"value": "b@example.com", "type": "work", "primary": true}, "junk", nil},
			"x509Certificates":        []any{map[string]any{"value": "TUlJ"}},
			scim.SchemaEnterpriseUser: map[string]any{"employeeNumber": 42, "manager": map[string]any{"value": "u2"}},
		},
		Meta: scim.Meta{Created: time.Unix(1e9, 0), LastModified: time.Unix(1.5e9, 0), Version: "v1"},
	}
}

func fuzzGroup() *scim.Resource {
	return &scim.Resource{
		Type: scim.GroupType, ID: "g1",
		Attributes: map[string]any{"displayName": "Admins"},
		Members:    []scim.Member{{Value: "u1", Type: scim.UserType, Display: "Barbara"}, {}},
	}
}
