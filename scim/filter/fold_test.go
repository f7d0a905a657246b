package filter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// coFilter returns a filter of n `co` terms on title and emails, OR-ed, none of which matches
// bjensen.
func coFilter(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(" or ")
		}
		attr := "title"
		if i%2 == 1 {
			attr = "emails"
		}
		fmt.Fprintf(&b, `%s co "Zq%06d"`, attr, i)
	}
	return b.String()
}

func compileCo(tb testing.TB, n int) *Matcher {
	tb.Helper()
	e, err := Parse(coFilter(n))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := Compile(e, scim.UserResource)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// A case-insensitive comparison lower-cases each attribute value once per Match, not once per
// term: the allocations of a Match do not grow with the number of terms.
func TestManyTermsFoldEachValueOnce(t *testing.T) {
	r := bjensen()
	few, many := compileCo(t, 4), compileCo(t, MaxTerms)
	if few.Match(r) || many.Match(r) {
		t.Fatal("a co filter matched")
	}
	a, b := testing.AllocsPerRun(20, func() { few.Match(r) }), testing.AllocsPerRun(20, func() { many.Match(r) })
	if b > a+1 || b > 8 {
		t.Errorf("Match allocates %v times with 4 terms and %v times with %d: values are folded per term", a, b, MaxTerms)
	}
}

// Folding once keeps the semantics of lower-casing per term, Unicode included.
func TestFoldedComparisons(t *testing.T) {
	r := bjensen()
	r.Attributes["title"] = "ÉCOLE Straße Guide"
	for f, want := range map[string]bool{
		`title co "école" and title co "guide"`:              true,
		`title sw "éCOLE" and title ew "GUIDE"`:              true,
		`title co "STRASSE"`:                                 false, // lower-casing, not full case folding
		`title gt "école" and title lt "écolf"`:              true,
		`emails co "JENSEN.ORG" and emails co "nope"`:        false,
		`emails co "JENSEN.ORG" or emails co "nope"`:         true,
		`title co "zzz" or emails sw "BABS@"`:                true,
		`emails[type eq "work" and value ew "EXAMPLE.COM"]`:  true,
		`emails[type eq "home" and value ew "EXAMPLE.COM"]`:  false,
		`not (title co "STRAßE") and title co "straße"`:      false,
		`title co "Straße" and displayName co "BABS JENSEN"`: true,
	} {
		if got, err := Match(must(t, f), r, scim.UserResource); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", f, got, err, want)
		}
	}
}

// BenchmarkMatchCoTerms matches bjensen against the longest filter Parse accepts: MaxTerms co
// terms on title (one value) and emails (two).
func BenchmarkMatchCoTerms(b *testing.B) {
	m := compileCo(b, MaxTerms)
	r := bjensen()
	b.ReportAllocs()
	for b.Loop() {
		if m.Match(r) {
			b.Fatal("match")
		}
	}
}
