package filter

import (
	"strconv"
	"strings"
)

// The grammar, RFC 7644 §3.4.2.2 figure 1 (ABNF, RFC 5234: quoted strings are case-insensitive):
//
//	FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//
//	valuePath = attrPath "[" valFilter "]"
//	            ; FILTER uses sub-attributes of a parent attrPath
//
//	valFilter = attrExp / logExp / *1"not" "(" valFilter ")"
//
//	attrExp   = (attrPath SP "pr") /
//	            (attrPath SP compareOp SP compValue)
//
//	logExp    = FILTER SP ("and" / "or") SP FILTER
//
//	compValue = false / null / true / number / string
//	            ; rules from JSON (RFC 7159)
//
//	compareOp = "eq" / "ne" / "co" /
//	                   "sw" / "ew" /
//	                   "gt" / "lt" /
//	                   "ge" / "le"
//
//	attrPath  = [URI ":"] ATTRNAME *1subAttr
//	            ; SCIM attribute name
//	            ; URI is SCIM "schema" URI
//
//	ATTRNAME  = ALPHA *(nameChar)
//
//	nameChar  = "-" / "_" / DIGIT / ALPHA
//
//	subAttr   = "." ATTRNAME
//	            ; a sub-attribute of a complex attribute
//
// The ABNF's logExp is ambiguous; the RFC's prose gives the precedence (not, then and, then or;
// parentheses group). The recursive descent below implements this equivalent grammar:
//
//	filter  = orExp
//	orExp   = andExp *("or" andExp)
//	andExp  = unary *("and" unary)
//	unary   = "not" "(" orExp ")" / "(" orExp ")" / attrExp / valuePath [thenExp]
//	thenExp = "." ATTRNAME ("pr" / compareOp compValue)   ; Entra: emails[type eq "work"].value eq "x"
//
// with these leniencies, because real clients send them:
//   - white space is any run of ASCII white space, and may be absent next to ( ) [ ] and strings;
//   - ATTRNAME may also be "$ref" (RFC 7643 §2.1 uses it as a sub-attribute name);
//   - compValue may be an unquoted word, which is a string unless it is a JSON number, true, false
//     or null (Entra documents `externalId eq 123abc`);
//   - thenExp after a valuePath (Entra).
//
// Inside a valuePath, valFilter uses the same rules minus a nested valuePath.

// maxDepth bounds the nesting of parentheses, so that a hostile filter cannot exhaust the stack.
const maxDepth = 100

// MaxTerms bounds the attribute expressions of a filter. Evaluating a filter costs its terms
// times the resources it is tested against: a 1 MB filter of 45,000 "co" terms kept a core busy
// for most of a minute on 20k users. Real clients send a handful; an "or" of lookups by id or
// userName stays far below.
const MaxTerms = 256

// Parse parses a SCIM filter. Errors are *Error.
func Parse(s string) (Expr, error) {
	p := &parser{lx: lexer{src: s}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return nil, errorf(0, "empty filter")
	}
	e, err := p.orExp(false)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, errorf(p.tok.pos, "expected \"and\", \"or\" or the end of the filter after "+
			strconv.Quote(p.prev)+", found "+p.tok.describe())
	}
	return e, nil
}

type parser struct {
	lx    lexer
	tok   token  // the current token
	prev  string // source text of the previous token, for messages
	depth int
	terms int // attribute expressions so far
}

