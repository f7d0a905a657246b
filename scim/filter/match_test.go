package filter

import (
	"errors"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

var (
	t2011 = time.Date(2011, 5, 13, 4, 42, 34, 0, time.UTC)
	t2020 = time.Date(2020, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
)

// bjensen is a full user; a second user has almost nothing.
func bjensen() *scim.Resource {
	return &scim.Resource{
		Type: scim.UserType, ID: "2819c223-7f76-453a-919d-413861904646", ExternalID: "Bjensen-X",
		Attributes: map[string]any{
			"userName":    "bjensen@example.com",
			"name":        map[string]any{"givenName": "Barbara", "familyName": "O'Malley"},
			"displayName": "Babs Jensen",
			"title":       "Tour Guide",
			"userType":    "Employee",
			"active":      false,
			"emails": []any{
				map[string]any{"value": "bjensen@example.com", "type": "work", "primary": true},
				map[string]any{"value": "babs@jensen.org", "type": "home"},
			},
			"phoneNumbers": []map[string]any{{"value": "555-555-8377", "type": "work"}},
			"ims":          []any{map[string]any{"value": "babs@foo.com", "type": "xmpp"}},
			"groups":       []any{map[string]any{"value": "g1", "display": "Admins", "type": "direct"}},
			scim.SchemaEnterpriseUser: map[string]any{
				"employeeNumber": "701984",
				"department":     "Tour Operations",
				"manager":        map[string]any{"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"},
			},
		},
		Meta: scim.Meta{Created: t2011, LastModified: t2020, Version: "W1"},
	}
}

func bare() *scim.Resource {
	return &scim.Resource{Type: scim.UserType, ID: "bare-1", Attributes: map[string]any{"userName": "bare"}}
}

func admins() *scim.Resource {
	return &scim.Resource{
		Type: scim.GroupType, ID: "g1",
		Attributes: map[string]any{"displayName": "Tour Admins"},
		Members: []scim.Member{
			{Value: "2819c223-7f76-453a-919d-413861904646", Type: scim.UserType, Display: "Babs Jensen"},
			{Value: "g2", Type: scim.GroupType, Display: "Nested"},
		},
		Meta: scim.Meta{Created: t2011, LastModified: t2011},
	}
}

func TestMatchUsers(t *testing.T) {
	tests := []struct {
		filter      string
		full, empty bool // matches bjensen, matches bare
	}{
		// caseExact: userName, emails.value, displayName insensitive; id, externalId exact.
		{`userName eq "BJENSEN@example.com"`, true, false},
		{`UserName EQ "bjensen@example.com"`, true, false},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "BJ"`, true, false},
		{`displayName eq "babs jensen"`, true, false},
		{`externalId eq "Bjensen-X"`, true, false},
		{`externalId eq "bjensen-x"`, false, false},
		{`id eq "2819c223-7f76-453a-919d-413861904646"`, true, false},
		{`id eq "2819C223-7F76-453A-919D-413861904646"`, false, false},
		{`urn:ietf:params:scim:schemas:core:2.0:User:id pr`, true, true},
		// Operators on strings.
		{`name.familyName co "o'mal"`, true, false},
		{`name.givenName ew "BARA"`, true, false},
		{`title gt "Tour"`, true, false},
		{`title lt "tour guidf"`, true, false},
		{`title le "tour guide"`, true, false},
		{`title ge "tour guidf"`, false, false},
		// pr, absent attributes, ne.
		{`title pr`, true, false},
		{`name pr`, true, false},
		{`nickName pr`, false, false},
		{`title ne "Boss"`, true, true},
		{`title ne "tour guide"`, false, true},
		{`not (title eq "Boss")`, true, true},
		{`title eq null`, false, true},
		{`title ne null`, true, false},
		{`nickName eq "x"`, false, false},
		{`nickName gt "a"`, false, false},
		// Booleans: false is a present value.
		{`active eq false`, true, false},
		{`active eq "False"`, true, false},
		{`active ne true`, true, true},
		{`active pr`, true, false},
		// Multi-valued: any value; implied "value" sub-attribute.
		{`emails.value eq "BABS@jensen.org"`, true, false},
		{`emails co "example.com"`, true, false},
		{`emails.type eq "home"`, true, false},
		{`emails.value ne "babs@jensen.org"`, true, true},
		{`phoneNumbers.value sw "555"`, true, false},
		{`groups.value eq "g1"`, true, false},
		// Complex value filters evaluate on one element.
		{`emails[type eq "work" and value co "@example.com"]`, true, false},
		{`emails[type eq "home" and value co "@example.com"]`, false, false},
		{`emails[type eq "work"].value eq "bjensen@example.com"`, true, false},
		{`emails[type eq "home"].value eq "bjensen@example.com"`, false, false},
		{`emails[type eq "work"].value pr`, true, false},
		{`emails[not (type eq "work")]`, true, false},
		{`emails[primary eq true]`, true, false},
		{`emails[value pr]`, true, false},
		{`name[givenName eq "barbara"]`, true, false},
		{`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`, true, false},
		// Extension attributes: URN-qualified and (leniently) bare.
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`, true, false},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984`, true, false},
		{`URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT eq "tour operations"`, true, false},
		{`department sw "Tour"`, true, false},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, true, false},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName co "smith"`, true, false},
		{`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, true, false},
		{`schemas eq "urn:ietf:params:scim:schemas:core:2.0:User"`, true, true},
		// meta from Resource.Meta; dateTime is chronological.
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, true, false},
		{`meta.lastModified gt "2020-01-02T03:04:05.5Z"`, false, false},
		{`meta.lastModified ge "2020-01-02T04:04:05.5+01:00"`, true, false},
		{`meta.lastModified eq "2020-01-02T03:04:05.500Z"`, true, false},
		{`meta.created lt "2011-05-13T04:42:35Z"`, true, false},
		{`meta.created le "2011-05-13T04:42:34Z"`, true, false},
		{`meta.created lt "2011-05-13T04:42:34Z"`, false, false},
		{`meta.resourceType eq "User"`, true, true},
		{`meta.version eq "W1"`, true, false},
		{`meta.location pr`, false, false},
		{`meta pr`, true, true},
		{`meta[lastModified gt "2011-05-13T04:42:34Z" and resourceType eq "User"]`, true, false},
		{`meta[version eq "w1"]`, false, false},
		// Logic and precedence.
		{`title pr and userType eq "Employee"`, true, false},
		{`title pr or userName eq "bare"`, true, true},
		{`userName eq "bare" or title pr and nickName pr`, false, true},
		{`(userName eq "bare" or title pr) and nickName pr`, false, false},
		{`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`, false, true},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, true, false},
		// Entra's unquoted value.
		{`externalId eq Bjensen-X`, true, false},
	}
	full, empty := bjensen(), bare()
	for _, tt := range tests {
		e, err := Parse(tt.filter)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.filter, err)
			continue
		}
		m, err := Compile(e, scim.UserResource)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.filter, err)
			continue
		}
		if got := m.Match(full); got != tt.full {
			t.Errorf("%s: bjensen: got %v, want %v", tt.filter, got, tt.full)
		}
		if got := m.Match(empty); got != tt.empty {
			t.Errorf("%s: bare user: got %v, want %v", tt.filter, got, tt.empty)
		}
	}
}

func TestMatchGroups(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{`displayName eq "tour admins"`, true},
		{`members.value eq "2819c223-7f76-453a-919d-413861904646"`, true},
		{`members.value eq "2819C223-7F76-453A-919D-413861904646"`, false},
		{`members eq "g2"`, true},
		{`members[value eq "g2" and type eq "Group"]`, true},
		{`members[value eq "g2" and type eq "User"]`, false},
		{`members[type eq "user"].display co "babs"`, true},
		{`members.display sw "nest"`, true},
		{`members pr`, true},
		{`members.$ref pr`, false},
		{`meta.resourceType eq "Group"`, true},
		{`schemas eq "urn:ietf:params:scim:schemas:core:2.0:Group"`, true},
		{`id eq "g1" and not (members.value eq "nobody")`, true},
	}
	g := admins()
	empty := &scim.Resource{Type: scim.GroupType, ID: "g0"}
	for _, tt := range tests {
		got, err := Match(must(t, tt.filter), g, scim.GroupResource)
		if err != nil {
			t.Errorf("Match(%q): %v", tt.filter, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.filter, got, tt.want)
		}
		if _, err := Match(must(t, tt.filter), empty, scim.GroupResource); err != nil {
			t.Errorf("Match(%q) on an empty group: %v", tt.filter, err)
		}
	}
}

// TestMatchValueShapes feeds values in the shapes a directory mapping might produce.
func TestMatchValueShapes(t *testing.T) {
	r := &scim.Resource{Type: scim.UserType, ID: "x", Attributes: map[string]any{
		"emails":                  []map[string]any{{"value": "a@b.c"}},
		"roles":                   []any{map[string]any{"value": "admin"}, map[string]any{"value": ""}},
		"active":                  "true",
		"userName":                "",
		scim.SchemaEnterpriseUser: map[string]any{},
	}}
	tests := []struct {
		filter string
		want   bool
	}{
		{`emails.value eq "A@B.C"`, true},
		{`emails[value eq "a@b.c"]`, true},
		{`roles.value eq "admin"`, true},
		{`roles.value ne "admin"`, false},
		{`active eq true`, true},
		{`userName pr`, false},
		{`userName ne "x"`, true},
		{`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, false},
		{`department eq "x"`, false},
	}
	for _, tt := range tests {
		got, err := Match(must(t, tt.filter), r, scim.UserResource)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.filter, got, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		filter string
		rs     *scim.ResourceSchema
		pos    int
		msg    string
	}{
		{`fooBar eq "x"`, scim.UserResource, 0, `unknown attribute "fooBar"`},
		{`title pr and name.foo eq "x"`, scim.UserResource, 13, `"name" has no sub-attribute "foo"`},
		{`userName.x eq "x"`, scim.UserResource, 0, `"userName" has no sub-attributes (asked for "x")`},
		{`urn:x:y:userName eq "x"`, scim.UserResource, 0, `User has no schema "urn:x:y"`},
		{`urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"`, scim.UserResource, 0,
			`User has no schema "urn:ietf:params:scim:schemas:core:2.0:Group"`},
		{`members.value eq "x"`, scim.UserResource, 0, `unknown attribute "members"`},
		{`userName eq "x"`, scim.GroupResource, 0, `unknown attribute "userName"`},
		{`password eq "secret"`, scim.UserResource, 0, `unknown attribute "password"`},
		{`active gt true`, scim.UserResource, 7, `gt cannot order "active", which is boolean; use eq or ne`},
		{`x509Certificates.value lt "a"`, scim.UserResource, 23, `lt cannot order "x509Certificates.value", which is binary; use eq or ne`},
		{`meta.lastModified co "2011"`, scim.UserResource, 18, `co needs a string attribute, but "meta.lastModified" is dateTime; use eq, ne, gt, ge, lt or le`},
		{`active sw "t"`, scim.UserResource, 7, `sw needs a string attribute, but "active" is boolean; use eq, ne, gt, ge, lt or le`},
		{`active eq "yes"`, scim.UserResource, 10, `"active" is boolean: compare it with true or false, not "yes"`},
		{`active eq 1`, scim.UserResource, 10, `"active" is boolean: compare it with true or false, not 1`},
		{`meta.lastModified gt "yesterday"`, scim.UserResource, 21, `"meta.lastModified" is a dateTime: compare it with an RFC 3339 string such as "2011-05-13T04:42:34Z", not "yesterday"`},
		{`meta.lastModified gt 2011`, scim.UserResource, 21, `"meta.lastModified" is a dateTime: compare it with an RFC 3339 string such as "2011-05-13T04:42:34Z", not 2011`},
		{`title gt null`, scim.UserResource, 9, `null can only be used with eq and ne`},
		{`name eq "x"`, scim.UserResource, 5, `"name" is complex: compare one of its sub-attributes, such as name.formatted, or use pr`},
		{`meta gt "x"`, scim.UserResource, 5, `"meta" is complex: compare one of its sub-attributes, such as meta.resourceType, or use pr`},
		{`userName[value eq "x"]`, scim.UserResource, 0, `"userName" is not a complex attribute; [...] filters the elements of one, as in emails[type eq "work"]`},
		{`emails[foo eq "x"]`, scim.UserResource, 7, `"emails" has no sub-attribute "foo"`},
		{`emails[emails.value eq "x"]`, scim.UserResource, 7, `inside emails[...], name a sub-attribute of emails without schema or dots, such as value; found "emails.value"`},
		{`emails[type eq "work"].foo eq "x"`, scim.UserResource, 23, `"emails" has no sub-attribute "foo"`},
		{`emails[type eq "work"].primary gt true`, scim.UserResource, 31, `gt cannot order "primary", which is boolean; use eq or ne`},
	}
	for _, tt := range tests {
		err := Validate(must(t, tt.filter), tt.rs)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Validate(%q) = %v, want an *Error", tt.filter, err)
			continue
		}
		if fe.Pos != tt.pos || fe.Msg != tt.msg {
			t.Errorf("Validate(%q):\n got at %d: %s\nwant at %d: %s", tt.filter, fe.Pos, fe.Msg, tt.pos, tt.msg)
		}
		if _, err := Match(must(t, tt.filter), bjensen(), tt.rs); err == nil {
			t.Errorf("Match(%q) accepted an invalid filter", tt.filter)
		}
	}
	for _, s := range rfcExamples {
		if err := Validate(must(t, s), scim.UserResource); err != nil {
			t.Errorf("Validate(%q): %v", s, err)
		}
	}
}

func TestCompileNil(t *testing.T) {
	m, err := Compile(nil, scim.UserResource)
	if err != nil || !m.Match(bare()) {
		t.Errorf("Compile(nil) = %v, %v; want a matcher that matches everything", m, err)
	}
}

func BenchmarkMatch(b *testing.B) {
	e, _ := Parse(`emails[type eq "work"].value eq "bjensen@example.com" and meta.lastModified gt "2011-05-13T04:42:34Z"`)
	m, err := Compile(e, scim.UserResource)
	if err != nil {
		b.Fatal(err)
	}
	r := bjensen()
	b.ReportAllocs()
	for b.Loop() {
		if !m.Match(r) {
			b.Fatal("no match")
		}
	}
}
