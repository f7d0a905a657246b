package push

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// Stored push states hold the hash of the document last sent; a document that hashed
// differently after an upgrade would be sent to every target again for every user. hash must
// write exactly encoding/json's bytes, for the shapes documents take and the strings
// directories hold.
func TestDocumentHashIsEncodingJSONs(t *testing.T) {
	odd := []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\x00nul\x1f",
		"Zoë Ångström 日本語 🙂", "bad utf-8 \xff\xfe end", "\u2028 and \u2029", "x\u007fy"}
	users := []*scim.Resource{
		{Type: scim.UserType, ID: "u1", ExternalID: odd[3], Attributes: map[string]any{
			"userName": odd[5], "displayName": odd[2], "title": odd[6], "nickName": odd[4],
			"name":         map[string]any{"givenName": odd[7], "familyName": odd[8], "formatted": ""},
			"emails":       []any{map[string]any{"value": "a@example.com", "type": "work", "primary": true}, map[string]any{"value": odd[3]}},
			"phoneNumbers": []any{}, "x509Certificates": []any(nil),
			"active": true, "groups": []any{"dropped"},
			scim.SchemaEnterpriseUser: map[string]any{"employeeNumber": "00042", "costCenter": 1234.5,
				"manager": map[string]any{"value": "m1"}, "department": odd[1]},
			"urn:example:custom:2.0:User": map[string]any{"level": 7.0, "big": 1e21, "tiny": 1e-7, "neg": math.Copysign(0, -1),
				"list": []string{odd[3], odd[6]}, "nested": []any{[]any{1.0, "two", nil, false}}},
		}},
		{Type: scim.UserType, ID: "u2", Attributes: map[string]any{"userName": "only"}},
	}
	for _, u := range users {
		for _, d := range []document{
			userDocument(u, true, nil, ""),
			userDocument(u, false, map[string]string{"title": "displayName"}, "target-manager-<id>"),
		} {
			want, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(want)
			hash, raw := d.hash()
			if string(raw) != string(want) {
				t.Errorf("%s: document bytes differ from encoding/json's\n got %s\nwant %s", u.ID, raw, want)
			}
			if hash != hex.EncodeToString(sum[:16]) {
				t.Errorf("%s: hash %s, want %s", u.ID, hash, hex.EncodeToString(sum[:16]))
			}
		}
	}
	g := &scim.Resource{Type: scim.GroupType, ID: "g1", Attributes: map[string]any{"displayName": odd[3]}}
	d := groupDocument(g)
	want, _ := json.Marshal(d)
	if _, raw := d.hash(); string(raw) != string(want) {
		t.Errorf("group: got %s, want %s", raw, want)
	}
	// A value encoding/json refuses fails the same way as before: no bytes.
	if _, raw := (document{"x": math.NaN()}).hash(); raw != nil {
		t.Errorf("NaN: got %s, want no document", raw)
	}
}
