// Package termsafe makes untrusted text (directory values, target responses) safe to print on
// an admin's terminal: control characters and invisible format characters, which could move
// the cursor, clear the screen, forge output lines or reorder text (bidi overrides), are
// replaced by visible escapes such as \x1b, \r and \u202e.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character a terminal could act on written as a visible escape:
// C0 controls and DEL (\t, \n, \r, or \xNN), C1 controls (\u0080-\u009f), Unicode format
// characters (category Cf: bidi marks, embeddings, overrides and isolates, zero-width
// characters, ...), the line and paragraph separators U+2028 and U+2029, and bytes that are not
// UTF-8 (\xNN). Everything else, backslashes included, is unchanged, so a DN's escaped comma
// still reads as in the directory. Text with nothing to escape is returned as is.
func Escape(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafe(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !unsafe(r, size):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// unsafe reports whether the rune r (size bytes of input) must be escaped.
func unsafe(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true // not UTF-8
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true // C0, DEL, C1
	case r < 0xa0:
		return false
	case r == '\u2028', r == '\u2029':
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// Lines escapes s like Escape but keeps its line feeds: for text whose line breaks are its own
// layout and cannot come from a value, such as JSON from json.MarshalIndent (which escapes a
// line feed inside a string).
func Lines(s string) string {
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = Escape(p)
	}
	return strings.Join(parts, "\n")
}

// Strings escapes each string of ss (a new slice).
func Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Escape(s)
	}
	return out
}

// Clip cuts s to at most n bytes on a rune boundary, marking a cut with "…".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
