package termsafe

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"Jane Doe":                 "Jane Doe",
		`CN=Doe\, Jane`:            `CN=Doe\, Jane`,
		"Zoë Ångström 日本":          "Zoë Ångström 日本",
		"\x1b[2J":                  `\x1b[2J`,
		"a\r\nFAKE ROW":            `a\r\nFAKE ROW`,
		"tab\there":                `tab\there`,
		"del\x7f":                  `del\x7f`,
		"c1\u0085\u009b":           `c1\u0085\u009b`,
		"\u202eevil":               `\u202eevil`,
		"\u200e\u200f":             `\u200e\u200f`,
		"\u202a\u202b\u202c\u202d": `\u202a\u202b\u202c\u202d`,
		"\u2066\u2067\u2068\u2069": `\u2066\u2067\u2068\u2069`,
		"zero\u200bwidth\ufeff":    `zero\u200bwidth\ufeff`,
		"line\u2028para\u2029":     `line\u2028para\u2029`,
		"tag\U000e0041":            `tag\U000e0041`,
		"bad\xffutf8":              `bad\xffutf8`,
		"nul\x00":                  `nul\x00`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLines(t *testing.T) {
	if got, want := Lines("{\n  \"a\": \"\u202e\x1b\"\n}"), "{\n  \"a\": \"\\u202e\\x1b\"\n}"; got != want {
		t.Fatalf("Lines = %q, want %q", got, want)
	}
}

func TestEscapeUnchangedIsSame(t *testing.T) {
	s := "plain ascii, nothing to do"
	if got := Escape(s); got != s {
		t.Fatalf("got %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { Escape(s) }); n != 0 {
		t.Fatalf("Escape of safe text allocates %v times", n)
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"abcdef", 3, "abc…"}, {"aéb", 2, "a…"}, {"ééé", 4, "éé…"}} {
		if got := Clip(c.in, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
