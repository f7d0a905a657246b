package push

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim"
)

// document is what ldapscim sends a target for one resource, in SCIM JSON shape, without id.
// Sent documents are stored (cache.PushState.Sent) so the next change can be a minimal PATCH.
type document map[string]any

const patchOpSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

// profile is the request shape of a kind of target (ref/scim-clients.md).
type profile struct {
	name string
	// putUpdates sends a full PUT for profile updates (Okta) instead of a minimal PATCH.
	putUpdates bool
	// pathlessActive deactivates with {"op":"replace","value":{"active":false}} (Okta).
	pathlessActive bool
	// capitalOps writes "Add", "Replace", "Remove" (Entra).
	capitalOps bool
	// removeByValue removes members with {"op":"remove","path":"members","value":[...]} (Entra)
	// instead of one members[value eq "id"] operation per member.
	removeByValue   bool
	membershipChunk int
	// orLookups: how many `userName eq` terms one lookup may or together (1: no "or").
	orLookups int
	// deletesUsers is false for targets that never delete users (Okta).
	deletesUsers bool
}

func profileFor(name string) profile {
	switch name {
	case ProfileOkta:
		return profile{name: name, putUpdates: true, pathlessActive: true, membershipChunk: 100, orLookups: 1}
	case ProfileEntra:
		return profile{name: name, capitalOps: true, removeByValue: true, membershipChunk: 100, orLookups: 1, deletesUsers: true}
	case ProfileAWS:
		return profile{name: name, membershipChunk: 100, orLookups: 1, deletesUsers: true}
	}
	return profile{name: ProfileRFC, membershipChunk: 500, orLookups: 50, deletesUsers: true}
}

func (p profile) op(name string) string {
	if p.capitalOps {
		return strings.ToUpper(name[:1]) + name[1:]
	}
	return name
}

// patchOp is one operation of a PatchOp request.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

func patchBody(ops []patchOp) map[string]any {
	return map[string]any{"schemas": []string{patchOpSchema}, "Operations": ops}
}

// hash is the digest of a document as stored in PushState.Hash.
func (d document) hash() (string, []byte) {
	// Maps marshal in key order, so equal documents hash equally. jsonappend writes exactly
	// encoding/json's bytes without its reflection (the stored hashes stay valid); a value it
	// cannot write makes encoding/json write the whole document, as before.
	b, err := jsonappend.Value(nil, map[string]any(d))
	if err != nil {
		b, _ = json.Marshal(d)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), b
}

// userDocument builds the document of user r: its attributes after the target's attribute
// mapping, externalId, active, and the enterprise manager translated to the manager's id at
// the target (dropped when the manager is not there yet).
func userDocument(r *scim.Resource, active bool, attrMap map[string]string, managerTargetID string) document {
	d := document{}
	for k, v := range r.Attributes {
		if k == "groups" || k == "meta" || k == "id" || v == nil {
			continue
		}
		if m, ok := v.(map[string]any); ok {
			v = maps1(m)
		}
		d[k] = v
	}
	if r.ExternalID != "" {
		d["externalId"] = r.ExternalID
	}
	for to, from := range attrMap {
		v := lookupAttr(r, from)
		setAttr(d, to, v)
	}
	if ext, ok := d[scim.SchemaEnterpriseUser].(map[string]any); ok {
		delete(ext, "manager")
		if managerTargetID != "" {
			ext["manager"] = map[string]any{"value": managerTargetID}
		}
		if len(ext) == 0 {
			delete(d, scim.SchemaEnterpriseUser)
		}
	}
	d["active"] = active
	schemas := []string{scim.SchemaUser}
	if _, ok := d[scim.SchemaEnterpriseUser]; ok {
		schemas = append(schemas, scim.SchemaEnterpriseUser)
	}
	d["schemas"] = schemas
	return d
}

// managerOf returns the local id of r's enterprise manager, or "".
func managerOf(r *scim.Resource) string {
	ext, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
	m, _ := ext["manager"].(map[string]any)
	v, _ := m["value"].(string)
	return v
}

