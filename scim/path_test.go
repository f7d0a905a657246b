package scim

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePathAndSet(t *testing.T) {
	r := &Resource{Type: UserType, ID: "u1", Attributes: map[string]any{}}
	for path, vals := range map[string][]string{
		"username":                     {"ann"},
		"NAME.givenname":               {"Ann"},
		`emails[type eq "work"].value`: {"ann@example.com", "", "a2@example.com"},
		"externalId":                   {"E1"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costcenter": {"4711"},
		"title": {""},
	} {
		p, err := ParsePath(UserType, path)
		if err != nil {
			t.Fatal(err)
		}
		p.Set(r, vals...)
	}
	MarkPrimaryEmail(r)
	want := map[string]any{"userName": "ann", "name": map[string]any{"givenName": "Ann"},
		"emails": []any{map[string]any{"value": "ann@example.com", "type": "work", "primary": true},
			map[string]any{"value": "a2@example.com", "type": "work"}},
		SchemaEnterpriseUser: map[string]any{"costCenter": "4711"}}
	if !reflect.DeepEqual(r.Attributes, want) || r.ExternalID != "E1" {
		t.Fatalf("got %#v (externalId %q)", r.Attributes, r.ExternalID)
	}
	for path, msg := range map[string]string{
		"name":                         "name is complex",
		"emails.value":                 "emails is multi-valued",
		"shoeSize":                     "is not an attribute",
		`emails[display eq "x"].value`: `only [type eq "x"] selects a value`,
		"urn:example:ext:1.0:User:x":   "unknown schema",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:boss": "is not one of",
	} {
		if _, err := ParsePath(UserType, path); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: want %q, got %v", path, msg, err)
		}
	}
	if _, err := ParsePath(GroupType, "title"); err == nil {
		t.Error("a group has no title")
	}
}

// TestPathGetPutUnset: Get reads what Set and Put wrote at every single-valued kind of path,
// Unset removes it (and the holder left empty), and multi-valued paths and the manager are
// not single-valued.
func TestPathGetPutUnset(t *testing.T) {
	r := &Resource{Type: UserType, ID: "u", Attributes: map[string]any{"name": map[string]any{"familyName": "Doe"}}}
	for _, raw := range []string{"title", "name.givenName", SchemaEnterpriseUser + ":department", "externalId"} {
		p, err := ParsePath(UserType, raw)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Single() {
			t.Fatalf("%s: not single-valued", raw)
		}
		if v, ok := p.Get(r); ok {
			t.Fatalf("%s: Get before Set = %v", raw, v)
		}
		p.Set(r, "v-"+raw)
		if v, ok := p.Get(r); !ok || v != "v-"+raw {
			t.Fatalf("%s: Get after Set = %v, %v", raw, v, ok)
		}
		p.Unset(r)
		if v, ok := p.Get(r); ok {
			t.Fatalf("%s: Get after Unset = %v", raw, v)
		}
		p.Put(r, "w")
		if v, ok := p.Get(r); !ok || v != "w" {
			t.Fatalf("%s: Get after Put = %v, %v", raw, v, ok)
		}
	}
	if _, ok := r.Attributes["name"].(map[string]any)["familyName"]; !ok {
		t.Fatal("Unset of name.givenName removed familyName")
	}
	dept, _ := ParsePath(UserType, SchemaEnterpriseUser+":department")
	dept.Unset(r)
	if _, ok := r.Attributes[SchemaEnterpriseUser]; ok {
		t.Fatal("the empty enterprise extension stayed after its last attribute's Unset")
	}
	active, _ := ParsePath(UserType, "active")
	active.Put(r, false)
	if v, ok := active.Get(r); !ok || v != false || r.Active() {
		t.Fatalf("active after Put(false) = %v, %v", v, ok)
	}
	for _, raw := range []string{`emails[type eq "work"].value`, SchemaEnterpriseUser + ":manager"} {
		p, err := ParsePath(UserType, raw)
		if err != nil {
			t.Fatal(err)
		}
		if p.Single() {
			t.Fatalf("%s: single-valued", raw)
		}
		before := len(r.Attributes)
		p.Put(r, "x")
		if _, ok := p.Get(r); ok || len(r.Attributes) != before {
			t.Fatalf("%s: Put/Get acted on a path that is not single-valued", raw)
		}
	}
}
