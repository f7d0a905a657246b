package ingest

import (
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// TestOverlayMergeRevert: merging keeps the directory's values in Under (absent ones absent),
// sets the source's values, and reverting gives back the directory's user exactly.
func TestOverlayMergeRevert(t *testing.T) {
	dept := scim.SchemaEnterpriseUser + ":department"
	dir := func() *scim.Resource {
		return &scim.Resource{Type: scim.UserType, ID: "u", Attributes: map[string]any{
			"userName": "jdoe", "title": "Engineer", "active": true,
		}}
	}
	u := dir()
	o := MergeOverlay(u, &cache.Overlay{Source: "csv:hr", Key: "7", Set: map[string]any{"title": "Lead", dept: "R&D", "active": false}})
	if u.String("title") != "Lead" || u.Active() {
		t.Fatalf("merged user: %v", u.Attributes)
	}
	if got, _ := (scim.Path{Schema: scim.SchemaEnterpriseUser, Attr: "department"}).Get(u); got != "R&D" {
		t.Fatalf("department = %v", got)
	}
	if want := map[string]any{"title": "Engineer", "active": true}; !reflect.DeepEqual(o.Under, want) {
		t.Fatalf("Under = %v, want %v", o.Under, want)
	}
	RevertOverlay(u, o)
	if !reflect.DeepEqual(u, dir()) {
		t.Fatalf("reverted user %v, want the directory's %v", u.Attributes, dir().Attributes)
	}
}
