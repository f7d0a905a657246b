package dn

import "testing"

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"uid=Ann,ou=People,dc=Example,dc=com", "uid=ann,ou=people,dc=example,dc=com"},
		{"UID=ann, OU=people, DC=example, DC=com", "uid=ann,ou=people,dc=example,dc=com"},
		{`cn=Smith\, John,ou=people,dc=example,dc=com`, `cn=smith\2c john,ou=people,dc=example,dc=com`},
		{`cn=Müller,ou=people`, `CN=MÜLLER,OU=People`},
		{`cn=a+uid=b,dc=x`, `CN=a + UID=b, DC=x`},
	} {
		if x, y := Normalize(tc.a), Normalize(tc.b); x != y {
			t.Errorf("Normalize(%q)=%q, Normalize(%q)=%q; want equal", tc.a, x, tc.b, y)
		}
	}
	if Normalize("uid=a,dc=x") == Normalize("uid=b,dc=x") {
		t.Fatal("different DNs normalized equal")
	}
}

func TestStripUID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"uid=ann,dc=example,dc=com#'0101'B", "uid=ann,dc=example,dc=com"},
		{"uid=ann,dc=example,dc=com#''B", "uid=ann,dc=example,dc=com"},
		{"uid=ann,dc=example,dc=com", "uid=ann,dc=example,dc=com"},
		{`cn=a\#'01'B`, `cn=a\#'01'B`},             // escaped: part of the value
		{"cn=x#'012'B", "cn=x#'012'B"},             // not a bit string
		{"#'01'B", "#'01'B"},                       // nothing before the UID
		{"cn=O'Brien'B,dc=x", "cn=O'Brien'B,dc=x"}, // no "#'"
	} {
		if got := StripUID(tc.in); got != tc.want {
			t.Errorf("StripUID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
