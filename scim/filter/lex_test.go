package filter

import (
	"errors"
	"reflect"
	"testing"
)

func lexAll(s string) ([]token, error) {
	l := lexer{src: s}
	var out []token
	for {
		t, err := l.next()
		if err != nil {
			return out, err
		}
		out = append(out, t)
		if t.kind == tokEOF {
			return out, nil
		}
	}
}

func TestLexer(t *testing.T) {
	w := func(pos int, s string) token { return token{kind: tokWord, pos: pos, text: s} }
	str := func(pos int, s string) token { return token{kind: tokString, pos: pos, text: s} }
	p := func(k tokenKind, pos int, s string) token { return token{kind: k, pos: pos, text: s} }
	eof := func(pos int) token { return token{kind: tokEOF, pos: pos} }
	tests := []struct {
		in   string
		want []token
	}{
		{``, []token{eof(0)}},
		{`   `, []token{eof(3)}},
		{`userName eq "bjensen"`, []token{w(0, "userName"), w(9, "eq"), str(12, "bjensen"), eof(21)}},
		{"a\teq\n\"x\"", []token{w(0, "a"), w(2, "eq"), str(5, "x"), eof(8)}},
		{`not(a pr)`, []token{w(0, "not"), p(tokLParen, 3, "("), w(4, "a"), w(6, "pr"), p(tokRParen, 8, ")"), eof(9)}},
		{`emails[type eq"work"].value`, []token{w(0, "emails"), p(tokLBracket, 6, "["), w(7, "type"),
			w(12, "eq"), str(14, "work"), p(tokRBracket, 20, "]"), w(21, ".value"), eof(27)}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`, []token{
			w(0, "urn:ietf:params:scim:schemas:core:2.0:User:userName"), w(52, "sw"), str(55, "J"), eof(58)}},
		{`externalId eq 123abc`, []token{w(0, "externalId"), w(11, "eq"), w(14, "123abc"), eof(20)}},
		{`x eq -1.5e+3`, []token{w(0, "x"), w(2, "eq"), w(5, "-1.5e+3"), eof(12)}},
		{`groups.$ref pr`, []token{w(0, "groups.$ref"), w(12, "pr"), eof(14)}},
		{`""`, []token{str(0, ""), eof(2)}},
		{`"O'Malley"`, []token{str(0, "O'Malley"), eof(10)}},
		{`"a\"b\\c\/d"`, []token{str(0, `a"b\c/d`), eof(12)}},
		{`"\b\f\n\r\t"`, []token{str(0, "\b\f\n\r\t"), eof(12)}},
		{`"\u00e9\u00E9"`, []token{str(0, "éé"), eof(14)}},
		{`"\ud83d\ude00"`, []token{str(0, "😀"), eof(14)}},
		{`"\ud83dx"`, []token{str(0, "\uFFFDx"), eof(9)}},
		{`"\ud83d\u0041"`, []token{str(0, "\uFFFDA"), eof(14)}},
		{"\"M\u00fcller\" x", []token{str(0, "Müller"), w(10, "x"), eof(11)}},
		{"\"raw\x01ctl\"", []token{str(0, "raw\x01ctl"), eof(9)}},
		{"\"bad\xffutf8\"", []token{str(0, "bad\xffutf8"), eof(10)}},
		{`a eq "x"]`, []token{w(0, "a"), w(2, "eq"), str(5, "x"), p(tokRBracket, 8, "]"), eof(9)}},
	}
	for _, tt := range tests {
		got, err := lexAll(tt.in)
		if err != nil {
			t.Errorf("lex(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("lex(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestLexerErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{`a eq "abc`, 5, `unterminated string: a string opened with " must end with "`},
		{`a eq "ab\`, 8, `unterminated string: it ends in a lone \`},
		{`a eq "a\x"`, 7, `invalid escape "\\x" in string; JSON allows \" \\ \/ \b \f \n \r \t and \uXXXX`},
		{`a eq "\u12"`, 6, `invalid escape: \u must be followed by four hex digits`},
		{`a eq "\u12g4"`, 6, `invalid escape: \u must be followed by four hex digits`},
		{`a eq "a\` + "\xff" + `"`, 7, `invalid escape "\\\xff" in string; JSON allows \" \\ \/ \b \f \n \r \t and \uXXXX`},
	}
	for _, tt := range tests {
		_, err := lexAll(tt.in)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("lex(%q): got %v, want an *Error", tt.in, err)
			continue
		}
		if fe.Pos != tt.pos || fe.Msg != tt.msg {
			t.Errorf("lex(%q):\n got at %d: %s\nwant at %d: %s", tt.in, fe.Pos, fe.Msg, tt.pos, tt.msg)
		}
	}
}
