package filter

import (
	"strings"
)

// Expr is a node of a parsed filter: *Compare, *ValuePath, *Logical or *Not.
//
// String renders the node back into filter syntax such that Parse(e.String()) yields an
// expression Equal to e. Attribute names keep the spelling the client used.
type Expr interface {
	String() string
	// Pos is the byte offset of the node's first token in the parsed text.
	Pos() int
	writeTo(b *strings.Builder)
}

// Op is a comparison operator (RFC 7644 §3.4.2.2, table 3).
type Op uint8

// The comparison operators. OpPr ("present") takes no value.
const (
	OpEq Op = iota + 1
	OpNe
	OpCo
	OpSw
	OpEw
	OpGt
	OpGe
	OpLt
	OpLe
	OpPr
)

var opNames = [...]string{OpEq: "eq", OpNe: "ne", OpCo: "co", OpSw: "sw", OpEw: "ew",
	OpGt: "gt", OpGe: "ge", OpLt: "lt", OpLe: "le", OpPr: "pr"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return "op?"
}

// lookupOp returns the operator spelled w (case-insensitive), or 0.
func lookupOp(w string) Op {
	if len(w) != 2 {
		return 0
	}
	for o := OpEq; o <= OpPr; o++ {
		if strings.EqualFold(w, opNames[o]) {
			return o
		}
	}
	return 0
}

// AttrPath is an attribute path: [URI ":"] Name ["." Sub].
type AttrPath struct {
	URI  string // schema URN, or ""
	Name string
	Sub  string // sub-attribute name, or ""
	Pos  int
}

func (p AttrPath) String() string {
	var b strings.Builder
	p.writeTo(&b)
	return b.String()
}

func (p AttrPath) writeTo(b *strings.Builder) {
	if p.URI != "" {
		b.WriteString(p.URI)
		b.WriteByte(':')
	}
	b.WriteString(p.Name)
	if p.Sub != "" {
		b.WriteByte('.')
		b.WriteString(p.Sub)
	}
}

// ValueKind is the JSON type of a comparison value.
type ValueKind uint8

// The value kinds.
const (
	KindString ValueKind = iota + 1
	KindNumber
	KindBool
	KindNull
)

// Value is a comparison value. Text is the decoded string for KindString, the literal as written
// for KindNumber ("1.50"), and "true", "false" or "null" otherwise. Num is the number's value.
// An unquoted word that is not a number, boolean or null (Entra's `externalId eq 123abc`) is a
// KindString.
type Value struct {
	Kind ValueKind
	Text string
	Num  float64
	Pos  int
}

// Bool reports whether v is the boolean true.
func (v Value) Bool() bool { return v.Kind == KindBool && v.Text == "true" }

func (v Value) writeTo(b *strings.Builder) {
	if v.Kind == KindString {
		quote(b, v.Text)
		return
	}
	b.WriteString(v.Text)
}

// Compare is an attribute expression: `Attr Op Value`, or `Attr pr`.
type Compare struct {
	Attr  AttrPath
	Op    Op
	Value Value // zero for OpPr
	OpPos int
}

func (c *Compare) Pos() int       { return c.Attr.Pos }
func (c *Compare) String() string { return render(c) }

func (c *Compare) writeTo(b *strings.Builder) {
	c.Attr.writeTo(b)
	b.WriteByte(' ')
	b.WriteString(c.Op.String())
	if c.Op != OpPr {
		b.WriteByte(' ')
		c.Value.writeTo(b)
	}
}

// ValuePath is a complex value filter, `Attr[Filter]`: it matches when one element of the
// (multi-valued) complex attribute Attr satisfies Filter, whose attribute paths name
// sub-attributes of Attr.
//
// Then, when set, holds the comparison of Entra's form `emails[type eq "work"].value eq "x"`: the
// same element must also satisfy Then, whose Attr.Name is a sub-attribute of Attr.
type ValuePath struct {
	Attr   AttrPath
	Filter Expr
	Then   *Compare
}

func (v *ValuePath) Pos() int       { return v.Attr.Pos }
func (v *ValuePath) String() string { return render(v) }

func (v *ValuePath) writeTo(b *strings.Builder) {
	v.Attr.writeTo(b)
	b.WriteByte('[')
	v.Filter.writeTo(b)
	b.WriteByte(']')
	if v.Then != nil {
		b.WriteByte('.')
		v.Then.writeTo(b)
	}
}

// LogicOp is "and" or "or".
type LogicOp uint8

// The logical operators.
const (
	And LogicOp = iota + 1
	Or
)

func (o LogicOp) String() string {
	if o == Or {
		return "or"
	}
	return "and"
}

// Logical is a chain of two or more terms joined by the same operator: `a and b and c`.
// The parser builds one node per chain; a parenthesized chain of the same operator stays a
// separate node (and prints with its parentheses).
type Logical struct {
	Op    LogicOp
	Terms []Expr
}

func (l *Logical) Pos() int       { return l.Terms[0].Pos() }
func (l *Logical) String() string { return render(l) }

func (l *Logical) writeTo(b *strings.Builder) {
	for i, t := range l.Terms {
		if i > 0 {
			b.WriteByte(' ')
			b.WriteString(l.Op.String())
			b.WriteByte(' ')
		}
		// "and" binds tighter than "or": an "or" chain inside "and" needs parentheses, and so
		// does a nested chain of the same operator, to keep its shape.
		if in, ok := t.(*Logical); ok && (in.Op == l.Op || in.Op == Or) {
			b.WriteByte('(')
			t.writeTo(b)
			b.WriteByte(')')
			continue
		}
		t.writeTo(b)
	}
}

// Not is `not (X)`.
type Not struct {
	X      Expr
	NotPos int
}

func (n *Not) Pos() int       { return n.NotPos }
func (n *Not) String() string { return render(n) }

func (n *Not) writeTo(b *strings.Builder) {
	b.WriteString("not (")
	n.X.writeTo(b)
	b.WriteByte(')')
}

func render(e Expr) string {
	var b strings.Builder
	e.writeTo(&b)
	return b.String()
}

// Equal reports whether a and b are the same expression, ignoring positions.
func Equal(a, b Expr) bool {
	switch a := a.(type) {
	case *Compare:
		b, ok := b.(*Compare)
		return ok && equalCompare(a, b)
	case *ValuePath:
		b, ok := b.(*ValuePath)
		if !ok || !equalPath(a.Attr, b.Attr) || !Equal(a.Filter, b.Filter) || (a.Then == nil) != (b.Then == nil) {
			return false
		}
		return a.Then == nil || equalCompare(a.Then, b.Then)
	case *Logical:
		b, ok := b.(*Logical)
		if !ok || a.Op != b.Op || len(a.Terms) != len(b.Terms) {
			return false
		}
		for i := range a.Terms {
			if !Equal(a.Terms[i], b.Terms[i]) {
				return false
			}
		}
		return true
	case *Not:
		b, ok := b.(*Not)
		return ok && Equal(a.X, b.X)
	case nil:
		return b == nil
	}
	return false
}

func equalCompare(a, b *Compare) bool {
	return equalPath(a.Attr, b.Attr) && a.Op == b.Op &&
		a.Value.Kind == b.Value.Kind && a.Value.Text == b.Value.Text
}

func equalPath(a, b AttrPath) bool {
	return a.URI == b.URI && a.Name == b.Name && a.Sub == b.Sub
}
