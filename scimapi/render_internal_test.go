package scimapi

import (
	"encoding/json"
	"testing"
)

// Attribute values render as encoding/json writes them: numbers in plain digits up to 1e21
// (this renderer once wrote 1e+06), HTML characters escaped, sorted keys.
func TestAppendValueMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{1e6, 1e21, 0.5, int64(42), "<Ann & Bob>", map[string]any{"b": 1.0, "a": []any{true, nil}}} {
		want, _ := json.Marshal(v)
		if got := appendValue(nil, v); string(got) != string(want) {
			t.Errorf("appendValue(%#v) = %s, encoding/json writes %s", v, got, want)
		}
	}
}