func maps1(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// splitAttr splits "urn:...:User:attr" into the schema URN and attr; a core name has no URN.
func splitAttr(name string) (urn, attr string) {
	if strings.HasPrefix(strings.ToLower(name), "urn:") {
		if i := strings.LastIndexByte(name, ':'); i > 0 {
			return name[:i], name[i+1:]
		}
	}
	return "", name
}

func lookupAttr(r *scim.Resource, name string) any {
	if name == "" {
		return nil
	}
	if name == "externalId" {
		return r.ExternalID
	}
	urn, attr := splitAttr(name)
	if urn == "" {
		return r.Attributes[attr]
	}
	ext, _ := r.Attributes[urn].(map[string]any)
	return ext[attr]
}

func setAttr(d document, name string, v any) {
	urn, attr := splitAttr(name)
	if urn == "" {
		if v == nil || v == "" {
			delete(d, attr)
		} else {
			d[attr] = v
		}
		return
	}
	ext, _ := d[urn].(map[string]any)
	if ext == nil {
		ext = map[string]any{}
	}
	if v == nil || v == "" {
		delete(ext, attr)
	} else {
		ext[attr] = v
	}
	if len(ext) == 0 {
		delete(d, urn)
	} else {
		d[urn] = ext
	}
}

// groupDocument is the document of a group's own attributes; its members are sent and kept
// apart (members.go).
func groupDocument(r *scim.Resource) document {
	d := document{"schemas": []string{scim.SchemaGroup}, "displayName": r.DisplayName()}
	if r.ExternalID != "" {
		d["externalId"] = r.ExternalID
	}
	return d
}

// membersOf reads the member target ids of a group document (sent or fetched).
func membersOf(d document) []string {
	list, _ := d["members"].([]any)
	out := make([]string, 0, len(list))
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if v, ok := mm["value"].(string); ok {
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// diffOps returns the PATCH operations that turn old into new, for every attribute but
// schemas and members. Single-valued complex attributes (name, an extension) are patched
// per sub-attribute; everything else is replaced or removed as a whole.
func (p profile) diffOps(old, new document) []patchOp {
	var ops []patchOp
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range new {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if k != "schemas" && k != "members" && k != "id" {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		ov, nv := old[k], new[k]
		om, oIsMap := ov.(map[string]any)
		nm, nIsMap := nv.(map[string]any)
		if (oIsMap || ov == nil) && (nIsMap || nv == nil) && (oIsMap || nIsMap) {
			sep := "."
			if strings.HasPrefix(strings.ToLower(k), "urn:") {
				sep = ":"
			}
			ops = append(ops, p.diffValues(k+sep, om, nm)...)
			continue
		}
		ops = append(ops, p.diffValues("", map[string]any{k: ov}, map[string]any{k: nv})...)
	}
	return ops
}

func (p profile) diffValues(prefix string, old, new map[string]any) []patchOp {
	var ops []patchOp
	keys := make([]string, 0, len(old)+len(new))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range new {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		ov, nv := old[k], new[k]
		if equalJSON(ov, nv) {
			continue
		}
		if nv == nil {
			ops = append(ops, patchOp{Op: p.op("remove"), Path: prefix + k})
			continue
		}
		ops = append(ops, patchOp{Op: p.op("replace"), Path: prefix + k, Value: nv})
	}
	return ops
}

func equalJSON(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// memberOps returns the membership PATCH requests that add and remove members, each with at
// most chunk member changes.
func (p profile) memberOps(add, remove []string, chunk int) [][]patchOp {
	var reqs [][]patchOp
	for start := 0; start < len(add); start += chunk {
		part := add[start:min(start+chunk, len(add))]
		vals := make([]any, len(part))
		for i, id := range part {
			vals[i] = map[string]any{"value": id}
		}
		reqs = append(reqs, []patchOp{{Op: p.op("add"), Path: "members", Value: vals}})
	}
	for start := 0; start < len(remove); start += chunk {
		part := remove[start:min(start+chunk, len(remove))]
		if p.removeByValue {
			vals := make([]any, len(part))
			for i, id := range part {
				vals[i] = map[string]any{"value": id}
			}
			reqs = append(reqs, []patchOp{{Op: p.op("remove"), Path: "members", Value: vals}})
			continue
		}
		ops := make([]patchOp, len(part))
		for i, id := range part {
			ops[i] = patchOp{Op: p.op("remove"), Path: `members[value eq "` + id + `"]`}
		}
		reqs = append(reqs, ops)
	}
	return reqs
}

// activeOps is the operation that only sets active.
func (p profile) activeOps(active bool) []patchOp {
	if p.pathlessActive {
		return []patchOp{{Op: p.op("replace"), Value: map[string]any{"active": active}}}
	}
	return []patchOp{{Op: p.op("replace"), Path: "active", Value: active}}
}
