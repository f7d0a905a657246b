package filter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// rfcExamples are the example filters of RFC 7644 §3.4.2.2 (and §3.4.3), joined onto one line.
var rfcExamples = []string{
	`userName eq "bjensen"`,
	`name.familyName co "O'Malley"`,
	`userName sw "J"`,
	`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`,
	`title pr`,
	`meta.lastModified gt "2011-05-13T04:42:34Z"`,
	`meta.lastModified ge "2011-05-13T04:42:34Z"`,
	`meta.lastModified lt "2011-05-13T04:42:34Z"`,
	`meta.lastModified le "2011-05-13T04:42:34Z"`,
	`title pr and userType eq "Employee"`,
	`title pr or userType eq "Intern"`,
	`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`,
	`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
	`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`,
	`userType eq "Employee" and (emails.type eq "work")`,
	`userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`,
	`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
	`displayName sw "smith"`,
}

// entraExamples are the forms Microsoft Entra ID sends (ref/scim-clients.md).
var entraExamples = []string{
	`userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"`,
	`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`,
	`externalId eq 123abc`,
	`emails[type eq "work"].value eq "Test_User_x@contoso.com"`,
	`displayName eq "Group1DisplayName"`,
	`userName eq "a@b.c" and externalId eq "x"`,
}

func TestParseExamples(t *testing.T) {
	for _, s := range append(append([]string{}, rfcExamples...), entraExamples...) {
		e, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		checkRoundTrip(t, s, e)
	}
}

func checkRoundTrip(t *testing.T, in string, e Expr) {
	t.Helper()
	out := e.String()
	e2, err := Parse(out)
	if err != nil {
		t.Errorf("Parse(%q) → %q, which does not parse: %v", in, out, err)
		return
	}
	if !Equal(e, e2) {
		t.Errorf("Parse(%q) → %q → %q: not Equal", in, out, e2)
	}
	if out2 := e2.String(); out2 != out {
		t.Errorf("String not stable: %q → %q", out, out2)
	}
}

