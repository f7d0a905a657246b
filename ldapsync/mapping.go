package ldapsync

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/scim"
)

// A mapping turns LDAP attributes into SCIM attributes. The TOML form is a table of
// SCIM path = LDAP source, for example:
//
//	userName                         = "uid"
//	"name.givenName"                 = "givenName"
//	displayName                      = "displayName,cn"   # first attribute that has a value
//	'emails[type eq "work"].value'   = "mail"             # every value, typed, first one primary
//	active                           = "!pwdAccountLockedTime"  # true when the attribute is absent
//	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager" = "manager"  # DN → id
//
// An empty source removes a default. The paths a mapping may target are the RFC 7643 User and
// Group attributes ldapscim stores; ref paths (manager) take a DN and are resolved to an id.

// Sources that reference other entries by DN, resolved to ids.
const managerPath = scim.SchemaEnterpriseUser + ":manager"

// defaultUserMappings are the default mappings per dialect (config.toml.example lists them).
var defaultUserMappings = map[string]map[string]string{
	DialectOpenLDAP: {
		"userName":                             "uid",
		"externalId":                           "employeeNumber",
		"name.givenName":                       "givenName",
		"name.familyName":                      "sn",
		"name.formatted":                       "displayName,cn",
		"displayName":                          "displayName,cn",
		`emails[type eq "work"].value`:         "mail",
		`phoneNumbers[type eq "work"].value`:   "telephoneNumber",
		`phoneNumbers[type eq "mobile"].value`: "mobile",
		"title":                                "title",
		"active":                               "!pwdAccountLockedTime",
		scim.SchemaEnterpriseUser + ":employeeNumber": "employeeNumber",
		scim.SchemaEnterpriseUser + ":department":     "departmentNumber,ou",
		scim.SchemaEnterpriseUser + ":organization":   "o",
		managerPath: "manager",
	},
	DialectActiveDirectory: {
		"userName":                             "userPrincipalName,sAMAccountName",
		"externalId":                           "employeeID",
		"name.givenName":                       "givenName",
		"name.familyName":                      "sn",
		"name.formatted":                       "displayName,cn",
		"displayName":                          "displayName,cn",
		`emails[type eq "work"].value`:         "mail",
		`phoneNumbers[type eq "work"].value`:   "telephoneNumber",
		`phoneNumbers[type eq "mobile"].value`: "mobile",
		"title":                                "title",
		"active":                               "userAccountControl|uac",
		scim.SchemaEnterpriseUser + ":employeeNumber": "employeeNumber",
		scim.SchemaEnterpriseUser + ":department":     "department",
		scim.SchemaEnterpriseUser + ":organization":   "company",
		scim.SchemaEnterpriseUser + ":division":       "division",
		managerPath:                                   "manager",
	},
}

var defaultGroupMappings = map[string]map[string]string{
	DialectOpenLDAP:        {"displayName": "cn"},
	DialectActiveDirectory: {"displayName": "cn"},
}

// DefaultUserMapping returns a copy of the dialect's default user mapping.
func DefaultUserMapping(dialect string) map[string]string {
	return maps.Clone(defaultUserMappings[dialect])
}

// DefaultGroupMapping returns a copy of the dialect's default group mapping.
func DefaultGroupMapping(dialect string) map[string]string {
	return maps.Clone(defaultGroupMappings[dialect])
}

// field is one compiled mapping entry.
type field struct {
	scim.Path
	sources []string // LDAP attributes, first with a value wins
	absent  bool     // "!attr": boolean true when the attribute is absent
	conv    string   // value converter: "", "uac", "bool"
}

// mapping is a compiled, validated mapping.
type mapping struct {
	fields []field
}

// UserMapping compiles the dialect default user mapping with overrides applied.
func UserMapping(dialect string, overrides map[string]string) (*mapping, error) {
	return compileMapping(scim.UserType, defaultUserMappings[dialect], overrides)
}

// GroupMapping compiles the dialect default group mapping with overrides applied.
func GroupMapping(dialect string, overrides map[string]string) (*mapping, error) {
	return compileMapping(scim.GroupType, defaultGroupMappings[dialect], overrides)
}

func compileMapping(typ scim.ResourceType, defaults, overrides map[string]string) (*mapping, error) {
	merged := maps.Clone(defaults)
	if merged == nil {
		merged = map[string]string{}
	}
	var errs []error
	for k, v := range overrides {
		// Match an override to a default case-insensitively, so "username" replaces "userName".
		for d := range merged {
			if strings.EqualFold(d, k) {
				delete(merged, d)
			}
		}
		merged[k] = v
	}
	m := &mapping{}
	for _, path := range slices.Sorted(maps.Keys(merged)) {
		src := merged[path]
		if strings.TrimSpace(src) == "" {
			continue
		}
		f, err := compileField(typ, path, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.fields = append(m.fields, f)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if typ == scim.UserType && m.find("userName", "") == nil {
		return nil, errors.New("userName must be mapped (it is required by RFC 7643)")
	}
	return m, nil
}

func compileField(typ scim.ResourceType, path, src string) (field, error) {
	p, err := scim.ParsePath(typ, path)
	if err != nil {
		return field{}, err
	}
	f := field{Path: p}
	bad := func(format string, a ...any) (field, error) {
		return field{}, fmt.Errorf("%q: %s", path, fmt.Sprintf(format, a...))
	}
	spec := src
	if i := strings.IndexByte(spec, '|'); i >= 0 {
		spec, f.conv = spec[:i], spec[i+1:]
		switch f.conv {
		case "uac", "bool":
		default:
			return bad("unknown converter %q (use uac or bool)", f.conv)
		}
	}
	if strings.HasPrefix(spec, "!") {
		f.absent, spec = true, spec[1:]
	}
	for _, a := range strings.Split(spec, ",") {
		a = strings.TrimSpace(a)
		if !validAttrName(a) {
			return bad("source %q is not a valid LDAP attribute name", a)
		}
		f.sources = append(f.sources, a)
	}
	if f.Attr == "active" && f.conv == "" && !f.absent {
		f.conv = "bool"
	}
	return f, nil
}

// validAttrName accepts an LDAP attribute description: a descriptor or numeric OID, with options.
func validAttrName(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ';') {
			return false
		}
	}
	return true
}

func (m *mapping) find(attr, sub string) *field {
	for i := range m.fields {
		if m.fields[i].Schema == "" && m.fields[i].Attr == attr && m.fields[i].Sub == sub {
			return &m.fields[i]
		}
	}
	return nil
}

// ldapAttributes lists every LDAP attribute the mapping reads.
func (m *mapping) ldapAttributes() []string {
	var out []string
	for _, f := range m.fields {
		out = append(out, f.sources...)
	}
	return out
}
