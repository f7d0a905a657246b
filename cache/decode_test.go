package cache

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// The decoder of stored content gives what encoding/json gives, or leaves the input to it.
func FuzzDecodeContent(f *testing.F) {
	users := []*scim.Resource{
		{Type: scim.UserType, ID: "u1", ExternalID: "e1", DN: "uid=a,dc=x", Attributes: map[string]any{
			"userName": "Ann", "active": true, "nickName": nil, "x": 1e21, "y": -0.5, "z": int64(42),
			"emails": []any{map[string]any{"value": "a@x", "primary": false, "n": nil}}, "empty": []any{}, "obj": map[string]any{},
			scim.SchemaEnterpriseUser: map[string]any{"manager": map[string]any{"value": "u2"}}}},
		{Type: scim.UserType, ID: "u2", Attributes: map[string]any{"userName": `we"ird\ <&> é 😀 ` + "\u2028\x01\x7f", "n": 1e-7}},
		{Type: scim.UserType, ID: "u3"},
	}
	for _, u := range users {
		e, err := encode(u)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.content)
	}
	f.Add([]byte(`{"type":"User","attributes":null,"members":null}`))
	f.Add([]byte(` { "type" : "User" , "attributes" : { "a" : [ 1 , 2.5e3 , -0 , true , null ] } } `))
	f.Add([]byte(`{"type":"User","attributes":{"a":1},"attributes":{"b":2}}`))
	f.Add([]byte(`{"type":"Group","members":[{"value":"x","type":"User"}]}`))
	f.Add([]byte(`{"attributes":{"a":1e400,"b":01,"c":"\u00e9"}}`))
	f.Add([]byte(`{"Type":"User","attributes":{"a":"b","a":"c"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast scim.Resource
		if !fastContent(b, &fast) {
			return
		}
		var want scim.Resource
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%q: decoded, but encoding/json says %v", b, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q:\ngot  %#v\nwant %#v", b, fast, want)
		}
	})
}

// decodeContent takes the stored content of a user on itself, escapes and non-ASCII names
// included (the fast path is the point).
func TestDecodeContentTakesStoredUsers(t *testing.T) {
	u := &scim.Resource{Type: scim.UserType, ID: "u1", ExternalID: "e1", Attributes: map[string]any{
		"userName": "Zoë <&> \"q\" \\ 😀", "emails": []any{map[string]any{"value": "a@x", "primary": true}}, "n": 3.0}}
	e, err := encode(u)
	if err != nil {
		t.Fatal(err)
	}
	var r scim.Resource
	if !fastContent(e.content, &r) {
		t.Fatalf("the fast decoder gave up on %s", e.content)
	}
	if r.ExternalID != "e1" || r.Attributes["userName"] != u.Attributes["userName"] || r.Attributes["n"] != 3.0 {
		t.Fatalf("decoded %#v", r)
	}
}

// AppendResource and DecodeResource round-trip a resource as encoding/json does (without meta,
// which a resource not stored yet does not have), for users and groups in odd shapes.
func TestAppendResourceRoundTrip(t *testing.T) {
	odd := user(9)
	odd.Attributes["displayName"] = "Zoë \"q\" \\ \x01 \u2028 ☃"
	odd.Attributes["x-count"] = 12.5
	odd.Attributes["x-null"] = nil
	odd.Attributes["x-list"] = []any{true, false, 1e21, "s", []any{}, map[string]any{}}
	bare := &scim.Resource{Type: scim.UserType, ID: "bare"}
	for _, r := range []*scim.Resource{user(1), odd, bare, group(2, 1, 2, 3)} {
		b, err := AppendResource(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		var got, want scim.Resource
		if err := DecodeResource(b, &got); err != nil {
			t.Fatalf("%s: %v in %s", r.ID, err, b)
		}
		j, _ := json.Marshal(r)
		if err := json.Unmarshal(j, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", r.ID, got, want)
		}
	}
}