// TestParseString pins the structure through the canonical rendering: parentheses appear exactly
// where the tree needs them.
func TestParseString(t *testing.T) {
	tests := []struct{ in, want string }{
		{`userName Eq "bjensen"`, `userName Eq "bjensen"`[:9] + `eq "bjensen"`},
		{`USERNAME EQ "x"`, `USERNAME eq "x"`},
		{`title PR`, `title pr`},
		{`a pr or b pr and c pr`, `a pr or b pr and c pr`},
		{`(a pr or b pr) and c pr`, `(a pr or b pr) and c pr`},
		{`((a pr))`, `a pr`},
		{`a pr and (b pr and c pr)`, `a pr and (b pr and c pr)`},
		{`(a pr and b pr) or c pr`, `a pr and b pr or c pr`},
		{`a pr AND b pr Or c pr`, `a pr and b pr or c pr`},
		{`not(a pr)`, `not (a pr)`},
		{`NOT ( a pr or b pr )`, `not (a pr or b pr)`},
		{`not (not (a pr))`, `not (not (a pr))`},
		{`x eq 1`, `x eq 1`},
		{`x eq -1.50e+3`, `x eq -1.50e+3`},
		{`x eq TRUE`, `x eq true`},
		{`x eq False`, `x eq false`},
		{`x eq Null`, `x eq null`},
		{`x eq "true"`, `x eq "true"`},
		{`externalId eq 123abc`, `externalId eq "123abc"`},
		{`externalId eq 0123`, `externalId eq "0123"`},
		{`x eq 1.`, `x eq "1."`},
		{`x eq "a\"b\u00e9\n"`, `x eq "a\"bé\n"`},
		{`x eq "\u0001"`, `x eq "\u0001"`},
		{`emails[type eq "work"].value eq "x"`, `emails[type eq "work"].value eq "x"`},
		{`emails[type eq "work"].value pr`, `emails[type eq "work"].value pr`},
		{`emails[not (type eq "work")]`, `emails[not (type eq "work")]`},
		{`emails[(type eq "a" or type eq "b") and value pr]`, `emails[(type eq "a" or type eq "b") and value pr]`},
		{`a pr and emails[type eq "work"] or b pr`, `a pr and emails[type eq "work"] or b pr`},
		{`groups.$ref pr`, `groups.$ref pr`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`},
		{"a\teq\r\n\"x\"", `a eq "x"`},
		{`userName eq"x"and(b pr)`, `userName eq "x" and b pr`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		checkRoundTrip(t, tt.in, e)
	}
}

func TestParseTree(t *testing.T) {
	e, err := Parse(`a pr or b pr and not (c eq 1) or d[x eq "y"].z ne false`)
	if err != nil {
		t.Fatal(err)
	}
	or, ok := e.(*Logical)
	if !ok || or.Op != Or || len(or.Terms) != 3 {
		t.Fatalf("top = %#v, want an or of 3 terms", e)
	}
	and, ok := or.Terms[1].(*Logical)
	if !ok || and.Op != And || len(and.Terms) != 2 {
		t.Fatalf("term 2 = %#v, want an and of 2 terms", or.Terms[1])
	}
	not, ok := and.Terms[1].(*Not)
	if !ok || not.NotPos != 17 {
		t.Fatalf("and term 2 = %#v, want not at 17", and.Terms[1])
	}
	if c := not.X.(*Compare); c.Value.Kind != KindNumber || c.Value.Num != 1 || c.Attr.Pos != 22 || c.OpPos != 24 || c.Value.Pos != 27 {
		t.Errorf("not operand = %#v", c)
	}
	vp, ok := or.Terms[2].(*ValuePath)
	if !ok || vp.Attr.Name != "d" || vp.Then == nil || vp.Then.Attr.Name != "z" || vp.Then.Attr.Pos != 45 ||
		vp.Then.Op != OpNe || vp.Then.Value.Kind != KindBool || vp.Then.Value.Bool() {
		t.Errorf("term 3 = %#v (then %#v)", or.Terms[2], vp.Then)
	}
	c := must(t, `urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "x"`).(*Compare)
	if c.Attr.URI != "urn:ietf:params:scim:schemas:core:2.0:User" || c.Attr.Name != "name" || c.Attr.Sub != "givenName" {
		t.Errorf("URN path = %#v", c.Attr)
	}
}

func must(t *testing.T, s string) Expr {
	t.Helper()
	e, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return e
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{``, 0, `empty filter`},
		{`   `, 0, `empty filter`},
		{`userName equals "x"`, 9, `expected a comparison operator after "userName", found "equals"; use one of eq ne co sw ew gt ge lt le pr`},
		{`title pr and userName equals "x"`, 22, `expected a comparison operator after "userName", found "equals"; use one of eq ne co sw ew gt ge lt le pr`},
		{`userName`, 8, `expected a comparison operator after "userName", found end of filter; use one of eq ne co sw ew gt ge lt le pr`},
		{`userName eq`, 11, `expected a value after "eq", found end of filter`},
		{`userName eq )`, 12, `expected a value after "eq", found ")"`},
		{`userName eq "x" "y"`, 16, `expected "and", "or" or the end of the filter after "\"x\"", found string "y"`},
		{`userName eq "x" userName eq "y"`, 16, `expected "and", "or" or the end of the filter after "\"x\"", found "userName"`},
		{`userName eq "x" and`, 19, `expected an attribute name, "not" or "(", found end of filter`},
		{`userName eq "x" or or`, 19, `expected an attribute name, "not" or "(", found "or"`},
		{`and a pr`, 0, `expected an attribute name, "not" or "(", found "and"`},
		{`(a pr`, 5, `expected ")" to close the "(" at 0, found end of filter`},
		{`a pr)`, 4, `expected "and", "or" or the end of the filter after "pr", found ")"`},
		{`()`, 1, `expected an attribute name, "not" or "(", found ")"`},
		{`not a pr`, 4, `expected "(" after "not", found "a"; write not (expression)`},
		{`emails[type eq "work"`, 21, `expected "]" to close the "[" at 6, found end of filter`},
		{`emails[type eq "work"]]`, 22, `expected "and", "or" or the end of the filter after "]", found "]"`},
		{`emails[type[value eq "x"]]`, 11, `complex value filters cannot be nested`},
		{`emails.value[type eq "x"]`, 12, `a complex value filter applies to an attribute, not to the sub-attribute "emails.value"; write emails[value ...]`},
		{`emails[type eq "work"].1x eq "a"`, 23, `expected a sub-attribute name after "].", found "1x"`},
		{`emails[type eq "work"]. eq "a"`, 23, `expected a sub-attribute name after "].", found ""`},
		{`emails[type eq "work"].value`, 28, `expected a comparison operator after ".value", found end of filter; use one of eq ne co sw ew gt ge lt le pr`},
		{`1abc eq "x"`, 0, `expected an attribute name, found "1abc"; attribute names are letters, digits, - and _, starting with a letter, as in name.givenName`},
		{`name. eq "x"`, 0, `expected an attribute name, found "name."; attribute names are letters, digits, - and _, starting with a letter, as in name.givenName`},
		{`a.b.c eq "x"`, 0, `expected an attribute name, found "a.b.c"; attribute names are letters, digits, - and _, starting with a letter, as in name.givenName`},
		{`user@name eq "x"`, 0, `expected an attribute name, found "user@name"; attribute names are letters, digits, - and _, starting with a letter, as in name.givenName`},
		{`:userName eq "x"`, 0, `expected a schema URI before ":" in ":userName"`},
		{`urn:x: eq "x"`, 0, `expected an attribute name, found "urn:x:"; attribute names are letters, digits, - and _, starting with a letter, as in name.givenName`},
		{`x eq 1e999`, 5, `number 1e999 is out of range`},
		{`x eq "abc`, 5, `unterminated string: a string opened with " must end with "`},
		{`"x" eq "y"`, 0, `expected an attribute name, "not" or "(", found string "x"`},
		{`a pr and ]`, 9, `expected an attribute name, "not" or "(", found "]"`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) = %v, %v; want an *Error", tt.in, e, err)
			continue
		}
		if fe.Pos != tt.pos || fe.Msg != tt.msg {
			t.Errorf("Parse(%q):\n got at %d: %s\nwant at %d: %s", tt.in, fe.Pos, fe.Msg, tt.pos, tt.msg)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse(`userName equals "x"`)
	want := `filter: at 9: expected a comparison operator after "userName", found "equals"; use one of eq ne co sw ew gt ge lt le pr`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestParseDepthLimit(t *testing.T) {
	deep := ""
	for range maxDepth + 1 {
		deep += "("
	}
	_, err := Parse(deep + "a pr")
	var fe *Error
	if !errors.As(err, &fe) || fe.Pos != maxDepth {
		t.Errorf("got %v, want a nesting error at %d", err, maxDepth)
	}
	ok := deep[1:] + "a pr"
	for range maxDepth {
		ok += ")"
	}
	if _, err := Parse(ok); err != nil {
		t.Errorf("nesting %d: %v", maxDepth, err)
	}
}

func BenchmarkParsePlanUserNameEq(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		e, err := Parse(`userName eq "x"`)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := Plan(e).Access.(Index); !ok {
			b.Fatal("no index")
		}
	}
}

func BenchmarkParseComplex(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(rfcExamples[16]); err != nil {
			b.Fatal(err)
		}
	}
}

// A filter of more than MaxTerms attribute expressions is refused at the first one too many,
// in an or chain as in a complex value filter; MaxTerms of them parse.
func TestParseTermLimit(t *testing.T) {
	terms := func(n int, term string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(term, i)
		}
		return strings.Join(parts, " or ")
	}
	if _, err := Parse(terms(MaxTerms, `userName co "x%d"`)); err != nil {
		t.Fatalf("%d terms: %v", MaxTerms, err)
	}
	for _, f := range []string{
		terms(MaxTerms+1, `userName co "x%d"`),
		"emails[" + terms(MaxTerms+1, `value sw "x%d"`) + "]",
		terms(45000, `displayName co "%d"`),
	} {
		_, err := Parse(f)
		var fe *Error
		if !errors.As(err, &fe) || !strings.Contains(fe.Error(), "more than 256 attribute expressions") {
			t.Fatalf("Parse(%d bytes) = %v, want the term limit", len(f), err)
		}
	}
}
