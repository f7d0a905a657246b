package filter

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// Evaluation semantics, where RFC 7644 §3.4.2.2 is silent or loose:
//   - A multi-valued attribute matches when any of its values matches.
//   - An absent attribute (missing, null, "", empty list or complex value, zero time) makes every
//     comparison false except ne, which is true: ne reads "no value equals the operand", so that
//     `not (title eq "x")` and `title ne "x"` agree on a user without a title.
//   - eq null matches an absent attribute, ne null a present one (the same as pr).
//   - pr: present means non-empty; false and 0 are values, so `active pr` matches active=false.
//   - Strings follow the attribute's caseExact; ordering (gt, ge, lt, le) on strings is
//     lexicographic by bytes, after lower-casing when not caseExact. dateTime compares instants.
//   - A stored value of the wrong type (a number where the schema says string, say) is compared
//     as its text when that is unambiguous, and otherwise does not match (ne: matches).

type node interface {
	// match evaluates the node on ev.r; elem is the current element inside a value path.
	match(ev *eval, elem any) bool
}

// eval is the state of one Match: the resource, and the string values lower-cased so far. A
// case-insensitive co, sw, ew or ordering needs the value lower-cased; a filter of many such
// terms on one attribute would otherwise lower-case (and allocate) the same value once per term.
// The value buffers are reused for the same reason: a getter's buffer escapes, so a buffer
// declared per comparison was allocated per term.
type eval struct {
	r      *scim.Resource
	k, v   string            // the first value lower-cased, and its lower case
	hasK   bool              // k is set
	folded map[string]string // the others, value → lower case
	vals   []any             // a comparison's values (comparisons do not nest)
	elems  []any             // a value path's elements (value paths do not nest)
	buf    [8]any            // vals' first backing array
}

func newEval(r *scim.Resource) *eval {
	ev := &eval{r: r}
	ev.vals = ev.buf[:0]
	return ev
}

// lower returns strings.ToLower(s), computing it once per distinct value and Match.
func (ev *eval) lower(s string) string {
	if ev.hasK && ev.k == s {
		return ev.v
	}
	if l, ok := ev.folded[s]; ok {
		return l
	}
	l := strings.ToLower(s)
	switch {
	case !ev.hasK:
		ev.k, ev.v, ev.hasK = s, l, true
	case ev.folded == nil:
		ev.folded = map[string]string{s: l}
	default:
		ev.folded[s] = l
	}
	return l
}

type andNode []node

func (n andNode) match(ev *eval, elem any) bool {
	for _, t := range n {
		if !t.match(ev, elem) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) match(ev *eval, elem any) bool {
	for _, t := range n {
		if t.match(ev, elem) {
			return true
		}
	}
	return false
}

type notNode struct{ x node }

func (n notNode) match(ev *eval, elem any) bool { return !n.x.match(ev, elem) }

// valuePathNode matches when one element of a complex attribute satisfies filter.
type valuePathNode struct {
	elems  getter
	filter node
}

func (n *valuePathNode) match(ev *eval, _ any) bool {
	ev.elems = n.elems(ev.r, nil, ev.elems[:0])
	for _, e := range ev.elems {
		if n.filter.match(ev, e) {
			return true
		}
	}
	return false
}

// cmpNode is one comparison, with its operand converted to the attribute's type.
type cmpNode struct {
	get   getter
	op    Op
	typ   scim.AttrType
	exact bool // compare strings case-sensitively
	null  bool // the operand is null
	s     string
	num   float64
	b     bool
	t     time.Time
}

func (c *cmpNode) match(ev *eval, elem any) bool {
	vals := c.get(ev.r, elem, ev.vals[:0])
	ev.vals = vals
	present := false
	for _, v := range vals {
		if isEmpty(v) {
			continue
		}
		present = true
		if c.op != OpPr && !c.null && c.test(ev, v) {
			return true
		}
	}
	switch {
	case c.op == OpPr:
		return present
	case c.null:
		return present == (c.op == OpNe)
	}
	return c.op == OpNe && !present
}

// test compares one non-empty value with the operand.
func (c *cmpNode) test(ev *eval, v any) bool {
	switch c.typ {
	case scim.TypeBoolean:
		b, ok := leafBool(v)
		if !ok {
			return c.op == OpNe
		}
		return (b == c.b) == (c.op == OpEq)
	case scim.TypeInteger, scim.TypeDecimal:
		n, ok := leafNum(v)
		if !ok || n != n { // not a number, or NaN
			return c.op == OpNe
		}
		return c.ordered(cmp.Compare(n, c.num))
	case scim.TypeDateTime:
		t, ok := leafTime(v)
		if !ok {
			return c.op == OpNe
		}
		return c.ordered(t.Compare(c.t))
	}
	s, ok := leafString(v)
	if !ok {
		return c.op == OpNe
	}
	return c.testString(ev, s)
}

func (c *cmpNode) testString(ev *eval, s string) bool {
	switch {
	case c.op == OpEq && !c.exact:
		return strings.EqualFold(s, c.s)
	case c.op == OpNe && !c.exact:
		return !strings.EqualFold(s, c.s)
	case !c.exact:
		s = ev.lower(s)
	}
	switch c.op {
	case OpCo:
		return strings.Contains(s, c.s)
	case OpSw:
		return strings.HasPrefix(s, c.s)
	case OpEw:
		return strings.HasSuffix(s, c.s)
	}
	return c.ordered(strings.Compare(s, c.s))
}

// ordered applies an eq/ne/gt/ge/lt/le operator to a three-way comparison result.
func (c *cmpNode) ordered(cmp int) bool {
	switch c.op {
	case OpEq:
		return cmp == 0
	case OpNe:
		return cmp != 0
	case OpGt:
		return cmp > 0
	case OpGe:
		return cmp >= 0
	case OpLt:
		return cmp < 0
	case OpLe:
		return cmp <= 0
	}
	return false
}

func leafString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

func leafBool(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		b, err := strconv.ParseBool(v)
		return b, err == nil
	}
	return false, false
}

func leafNum(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	case json.Number:
		n, err := v.Float64()
		return n, err == nil
	case string:
		n, err := strconv.ParseFloat(v, 64)
		return n, err == nil
	}
	return 0, false
}

func leafTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v, true
	case string:
		return parseTime(v)
	}
	return time.Time{}, false
}

// isEmpty reports whether v counts as absent (RFC 7644 "pr": a non-empty value, or a complex
// value with a non-empty sub-attribute).
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case time.Time:
		return v.IsZero()
	case map[string]any:
		for _, x := range v {
			if !isEmpty(x) {
				return false
			}
		}
		return true
	case []any:
		for _, x := range v {
			if !isEmpty(x) {
				return false
			}
		}
		return true
	case []string:
		for _, x := range v {
			if x != "" {
				return false
			}
		}
		return true
	case []map[string]any:
		for _, x := range v {
			if !isEmpty(x) {
				return false
			}
		}
		return true
	case *scim.Member:
		return v.Value == "" && v.Type == "" && v.Display == ""
	}
	return false
}
