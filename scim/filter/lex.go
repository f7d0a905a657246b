package filter

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

type tokenKind uint8

const (
	tokEOF    tokenKind = iota
	tokWord             // a bare word: attribute path, operator, keyword or unquoted value
	tokString           // a JSON string; text holds the decoded value
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
)

// token is one lexeme. pos is its byte offset in the source.
type token struct {
	kind tokenKind
	pos  int
	text string
}

// describe renders t for an error message.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of filter"
	case tokString:
		return "string " + strconv.Quote(t.text)
	case tokLParen:
		return `"("`
	case tokRParen:
		return `")"`
	case tokLBracket:
		return `"["`
	case tokRBracket:
		return `"]"`
	}
	return strconv.Quote(t.text)
}

// lexer splits a filter into tokens. Words are deliberately broad — any run of bytes other than
// white space, parentheses, brackets and double quotes — so that the lexer never needs context:
// the parser decides whether a word is an operator, a keyword, an attribute path (and checks
// its characters) or an unquoted value (Entra's `externalId eq 123abc`).
type lexer struct {
	src string
	pos int
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
		l.pos++
	}
	start := l.pos
	if start == len(l.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	c := l.src[start]
	if k := punct(c); k != tokEOF {
		l.pos++
		return token{kind: k, pos: start, text: l.src[start:l.pos]}, nil
	}
	if c == '"' {
		return l.lexString()
	}
	for l.pos < len(l.src) && isWordByte(l.src[l.pos]) {
		l.pos++
	}
	return token{kind: tokWord, pos: start, text: l.src[start:l.pos]}, nil
}

func punct(c byte) tokenKind {
	switch c {
	case '(':
		return tokLParen
	case ')':
		return tokRParen
	case '[':
		return tokLBracket
	case ']':
		return tokRBracket
	}
	return tokEOF
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool {
	return !isSpace(c) && c != '"' && punct(c) == tokEOF
}

// lexString scans a JSON string (RFC 8259 §7). Raw control characters are tolerated, as are
// invalid UTF-8 bytes, which are kept as they are; a lone \u surrogate becomes U+FFFD, as in
// encoding/json.
func (l *lexer) lexString() (token, error) {
	start := l.pos
	i := start + 1
	// Fast path: no escapes, the value is a substring of the source.
	for i < len(l.src) && l.src[i] != '"' && l.src[i] != '\\' {
		i++
	}
	if i < len(l.src) && l.src[i] == '"' {
		l.pos = i + 1
		return token{kind: tokString, pos: start, text: l.src[start+1 : i]}, nil
	}
	var b strings.Builder
	b.WriteString(l.src[start+1 : i])
	for {
		if i >= len(l.src) {
			return token{}, errorf(start, "unterminated string: a string opened with \" must end with \"")
		}
		switch c := l.src[i]; c {
		case '"':
			l.pos = i + 1
			return token{kind: tokString, pos: start, text: b.String()}, nil
		case '\\':
			n, err := unescape(l.src, i, &b)
			if err != nil {
				return token{}, err
			}
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
}

// unescape decodes the escape sequence at src[i] (a backslash) into b and returns its length.
func unescape(src string, i int, b *strings.Builder) (int, error) {
	if i+1 >= len(src) {
		return 0, errorf(i, "unterminated string: it ends in a lone \\")
	}
	switch c := src[i+1]; c {
	case '"', '\\', '/':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r, ok := hex4(src, i+2)
		if !ok {
			return 0, errorf(i, `invalid escape: \u must be followed by four hex digits`)
		}
		n := 6
		if utf16.IsSurrogate(r) {
			r2, ok := rune(0), false
			if i+7 < len(src) && src[i+6] == '\\' && src[i+7] == 'u' {
				r2, ok = hex4(src, i+8)
			}
			if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
				r, n = dec, 12
			} else {
				r = utf8.RuneError
			}
		}
		b.WriteRune(r)
		return n, nil
	default:
		_, size := utf8.DecodeRuneInString(src[i+1:])
		return 0, errorf(i, "invalid escape "+strconv.Quote(src[i:i+1+size])+
			` in string; JSON allows \" \\ \/ \b \f \n \r \t and \uXXXX`)
	}
	return 2, nil
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// quote renders s as a JSON string that lexString decodes back to s byte for byte: only '"',
// '\\' and control characters are escaped, everything else (including invalid UTF-8) is copied.
func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
