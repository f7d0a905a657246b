package jsonappend

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// Value must write what encoding/json writes for every value encoding/json decodes into any:
// the cache hashes these bytes, so any difference would look like a change of the resource.
func FuzzValue(f *testing.F) {
	for _, seed := range []string{
		`{"userName":"ann","active":true,"emails":[{"value":"a@x","primary":true}]}`,
		`[1000000, 1e21, 1e-7, 0.000001, -0, 1.5, 123456789012345678901234567890, 5e-324]`,
		`{"name":{"formatted":"<b>Ann & Bob</b>","x":"\u2028 \u2029 \u0000 \ud800"}}`,
		`{"z":1,"a":2,"A":3,"":4,"é":5}`,
		`null`, `"\u00e9\u007f"`, `[[],{},[null]]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		want, err := json.Marshal(v)
		if err != nil {
			return
		}
		got, err := Value(nil, v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Value(%s) = %s, %v; encoding/json writes %s", data, got, err, want)
		}
	})
}

// Strings, including invalid UTF-8 and HTML characters, as encoding/json writes them.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\x7f", "\xff\xfe", "a\u2028b", "tab\tquote\"back\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := String(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("String(%q) = %s, encoding/json writes %s", s, got, want)
		}
		if got := StringBytes(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("StringBytes(%q) = %s, encoding/json writes %s", s, got, want)
		}
	})
}

func FuzzFloat(f *testing.F) {
	for _, x := range []float64{0, 1e6, 1e21, 1e20, 1e-6, 1e-7, -2.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		want, werr := json.Marshal(x)
		got, err := Float(nil, x)
		if (err != nil) != (werr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("Float(%v) = %s, %v; encoding/json: %s, %v", x, got, err, want, werr)
		}
	})
}

func TestTimeAndUnsupported(t *testing.T) {
	ts := time.Date(2026, 12, 4, 20, 0, 0, 123000000, time.FixedZone("x", 3600))
	if got := string(Time(nil, ts)); got != `"2026-12-04T19:00:00.123Z"` {
		t.Fatalf("Time: %s", got)
	}
	if _, err := Value(nil, map[string]any{"n": math.NaN()}); err == nil {
		t.Fatal("NaN encoded without an error")
	}
	if got, err := Value(nil, []string(nil)); err != nil || string(got) != "null" {
		t.Fatalf("nil []string: %s %v", got, err)
	}
}

// BenchmarkValue is the A/B that justifies the package: a typical user's attributes.
func BenchmarkValue(b *testing.B) {
	v := map[string]any{
		"userName": "ann.example@example.com", "displayName": "Ann Example", "active": true, "title": "Engineer",
		"name":         map[string]any{"givenName": "Ann", "familyName": "Example", "formatted": "Ann Example"},
		"emails":       []any{map[string]any{"value": "ann.example@example.com", "type": "work", "primary": true}},
		"phoneNumbers": []any{map[string]any{"value": "+1 555 0100", "type": "work"}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{
			"employeeNumber": "100042", "department": "Research", "manager": map[string]any{"value": "0b9c", "displayName": "Bob"}},
	}
	b.Run("jsonappend", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = Value(buf[:0], v)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(v)
		}
	})
}
