package filter

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// Validate checks e against the schema of a resource type: every attribute path must resolve,
// and every operator and value must make sense for the attribute's type. Errors are *Error with
// the position of the offending attribute, operator or value.
//
// The rules beyond "the attribute exists", where RFC 7644 §3.4.2.2 leaves room:
//   - gt, ge, lt, le on boolean or binary attributes are errors (the RFC says so); so are co, sw,
//     ew on anything but strings and references (dateTime, numbers, booleans, binary);
//   - a complex attribute compared without a sub-attribute means its "value" sub-attribute
//     (`emails co "example.com"`, an RFC example); one without "value" (name, meta) allows only pr;
//   - the value must fit the type: true/false for booleans, a number for integer and decimal, an
//     RFC 3339 string for dateTime; null only with eq and ne. String attributes accept any value
//     and compare it as written (`externalId eq 12345` compares with "12345");
//   - attributes with returned "never" cannot be filtered on.
func Validate(e Expr, rs *scim.ResourceSchema) error {
	_, err := Compile(e, rs)
	return err
}

// resolve finds the definition of path at top level (elem == nil) or, inside a value path, as a
// sub-attribute of elem.
func resolve(rs *scim.ResourceSchema, path AttrPath, elem *scim.AttrRef) (scim.AttrRef, error) {
	if elem == nil {
		ref, err := rs.Resolve(path.URI, path.Name, path.Sub)
		if err != nil {
			return ref, errorf(path.Pos, errMessage(err))
		}
		return ref, nil
	}
	parent := elem.Attr.Name
	if path.URI != "" || path.Sub != "" {
		return scim.AttrRef{}, errorf(path.Pos, "inside "+parent+"[...], name a sub-attribute of "+
			parent+" without schema or dots, such as "+elem.Attr.SubAttributes[0].Name+"; found "+
			strconv.Quote(path.String()))
	}
	sub := elem.Attr.SubAttribute(path.Name)
	if sub == nil {
		return scim.AttrRef{}, errorf(path.Pos, strconv.Quote(parent)+" has no sub-attribute "+strconv.Quote(path.Name))
	}
	ref := *elem
	ref.Sub = sub
	return ref, nil
}

func errMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, scim.ErrUnknownAttribute) {
		msg = strings.TrimPrefix(msg, scim.ErrUnknownAttribute.Error()+": ")
	}
	return msg
}

// checkCompare applies the type rules to a comparison whose attribute resolved to ref, which
// already carries the implied "value" sub-attribute if any.
func checkCompare(c *Compare, ref scim.AttrRef) error {
	def := ref.Def()
	name := strconv.Quote(c.Attr.String())
	if def.Returned == scim.ReturnedNever {
		return errorf(c.Attr.Pos, name+" cannot be used in a filter")
	}
	if c.Op == OpPr {
		return nil
	}
	if def.Type == scim.TypeComplex {
		return errorf(c.OpPos, name+" is complex: compare one of its sub-attributes, such as "+
			c.Attr.String()+"."+def.SubAttributes[0].Name+", or use pr")
	}
	if err := checkOp(c, def, name); err != nil {
		return err
	}
	return checkValue(c, def, name)
}

func checkOp(c *Compare, def *scim.Attribute, name string) error {
	switch c.Op {
	case OpCo, OpSw, OpEw:
		if def.Type != scim.TypeString && def.Type != scim.TypeReference {
			return errorf(c.OpPos, c.Op.String()+" needs a string attribute, but "+name+" is "+
				string(def.Type)+"; use eq, ne, gt, ge, lt or le")
		}
	case OpGt, OpGe, OpLt, OpLe:
		if def.Type == scim.TypeBoolean || def.Type == scim.TypeBinary {
			return errorf(c.OpPos, c.Op.String()+" cannot order "+name+", which is "+string(def.Type)+"; use eq or ne")
		}
	}
	return nil
}

func checkValue(c *Compare, def *scim.Attribute, name string) error {
	v := c.Value
	if v.Kind == KindNull {
		if c.Op != OpEq && c.Op != OpNe {
			return errorf(v.Pos, "null can only be used with eq and ne")
		}
		return nil
	}
	switch def.Type {
	case scim.TypeBoolean:
		if _, ok := boolValue(v); !ok {
			return errorf(v.Pos, name+" is boolean: compare it with true or false, not "+v.describe())
		}
	case scim.TypeInteger, scim.TypeDecimal:
		if _, ok := numValue(v); !ok {
			return errorf(v.Pos, name+" is a number: compare it with a number, not "+v.describe())
		}
	case scim.TypeDateTime:
		if _, ok := timeValue(v); !ok {
			return errorf(v.Pos, name+" is a dateTime: compare it with an RFC 3339 string such as "+
				"\"2011-05-13T04:42:34Z\", not "+v.describe())
		}
	}
	return nil
}

func (v Value) describe() string {
	if v.Kind == KindString {
		return strconv.Quote(v.Text)
	}
	return v.Text
}

// boolValue accepts true/false and, leniently, the strings "true"/"false" in any case.
func boolValue(v Value) (bool, bool) {
	switch {
	case v.Kind == KindBool:
		return v.Text == "true", true
	case v.Kind == KindString && strings.EqualFold(v.Text, "true"):
		return true, true
	case v.Kind == KindString && strings.EqualFold(v.Text, "false"):
		return false, true
	}
	return false, false
}

// numValue accepts numbers and, leniently, strings that hold one.
func numValue(v Value) (float64, bool) {
	switch v.Kind {
	case KindNumber:
		return v.Num, true
	case KindString:
		n, err := strconv.ParseFloat(strings.TrimSpace(v.Text), 64)
		return n, err == nil
	}
	return 0, false
}

func timeValue(v Value) (time.Time, bool) {
	if v.Kind != KindString {
		return time.Time{}, false
	}
	return parseTime(v.Text)
}

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