func (p *parser) advance() error {
	p.prev = p.lx.src[p.tok.pos:p.lx.pos]
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// keyword reports whether the current token is the word kw (case-insensitive).
func (p *parser) keyword(kw string) bool {
	return p.tok.kind == tokWord && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) orExp(inValuePath bool) (Expr, error) {
	return p.chain(Or, inValuePath)
}

// chain parses operands joined by op: orExp when op is Or (operands are andExp), andExp when op
// is And (operands are unary).
func (p *parser) chain(op LogicOp, inValuePath bool) (Expr, error) {
	operand := func() (Expr, error) {
		if op == Or {
			return p.chain(And, inValuePath)
		}
		return p.unary(inValuePath)
	}
	first, err := operand()
	if err != nil {
		return nil, err
	}
	if !p.keyword(op.String()) {
		return first, nil
	}
	l := &Logical{Op: op, Terms: []Expr{first}}
	for p.keyword(op.String()) {
		if err := p.advance(); err != nil {
			return nil, err
		}
		t, err := operand()
		if err != nil {
			return nil, err
		}
		l.Terms = append(l.Terms, t)
	}
	return l, nil
}

func (p *parser) unary(inValuePath bool) (Expr, error) {
	switch {
	case p.tok.kind == tokLParen:
		return p.group(inValuePath)
	case p.keyword("not"):
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokLParen {
			return nil, errorf(p.tok.pos, "expected \"(\" after \"not\", found "+p.tok.describe()+
				"; write not (expression)")
		}
		x, err := p.group(inValuePath)
		if err != nil {
			return nil, err
		}
		return &Not{X: x, NotPos: pos}, nil
	case p.tok.kind == tokWord && !p.keyword("and") && !p.keyword("or"):
		return p.attrExp(inValuePath)
	}
	return nil, errorf(p.tok.pos, "expected an attribute name, \"not\" or \"(\", found "+p.tok.describe())
}

// group parses "(" orExp ")".
func (p *parser) group(inValuePath bool) (Expr, error) {
	open := p.tok.pos
	if p.depth++; p.depth > maxDepth {
		return nil, errorf(open, "filter nested too deeply (more than "+strconv.Itoa(maxDepth)+" levels)")
	}
	defer func() { p.depth-- }()
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.orExp(inValuePath)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokRParen {
		return nil, errorf(p.tok.pos, "expected \")\" to close the \"(\" at "+strconv.Itoa(open)+
			", found "+p.tok.describe())
	}
	return x, p.advance()
}

// attrExp parses an attribute expression or a value path, starting at a word.
func (p *parser) attrExp(inValuePath bool) (Expr, error) {
	if p.terms++; p.terms > MaxTerms {
		return nil, errorf(p.tok.pos, "filter has more than "+strconv.Itoa(MaxTerms)+" attribute expressions")
	}
	path, err := parseAttrPath(p.tok)
	if err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokLBracket {
		if inValuePath {
			return nil, errorf(p.tok.pos, "complex value filters cannot be nested")
		}
		return p.valuePath(path)
	}
	return p.comparison(path)
}

// comparison parses `pr` or `compareOp compValue` after path.
func (p *parser) comparison(path AttrPath) (*Compare, error) {
	op := Op(0)
	if p.tok.kind == tokWord {
		op = lookupOp(p.tok.text)
	}
	if op == 0 {
		return nil, errorf(p.tok.pos, "expected a comparison operator after "+strconv.Quote(p.prev)+
			", found "+p.tok.describe()+"; use one of eq ne co sw ew gt ge lt le pr")
	}
	c := &Compare{Attr: path, Op: op, OpPos: p.tok.pos}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if op == OpPr {
		return c, nil
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	c.Value = v
	return c, p.advance()
}

func (p *parser) valuePath(path AttrPath) (Expr, error) {
	open := p.tok.pos
	if path.Sub != "" {
		return nil, errorf(open, "a complex value filter applies to an attribute, not to the sub-attribute "+
			strconv.Quote(path.String())+"; write "+path.Name+"["+path.Sub+" ...]")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	f, err := p.orExp(true)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokRBracket {
		return nil, errorf(p.tok.pos, "expected \"]\" to close the \"[\" at "+strconv.Itoa(open)+
			", found "+p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	vp := &ValuePath{Attr: path, Filter: f}
	if p.tok.kind == tokWord && p.tok.text[0] == '.' {
		sub := p.tok
		sub.text, sub.pos = sub.text[1:], sub.pos+1
		if !isAttrName(sub.text) {
			return nil, errorf(sub.pos, "expected a sub-attribute name after \"].\", found "+sub.describe())
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		vp.Then, err = p.comparison(AttrPath{Name: sub.text, Pos: sub.pos})
		if err != nil {
			return nil, err
		}
	}
	return vp, nil
}

// value parses compValue.
func (p *parser) value() (Value, error) {
	t := p.tok
	switch t.kind {
	case tokString:
		return Value{Kind: KindString, Text: t.text, Pos: t.pos}, nil
	case tokWord:
		return wordValue(t)
	}
	return Value{}, errorf(t.pos, "expected a value after "+strconv.Quote(p.prev)+", found "+t.describe())
}

// wordValue classifies an unquoted value: true, false, null (case-insensitive), a JSON number,
// or else a string.
func wordValue(t token) (Value, error) {
	v := Value{Kind: KindString, Text: t.text, Pos: t.pos}
	switch w := strings.ToLower(t.text); w {
	case "true", "false":
		v.Kind, v.Text = KindBool, w
	case "null":
		v.Kind, v.Text = KindNull, w
	default:
		if !isJSONNumber(t.text) {
			return v, nil
		}
		n, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return v, errorf(t.pos, "number "+t.text+" is out of range")
		}
		v.Kind, v.Num = KindNumber, n
	}
	return v, nil
}

// isJSONNumber reports whether s is a number per RFC 8259 §6:
// [ "-" ] ( "0" / [1-9] *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "+" / "-" ] 1*DIGIT ].
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		if j := digits(s, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// parseAttrPath checks a word against attrPath = [URI ":"] ATTRNAME *1subAttr. The URI is
// everything before the last colon (schema URNs contain dots, as in "2.0").
func parseAttrPath(t token) (AttrPath, error) {
	w := t.text
	p := AttrPath{Pos: t.pos}
	if i := strings.LastIndexByte(w, ':'); i >= 0 {
		p.URI, w = w[:i], w[i+1:]
		if p.URI == "" {
			return p, errorf(t.pos, "expected a schema URI before \":\" in "+strconv.Quote(t.text))
		}
	}
	p.Name, p.Sub, _ = strings.Cut(w, ".")
	if !isAttrName(p.Name) || (p.Sub != "" || len(w) > len(p.Name)) && !isAttrName(p.Sub) {
		return p, errorf(t.pos, "expected an attribute name, found "+strconv.Quote(t.text)+
			"; attribute names are letters, digits, - and _, starting with a letter, as in name.givenName")
	}
	return p, nil
}

// isAttrName reports whether s is an ATTRNAME, or "$" followed by one ("$ref").
func isAttrName(s string) bool {
	s = strings.TrimPrefix(s, "$")
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !('0' <= c && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
