package config

import (
	"encoding"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// decodeEach decodes prim over the value v points to one key at a time, so that every value of
// the wrong type is reported (with its key path) instead of only the first: BurntSushi/toml
// stops a Decode at its first error. Tables are decoded into their struct's fields key by key,
// arrays of tables element by element; anything else (a scalar, a list, a map, a type that
// unmarshals itself) is decoded whole. A key no field takes is an unknown key. (Decoding a
// table into a map marks its keys decoded, so MetaData.Undecoded cannot tell them any more.)
func decodeEach(md toml.MetaData, prim toml.Primitive, v any, path string) []error {
	return decodeValue(md, prim, reflect.ValueOf(v).Elem(), path)
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
	var errs []error
	t := rv.Type()
	for i := range t.NumField() {
		k, ok := keyOf(t.Field(i), keys)
		if !ok {
			continue
		}
		errs = append(errs, decodeValue(md, keys[k], rv.Field(i), join(path, k))...)
		delete(keys, k)
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		errs = append(errs, fmt.Errorf("%s: unknown key", join(path, k)))
	}
	return errs
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

// keyError says which key a decode error is about, and on which line.
func keyError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.Position.Line > 0 {
			return fmt.Errorf("%s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("%s: %s", path, pe.Message)
	}
	msg := err.Error()
	if m := tomlPrefix.FindStringSubmatch(msg); m != nil {
		msg = msg[len(m[0]):]
		if m[1] != "" {
			msg = "line " + m[1] + ": " + msg
		}
	}
	return fmt.Errorf("%s: %s", path, msg)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
