package cache

import (
	"encoding/json"
	"strconv"

	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim"
)

// A resource read from the store is decoded by a small decoder of its own: encoding/json's
// decoding into map[string]any took about a fifth of a SCIM lookup that missed the API's hot
// cache. It decodes exactly what encoding/json decodes (objects into map[string]any, arrays
// into []any, numbers into float64): a string with an escape or a non-ASCII byte goes to
// encoding/json, and on a number strconv does not take, or anything unexpected, the decoder
// hands the whole content to encoding/json instead. FuzzDecodeContent holds the two to the
// same result.

// DecodeResource decodes the JSON of a resource into r as json.Unmarshal(body, r) does, at a
// fraction of its cost for a user without meta (what AppendResource writes); anything else
// goes to encoding/json.
func DecodeResource(body []byte, r *scim.Resource) error { return decodeContent(body, r) }

// AppendResource appends r as JSON without its meta (type, id, externalId, dn, attributes,
// members), which DecodeResource reads back into an equal resource: for resources a sync pass
// sets aside before the cache has them.
func AppendResource(buf []byte, r *scim.Resource) ([]byte, error) {
	buf = append(buf, `{"type":`...)
	buf = jsonappend.String(buf, string(r.Type))
	buf = append(buf, `,"id":`...)
	buf = jsonappend.String(buf, r.ID)
	if r.ExternalID != "" {
		buf = append(buf, `,"externalId":`...)
		buf = jsonappend.String(buf, r.ExternalID)
	}
	if r.DN != "" {
		buf = append(buf, `,"dn":`...)
		buf = jsonappend.String(buf, r.DN)
	}
	if r.Attributes != nil {
		var err error
		buf = append(buf, `,"attributes":`...)
		if buf, err = jsonappend.Value(buf, r.Attributes); err != nil {
			return nil, err
		}
	}
	if len(r.Members) > 0 {
		m, err := json.Marshal(r.Members)
		if err != nil {
			return nil, err
		}
		buf = append(append(buf, `,"members":`...), m...)
	}
	return append(buf, '}'), nil
}

// decodeContent decodes stored content into r as json.Unmarshal(body, r) does.
func decodeContent(body []byte, r *scim.Resource) error {
	var c scim.Resource
	if fastContent(body, &c) {
		*r = c
		return nil
	}
	return json.Unmarshal(body, r)
}

// fastContent decodes body into r; false means it could not, and r is to be thrown away.
func fastContent(body []byte, r *scim.Resource) bool {
	d := fastDecoder{b: body}
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return d.end()
	}
	seen := map[string]bool{} // encoding/json merges a repeated object into the first: not here
	for {
		key, ok := d.str()
		if !ok || !d.consume(':') || seen[key] {
			return false
		}
		seen[key] = true
		switch key {
		case "type", "id", "externalId", "dn":
			v, ok := d.value()
			s, isStr := v.(string)
			if !ok || !isStr {
				return false
			}
			switch key {
			case "type":
				r.Type = scim.ResourceType(s)
			case "id":
				r.ID = s
			case "externalId":
				r.ExternalID = s
			default:
				r.DN = s
			}
		case "attributes":
			v, ok := d.value()
			if !ok {
				return false
			}
			switch m := v.(type) {
			case map[string]any:
				r.Attributes = m
			case nil:
				r.Attributes = nil
			default:
				return false
			}
		case "members": // a user's are null; a group's are for encoding/json
			if v, ok := d.value(); !ok || v != nil {
				return false
			}
		default:
			return false
		}
		if d.consume('}') {
			return d.end()
		}
		if !d.consume(',') {
			return false
		}
	}
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips white space and c, if c comes next.
func (d *fastDecoder) consume(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *fastDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// str reads a string. One with an escape or a non-ASCII byte goes to encoding/json, which
// knows what to make of every escape and of invalid UTF-8.
func (d *fastDecoder) str() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	for j := d.i; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := string(d.b[d.i:j])
			d.i = j + 1
			return s, true
		case c < 0x20:
			return "", false
		case c >= 0x80 || c == '\\':
			return d.slowStr()
		}
	}
	return "", false
}

// slowStr reads the string that starts just before d.i with encoding/json.
func (d *fastDecoder) slowStr() (string, bool) {
	start := d.i - 1
	for j := d.i; j < len(d.b); j++ {
		switch d.b[j] {
		case '\\':
			j++ // the escaped byte cannot end the string
		case '"':
			var s string
			if json.Unmarshal(d.b[start:j+1], &s) != nil {
				return "", false
			}
			d.i = j + 1
			return s, true
		}
	}
	return "", false
}

// value reads any JSON value.
func (d *fastDecoder) value() (any, bool) {
	d.space()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		return d.str()
	case c == '{':
		d.i++
		m := map[string]any{}
		if d.consume('}') {
			return m, true
		}
		for {
			k, ok := d.str()
			if !ok || !d.consume(':') {
				return nil, false
			}
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			m[k] = v
			if d.consume('}') {
				return m, true
			}
			if !d.consume(',') {
				return nil, false
			}
		}
	case c == '[':
		d.i++
		list := []any{}
		if d.consume(']') {
			return list, true
		}
		for {
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			list = append(list, v)
			if d.consume(']') {
				return list, true
			}
			if !d.consume(',') {
				return nil, false
			}
		}
	case c == 't':
		return true, d.word("true")
	case c == 'f':
		return false, d.word("false")
	case c == 'n':
		return nil, d.word("null")
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	return nil, false
}

func (d *fastDecoder) word(w string) bool {
	if len(d.b)-d.i >= len(w) && string(d.b[d.i:d.i+len(w)]) == w {
		d.i += len(w)
		return true
	}
	return false
}

// number reads a number of JSON's grammar as encoding/json decodes it into an any: a float64.
func (d *fastDecoder) number() (any, bool) {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return nil, false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	return f, err == nil
}
