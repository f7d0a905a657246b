package scim

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestResourceSchemaLookup(t *testing.T) {
	tests := []struct {
		rs        *ResourceSchema
		path      string
		urn       string // where the value lives; "" for Resource fields
		canonical string
		typ       AttrType
		caseExact bool
	}{
		{UserResource, "userName", SchemaUser, "userName", TypeString, false},
		{UserResource, "USERNAME", SchemaUser, "userName", TypeString, false},
		{UserResource, "urn:ietf:params:scim:schemas:core:2.0:User:userName", SchemaUser, "userName", TypeString, false},
		{UserResource, "Urn:Ietf:Params:Scim:Schemas:Core:2.0:User:username", SchemaUser, "userName", TypeString, false},
		{UserResource, "name.givenName", SchemaUser, "name.givenName", TypeString, false},
		{UserResource, "emails.value", SchemaUser, "emails.value", TypeString, false},
		{UserResource, "emails.primary", SchemaUser, "emails.primary", TypeBoolean, false},
		{UserResource, "x509Certificates.value", SchemaUser, "x509Certificates.value", TypeBinary, true},
		{UserResource, "groups.$ref", SchemaUser, "groups.$ref", TypeReference, true},
		{UserResource, "id", "", "id", TypeString, true},
		{UserResource, "urn:ietf:params:scim:schemas:core:2.0:User:id", "", "id", TypeString, true},
		{UserResource, "externalId", "", "externalId", TypeString, true},
		{UserResource, "meta.lastModified", "", "meta.lastModified", TypeDateTime, false},
		{UserResource, "META.CREATED", "", "meta.created", TypeDateTime, false},
		{UserResource, "schemas", "", "schemas", TypeReference, false},
		{UserResource, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", SchemaEnterpriseUser,
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", TypeString, false},
		{UserResource, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", SchemaEnterpriseUser,
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", TypeString, false},
		{UserResource, "department", SchemaEnterpriseUser,
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", TypeString, false},
		{GroupResource, "displayName", SchemaGroup, "displayName", TypeString, false},
		{GroupResource, "members.value", SchemaGroup, "members.value", TypeString, true},
		{GroupResource, "members.display", SchemaGroup, "members.display", TypeString, false},
		{GroupResource, "urn:ietf:params:scim:schemas:core:2.0:Group:members.type", SchemaGroup, "members.type", TypeString, false},
	}
	for _, tt := range tests {
		ref, err := tt.rs.Lookup(tt.path)
		if err != nil {
			t.Errorf("%s Lookup(%q): %v", tt.rs.Type, tt.path, err)
			continue
		}
		def := ref.Def()
		if ref.URN != tt.urn || ref.String() != tt.canonical || def.Type != tt.typ || def.CaseExact != tt.caseExact {
			t.Errorf("%s Lookup(%q) = urn %q, %s, %s caseExact=%v; want %q, %s, %s caseExact=%v", tt.rs.Type, tt.path,
				ref.URN, ref, def.Type, def.CaseExact, tt.urn, tt.canonical, tt.typ, tt.caseExact)
		}
	}
}

func TestResourceSchemaLookupErrors(t *testing.T) {
	tests := []struct {
		rs   *ResourceSchema
		path string
		msg  string
	}{
		{UserResource, "fooBar", `unknown attribute "fooBar"`},
		{UserResource, "password", `unknown attribute "password"`},
		{UserResource, "name.foo", `unknown attribute: "name" has no sub-attribute "foo"`},
		{UserResource, "name.givenName.x", `unknown attribute: "name" has no sub-attribute "givenName.x"`},
		{UserResource, "userName.x", `unknown attribute: "userName" has no sub-attributes (asked for "x")`},
		{UserResource, "urn:x:userName", `unknown attribute: User has no schema "urn:x"`},
		{UserResource, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName",
			`unknown attribute "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName"`},
		{UserResource, "members", `unknown attribute "members"`},
		{GroupResource, "userName", `unknown attribute "userName"`},
		{GroupResource, "department", `unknown attribute "department"`},
	}
	for _, tt := range tests {
		_, err := tt.rs.Lookup(tt.path)
		if !errors.Is(err, ErrUnknownAttribute) || err.Error() != tt.msg {
			t.Errorf("%s Lookup(%q) = %v, want %s", tt.rs.Type, tt.path, err, tt.msg)
		}
	}
}

func TestSchemaAttribute(t *testing.T) {
	for _, p := range []string{"employeeNumber", "MANAGER.displayName",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.$ref"} {
		if _, err := EnterpriseUserSchema.Attribute(p); err != nil {
			t.Errorf("Attribute(%q): %v", p, err)
		}
	}
	for _, p := range []string{"userName", "manager.foo", "urn:ietf:params:scim:schemas:core:2.0:User:employeeNumber"} {
		if _, err := EnterpriseUserSchema.Attribute(p); !errors.Is(err, ErrUnknownAttribute) {
			t.Errorf("Attribute(%q) = %v, want ErrUnknownAttribute", p, err)
		}
	}
}

// TestSchemaDefinitions pins the RFC 7643 facts clients rely on and that every definition is
// complete enough to render for /Schemas.
func TestSchemaDefinitions(t *testing.T) {
	check := func(path string, a *Attribute) {
		if a.Name == "" || a.Type == "" || a.Mutability == "" || a.Returned == "" || a.Uniqueness == "" || a.Description == "" {
			t.Errorf("%s: incomplete definition %+v", path, a)
		}
		if (a.Type == TypeComplex) != (len(a.SubAttributes) > 0) {
			t.Errorf("%s: type %s with %d sub-attributes", path, a.Type, len(a.SubAttributes))
		}
	}
	for _, s := range []*Schema{UserSchema, EnterpriseUserSchema, GroupSchema, {ID: "common", Attributes: CommonAttributes}} {
		seen := map[string]bool{}
		for _, a := range s.Attributes {
			if seen[a.Name] {
				t.Errorf("%s: duplicate %s", s.ID, a.Name)
			}
			seen[a.Name] = true
			check(s.ID+":"+a.Name, a)
			for _, sub := range a.SubAttributes {
				check(s.ID+":"+a.Name+"."+sub.Name, sub)
			}
		}
	}
	id, _ := UserResource.Lookup("id")
	if id.Attr.Returned != ReturnedAlways || id.Attr.Mutability != MutReadOnly || !id.Attr.CaseExact {
		t.Errorf("id = %+v", id.Attr)
	}
	un, _ := UserResource.Lookup("userName")
	if un.Attr.Uniqueness != UniqueServer || !un.Attr.Required || un.Attr.CaseExact {
		t.Errorf("userName = %+v", un.Attr)
	}
	for _, p := range []string{"emails", "phoneNumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles", "x509Certificates"} {
		if ref, err := UserResource.Lookup(p); err != nil || !ref.Attr.MultiValued {
			t.Errorf("%s: %v multiValued=%v", p, err, err == nil && ref.Attr.MultiValued)
		}
	}
	if SchemaFor(UserType) != UserResource || SchemaFor(GroupType) != GroupResource || SchemaFor("Device") != nil {
		t.Error("SchemaFor")
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct{ in, uri, name, sub string }{
		{"userName", "", "userName", ""},
		{"name.givenName", "", "name", "givenName"},
		{"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName", SchemaUser, "name", "givenName"},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", SchemaEnterpriseUser, "manager", ""},
	}
	for _, tt := range tests {
		uri, name, sub := SplitPath(tt.in)
		if uri != tt.uri || name != tt.name || sub != tt.sub {
			t.Errorf("SplitPath(%q) = %q %q %q", tt.in, uri, name, sub)
		}
	}
}

func TestSchemaJSON(t *testing.T) {
	b, err := json.Marshal(GroupSchema)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ID         string
		Attributes []struct {
			Name, Type, Mutability, Returned, Uniqueness string
			MultiValued, CaseExact, Required             bool
			SubAttributes                                []struct {
				Name            string
				CaseExact       bool
				ReferenceTypes  []string
				CanonicalValues []string
			}
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != SchemaGroup || len(got.Attributes) != 2 {
		t.Fatalf("got %s", b)
	}
	m := got.Attributes[1]
	if m.Name != "members" || m.Type != "complex" || !m.MultiValued || m.Mutability != "readWrite" ||
		m.Returned != "default" || m.Uniqueness != "none" || len(m.SubAttributes) != 4 ||
		!m.SubAttributes[0].CaseExact || len(m.SubAttributes[1].ReferenceTypes) != 2 ||
		len(m.SubAttributes[2].CanonicalValues) != 2 {
		t.Errorf("members = %+v", m)
	}
	if !strings.Contains(string(b), `"multiValued":false`) || strings.Contains(string(b), `"subAttributes":null`) {
		t.Errorf("JSON shape: %s", b)
	}
}
