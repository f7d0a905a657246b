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
