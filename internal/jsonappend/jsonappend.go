// Package jsonappend writes JSON by appending to a byte slice, for the few shapes the hot paths
// write: SCIM resource attributes (string, bool, numbers, []any, map[string]any), strings and
// times. It produces exactly the bytes encoding/json produces for those shapes (HTML-safe
// strings, sorted map keys, the same number formatting), which the cache relies on: content
// hashes are taken over these bytes, so a different spelling would look like a change. It
// falls back to encoding/json for any other type. encoding/json spends most of the time of a
// big write or a SCIM list in reflection; BenchmarkValue compares the two.
package jsonappend

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// String appends s as a JSON string, exactly as encoding/json writes it.
func String(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// StringBytes is String for a byte slice holding text.
func StringBytes(buf []byte, b []byte) []byte {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return String(buf, string(b))
		}
	}
	buf = append(buf, '"')
	buf = append(buf, b...)
	return append(buf, '"')
}

// Time appends t in UTC as an RFC 3339 string with nanoseconds, as SCIM's meta times are written.
func Time(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, time.RFC3339Nano)
	return append(buf, '"')
}

// Float appends f as encoding/json writes a float64: plain digits from 1e-6 to 1e21, an
// exponent outside. NaN and infinities are not JSON: an error.
func Float(buf []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return buf, fmt.Errorf("jsonappend: unsupported value %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf, nil
}

// Value appends v as JSON, with map keys sorted as encoding/json sorts them.
func Value(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case string:
		return String(buf, x), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case float64:
		return Float(buf, x)
	case json.RawMessage:
		if len(x) == 0 {
			return append(buf, "null"...), nil
		}
		return append(buf, x...), nil // callers pass only compact JSON they produced
	case []string:
		if x == nil {
			return append(buf, "null"...), nil
		}
		buf = append(buf, '[')
		for i, s := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = String(buf, s)
		}
		return append(buf, ']'), nil
	case []any:
		return array(buf, x)
	case map[string]any:
		return object(buf, x)
	}
	b, err := json.Marshal(v)
	return append(buf, b...), err
}

func array(buf []byte, list []any) ([]byte, error) {
	if list == nil {
		return append(buf, "null"...), nil
	}
	buf = append(buf, '[')
	var err error
	for i, e := range list {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = Value(buf, e); err != nil {
			return buf, err
		}
	}
	return append(buf, ']'), nil
}

func object(buf []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(buf, "null"...), nil
	}
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(String(buf, k), ':')
		if buf, err = Value(buf, m[k]); err != nil {
			return buf, err
		}
	}
	return append(buf, '}'), nil
}
