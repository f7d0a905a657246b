package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// decodeEach decodes prim over the value v points to one key at a time, so that every value of
// the wrong type is reported (with its key path) instead of only the first: BurntSushi/toml
// stops a Decode at its first error. Tables are decoded into their struct's fields key by key,
// arrays of tables element by element; anything else (a scalar, a list, a map, a type that
// unmarshals itself) is decoded whole. A key no field takes is an unknown key. (Decoding a
// table into a map marks its keys decoded, so MetaData.Undecoded cannot tell them any more.)
//
// raw is the document md was decoded from: the line of a key inside an array of tables is found
// in it (lineOf).
func decodeEach(raw []byte, md toml.MetaData, prim toml.Primitive, v any, path string) []error {
	errs := decodeValue(md, prim, reflect.ValueOf(v).Elem(), path)
	for _, err := range errs {
		var kp *keyProblem
		if errors.As(err, &kp) && kp.line > 0 && strings.Contains(kp.path, "[") {
			if l := lineOf(raw, kp.path); l > 0 {
				kp.line = l
			}
		}
	}
	return errs
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func decodeValue(md toml.MetaData, prim toml.Primitive, rv reflect.Value, path string) []error {
	t := rv.Type()
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshaler):
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		return decodeValue(md, prim, rv.Elem(), path)
	case t.Kind() == reflect.Struct:
		return decodeTable(md, prim, rv, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !reflect.PointerTo(t.Elem()).Implements(textUnmarshaler):
		return decodeTables(md, prim, rv, path)
	}
	if err := md.PrimitiveDecode(prim, rv.Addr().Interface()); err != nil {
		return []error{keyError(path, err)}
	}
	return nil
}

// decodeTable decodes a TOML table into the struct rv, field by field in the struct's order
// (the order config.toml.example documents them in); the keys no field takes come last.
func decodeTable(md toml.MetaData, prim toml.Primitive, rv reflect.Value, path string) []error {
	var keys map[string]toml.Primitive
	if err := md.PrimitiveDecode(prim, &keys); err != nil {
		return []error{keyError(path, err)}
	}
	errs := decodeFields(md, keys, rv, path)
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		errs = append(errs, fmt.Errorf("%s: unknown key", join(path, k)))
	}
	return errs
}

// decodeFields decodes into the fields of the struct rv the keys that name them, and deletes
// those from keys. The fields of an embedded struct without a toml name take keys of the same
// table, as BurntSushi/toml decodes them (push.RetryPolicy in [[targets]] and [[webhooks]]).
func decodeFields(md toml.MetaData, keys map[string]toml.Primitive, rv reflect.Value, path string) []error {
	var errs []error
	t := rv.Type()
	for i := range t.NumField() {
		if inline(t.Field(i)) {
			errs = append(errs, decodeFields(md, keys, rv.Field(i), path)...)
			continue
		}
		k, ok := keyOf(t.Field(i), keys)
		if !ok {
			continue
		}
		errs = append(errs, decodeValue(md, keys[k], rv.Field(i), join(path, k))...)
		delete(keys, k)
	}
	return errs
}

// inline reports whether sf is an embedded struct whose fields are keys of the table that
// holds it: it has no toml name and does not unmarshal itself.
func inline(sf reflect.StructField) bool {
	name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
	return sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct &&
		!reflect.PointerTo(sf.Type).Implements(textUnmarshaler)
}

// decodeTables decodes an array of tables into the slice of structs rv, element by element.
func decodeTables(md toml.MetaData, prim toml.Primitive, rv reflect.Value, path string) []error {
	var elems []toml.Primitive
	if err := md.PrimitiveDecode(prim, &elems); err != nil {
		return []error{keyError(path, err)}
	}
	out := reflect.MakeSlice(rv.Type(), len(elems), len(elems))
	var errs []error
	for i, p := range elems {
		errs = append(errs, decodeValue(md, p, out.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
	}
	rv.Set(out)
	return errs
}

// keyOf returns the key of keys that names field sf: its toml tag (or its name), exactly, else
// ignoring case, as BurntSushi/toml matches them. Unexported and "-" fields take no key.
func keyOf(sf reflect.StructField, keys map[string]toml.Primitive) (string, bool) {
	name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
	switch {
	case !sf.IsExported() || name == "-":
		return "", false
	case name == "":
		name = sf.Name
	}
	if _, ok := keys[name]; ok {
		return name, true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// tomlPrefix is how BurntSushi/toml starts a type error: "toml: line 6 (last key "a.b"): ".
var tomlPrefix = regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key "[^"]*"\): )?`)

// keyProblem is a decode error of the key at path, set on line (0: not known).
type keyProblem struct {
	path string
	line int
	msg  string
}

func (e *keyProblem) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.path, e.line, e.msg)
	}
	return e.path + ": " + e.msg
}

// keyError says which key a decode error is about, and on which line.
func keyError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &keyProblem{path: path, line: pe.Position.Line, msg: pe.Message}
	}
	kp := &keyProblem{path: path, msg: err.Error()}
	if m := tomlPrefix.FindStringSubmatch(kp.msg); m != nil {
		kp.msg = kp.msg[len(m[0]):]
		kp.line, _ = strconv.Atoi(m[1])
	}
	return kp
}

// lineOf returns the line that sets the key at path ("webhooks[1].timeout"), or 0 when it
// cannot tell. BurntSushi/toml knows a key's line by its dotted name, which every element of an
// array of tables shares: it would report a wrong value of webhooks[0] on the line of the same
// key in the last webhook that sets it. The line is that of the first prefix of the document,
// in whole lines, that parses and holds path (the last line of a value over several lines).
// It parses the document once a line, so it is for errors only.
func lineOf(raw []byte, path string) int {
	end := 0
	for line := 1; end < len(raw); line++ {
		if i := bytes.IndexByte(raw[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(raw)
		}
		var doc map[string]any
		if _, err := toml.Decode(string(raw[:end]), &doc); err == nil && holds(doc, path) {
			return line
		}
	}
	return 0
}

// holds reports whether doc, a document decoded into maps, sets the key at path. Keys with a
// dot or a bracket in their name are not found.
func holds(doc map[string]any, path string) bool {
	var v any = doc
	for _, seg := range strings.Split(path, ".") {
		name, idx, indexed := strings.Cut(seg, "[")
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[name]; !ok {
			return false
		}
		if !indexed {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
		tables, ok := v.([]map[string]any)
		if err != nil || !ok || i < 0 || i >= len(tables) {
			return false
		}
		v = tables[i]
	}
	return true
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
