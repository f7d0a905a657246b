package scimapi

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// sort orders the matches by sortBy (RFC 7644 §3.4.2.3). It reads every match, so it is
// limited to max_results of them (400 tooMany beyond, except for sortBy=id, which is the
// natural order). Multi-valued attributes sort by their primary value, else the first;
// strings compare by the attribute's caseExact; resources without a value come last in
// ascending order and first in descending order; ties keep id order.
func (s *Server) sort(ctx context.Context, o *order, q *listQuery) error {
	if strings.EqualFold(q.sortBy, "id") && len(o.runs) == 1 {
		if q.descending {
			ids := slices.Clone(o.runs[0].ids)
			slices.Reverse(ids)
			o.sorted = make([]item, len(ids))
			for i, id := range ids {
				o.sorted[i] = item{o.runs[0].typ, id}
			}
		}
		return nil
	}
	if n := o.total(); n > s.cfg.MaxResults {
		return errorf(http.StatusBadRequest, scimTooMany,
			"sortBy needs the matches in memory: %d resources match, at most %d can be sorted; add a filter", n, s.cfg.MaxResults)
	}
	type keyed struct {
		it  item
		key sortKey
	}
	var all []keyed
	o.loaded = map[item]*scim.Resource{}
	for _, run := range o.runs {
		rs := scim.SchemaFor(run.typ)
		ref, refErr := rs.Lookup(q.sortBy)
		list, err := s.store.GetMany(ctx, run.typ, run.ids, false)
		if err != nil {
			return err
		}
		for _, r := range list {
			it := item{run.typ, r.ID}
			o.loaded[it] = r
			k := sortKey{}
			if refErr == nil {
				k = keyOf(r, ref)
			}
			all = append(all, keyed{it, k})
		}
	}
	slices.SortStableFunc(all, func(a, b keyed) int {
		c := compareKeys(a.key, b.key)
		if q.descending {
			c = -c
		}
		if c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.it.typ, b.it.typ), cmp.Compare(a.it.id, b.it.id))
	})
	o.sorted = make([]item, len(all))
	for i, k := range all {
		o.sorted[i] = k.it
	}
	return nil
}

type sortKey struct {
	present bool
	s       string
	f       float64
	t       time.Time
	kind    byte // 's', 'f', 't', 'b'
}

// compareKeys orders present values before missing ones (ascending).
func compareKeys(a, b sortKey) int {
	switch {
	case !a.present || !b.present:
		if a.present == b.present {
			return 0
		}
		if a.present {
			return -1
		}
		return 1
	case a.kind == 't' && b.kind == 't':
		return a.t.Compare(b.t)
	case a.kind == 'f' && b.kind == 'f':
		return cmp.Compare(a.f, b.f)
	}
	return strings.Compare(a.s, b.s)
}

// keyOf extracts the sort value of ref from r.
func keyOf(r *scim.Resource, ref scim.AttrRef) sortKey {
	v := valueOf(r, ref)
	def := ref.Def()
	switch x := v.(type) {
	case string:
		if def.Type == scim.TypeDateTime {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return sortKey{present: true, kind: 't', t: t}
			}
		}
		if !def.CaseExact {
			x = strings.ToLower(x)
		}
		return sortKey{present: true, kind: 's', s: x}
	case time.Time:
		return sortKey{present: true, kind: 't', t: x}
	case float64:
		return sortKey{present: true, kind: 'f', f: x}
	case bool:
		s := "0"
		if x {
			s = "1"
		}
		return sortKey{present: true, kind: 'b', s: s}
	}
	return sortKey{}
}

// valueOf finds the value ref names in r: common attributes from the fields, a multi-valued
// attribute's primary (else first) element, a complex attribute's sub-attribute (or "value").
func valueOf(r *scim.Resource, ref scim.AttrRef) any {
	var v any
	switch {
	case ref.URN == "":
		switch ref.Attr.Name {
		case "id":
			return r.ID
		case "externalId":
			return nilIfEmpty(r.ExternalID)
		case "meta":
			if ref.Sub == nil {
				return nil
			}
			switch ref.Sub.Name {
			case "created":
				return r.Meta.Created
			case "lastModified":
				return r.Meta.LastModified
			case "resourceType":
				return string(r.Type)
			case "version":
				return r.Meta.Version
			}
		}
		return nil
	case ref.URN == scim.SchemaUser || ref.URN == scim.SchemaGroup:
		v = r.Attributes[ref.Attr.Name]
	default:
		ext, _ := r.Attributes[ref.URN].(map[string]any)
		v = ext[ref.Attr.Name]
	}
	if list, ok := v.([]any); ok {
		v = nil
		for i, e := range list {
			if m, ok := e.(map[string]any); ok && (i == 0 || m["primary"] == true) {
				v = e
				if m["primary"] == true {
					break
				}
			}
		}
	}
	if m, ok := v.(map[string]any); ok {
		sub := "value"
		if ref.Sub != nil {
			sub = ref.Sub.Name
		}
		return m[sub]
	}
	return v
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
