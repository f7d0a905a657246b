package scim

// The RFC 7643 schemas ldapscim serves: core User (§4.1), Group (§4.2), the EnterpriseUser
// extension (§4.3) and the common attributes (§3.1). The values follow the RFC's §8.7.1
// representation; fields left empty in the literals get the RFC 7643 §2.2 defaults
// (mutability readWrite, returned default, uniqueness none, caseExact false) in init.
//
// Deliberate differences from the RFC:
//   - User "password" is left out: ldapscim never reads or holds directory passwords, and a
//     filter on it must not be a way to probe them.
//   - Group members gain "display" (RFC 7643 §4.2 text mentions it; §8.7.1 omits it).
//   - ldapscim serves every resource read-only (its data comes from the directory); the RFC
//     mutability values are kept so the definitions describe the SCIM model, which the push side
//     relies on. Schema descriptions say "read-only".

// Schema URNs of the discovery resources (RFC 7643 §8.7.2).
const (
	SchemaSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
	SchemaResourceType          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaServiceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
)

// CommonAttributes are the RFC 7643 §3.1 attributes of every resource, which no schema lists:
// id, externalId, meta, plus "schemas" (§3) so that filters such as
// `schemas eq "urn:...:enterprise:2.0:User"` (RFC 7644 §3.4.2.2) resolve.
var CommonAttributes = []*Attribute{
	{Name: "id", Type: TypeString, CaseExact: true, Mutability: MutReadOnly, Returned: ReturnedAlways,
		Uniqueness: UniqueServer, Description: "A unique, stable identifier for the resource, assigned by the service provider. ldapscim uses the directory entry's entryUUID or objectGUID."},
	{Name: "externalId", Type: TypeString, CaseExact: true,
		Description: "An identifier for the resource as defined by the provisioning client."},
	{Name: "meta", Type: TypeComplex, Mutability: MutReadOnly, Description: "Resource metadata.",
		SubAttributes: []*Attribute{
			{Name: "resourceType", Type: TypeString, CaseExact: true, Mutability: MutReadOnly, Description: "The name of the resource type of the resource."},
			{Name: "created", Type: TypeDateTime, Mutability: MutReadOnly, Description: "The date and time the resource was added to the service provider."},
			{Name: "lastModified", Type: TypeDateTime, Mutability: MutReadOnly, Description: "The most recent date and time the resource changed in the service provider."},
			{Name: "location", Type: TypeReference, CaseExact: true, Mutability: MutReadOnly, ReferenceTypes: []string{"uri"}, Description: "The URI of the resource being returned."},
			{Name: "version", Type: TypeString, CaseExact: true, Mutability: MutReadOnly, Description: "The version of the resource (an ETag value)."},
		}},
	{Name: "schemas", Type: TypeReference, MultiValued: true, Required: true, Mutability: MutReadOnly,
		Returned: ReturnedAlways, ReferenceTypes: []string{"uri"}, Description: "The schema URIs the resource conforms to."},
}

// UserSchema is the core User schema (RFC 7643 §4.1), without "password".
var UserSchema = &Schema{
	ID:          SchemaUser,
	Name:        "User",
	Description: "User Account (served read-only by ldapscim from the directory)",
	Attributes: []*Attribute{
		{Name: "userName", Type: TypeString, Required: true, Uniqueness: UniqueServer,
			Description: "Unique identifier for the User, typically used by the user to directly authenticate to the service provider."},
		{Name: "name", Type: TypeComplex, Description: "The components of the user's real name.",
			SubAttributes: []*Attribute{
				str("formatted", "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display."),
				str("familyName", "The family name of the User, or last name in most Western languages."),
				str("givenName", "The given name of the User, or first name in most Western languages."),
				str("middleName", "The middle name(s) of the User."),
				str("honorificPrefix", "The honorific prefix(es) of the User, or title in most Western languages."),
				str("honorificSuffix", "The honorific suffix(es) of the User, or suffix in most Western languages."),
			}},
		str("displayName", "The name of the User, suitable for display to end-users."),
		str("nickName", "The casual way to address the user in real life."),
		{Name: "profileUrl", Type: TypeReference, ReferenceTypes: []string{"external"},
			Description: "A fully qualified URL pointing to a page representing the User's online profile."},
		str("title", "The user's title, such as \"Vice President\"."),
		str("userType", "Used to identify the relationship between the organization and the user."),
		str("preferredLanguage", "Indicates the User's preferred written or spoken language."),
		str("locale", "Used to indicate the User's default location for purposes of localizing items such as currency, date time format, or numerical representations."),
		str("timezone", "The User's time zone in the \"Olson\" time zone database format."),
		{Name: "active", Type: TypeBoolean, Description: "A Boolean value indicating the User's administrative status."},
		multi("emails", "Email addresses for the user.", TypeString, "work", "home", "other"),
		multi("phoneNumbers", "Phone numbers for the User.", TypeString, "work", "home", "mobile", "fax", "pager", "other"),
		multi("ims", "Instant messaging addresses for the User.", TypeString, "aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
		multi("photos", "URLs of photos of the User.", TypeReference, "photo", "thumbnail"),
		{Name: "addresses", Type: TypeComplex, MultiValued: true, Description: "A physical mailing address for this User.",
			SubAttributes: []*Attribute{
				str("formatted", "The full mailing address, formatted for display or use with a mailing label."),
				str("streetAddress", "The full street address component."),
				str("locality", "The city or locality component."),
				str("region", "The state or region component."),
				str("postalCode", "The zip code or postal code component."),
				str("country", "The country name component."),
				{Name: "type", Type: TypeString, CanonicalValues: []string{"work", "home", "other"}, Description: "A label indicating the attribute's function."},
				{Name: "primary", Type: TypeBoolean, Description: "A Boolean value indicating the 'primary' or preferred address."},
			}},
		{Name: "groups", Type: TypeComplex, MultiValued: true, Mutability: MutReadOnly,
			Description: "A list of groups to which the user belongs, either through direct membership, through nested groups, or dynamically calculated.",
			SubAttributes: []*Attribute{
				{Name: "value", Type: TypeString, Mutability: MutReadOnly, Description: "The identifier of the User's group."},
				{Name: "$ref", Type: TypeReference, CaseExact: true, Mutability: MutReadOnly, ReferenceTypes: []string{"User", "Group"}, Description: "The URI of the corresponding 'Group' resource to which the user belongs."},
				{Name: "display", Type: TypeString, Mutability: MutReadOnly, Description: "A human-readable name, primarily used for display purposes."},
				{Name: "type", Type: TypeString, Mutability: MutReadOnly, CanonicalValues: []string{"direct", "indirect"}, Description: "A label indicating the attribute's function, e.g., 'direct' or 'indirect'."},
			}},
		multi("entitlements", "A list of entitlements for the User that represent a thing the User has.", TypeString),
		multi("roles", "A list of roles for the User that collectively represent who the User is.", TypeString),
		multi("x509Certificates", "A list of certificates issued to the User.", TypeBinary),
	},
}

// EnterpriseUserSchema is the EnterpriseUser extension (RFC 7643 §4.3).
var EnterpriseUserSchema = &Schema{
	ID:          SchemaEnterpriseUser,
	Name:        "EnterpriseUser",
	Description: "Enterprise User (served read-only by ldapscim from the directory)",
	Attributes: []*Attribute{
		str("employeeNumber", "Numeric or alphanumeric identifier assigned to a person, typically based on order of hire or association with an organization."),
		str("costCenter", "Identifies the name of a cost center."),
		str("organization", "Identifies the name of an organization."),
		str("division", "Identifies the name of a division."),
		str("department", "Identifies the name of a department."),
		{Name: "manager", Type: TypeComplex, Description: "The User's manager.",
			SubAttributes: []*Attribute{
				str("value", "The id of the SCIM resource representing the User's manager."),
				{Name: "$ref", Type: TypeReference, CaseExact: true, ReferenceTypes: []string{"User"}, Description: "The URI of the SCIM resource representing the User's manager."},
				{Name: "displayName", Type: TypeString, Mutability: MutReadOnly, Description: "The displayName of the User's manager."},
			}},
	},
}

// GroupSchema is the core Group schema (RFC 7643 §4.2).
var GroupSchema = &Schema{
	ID:          SchemaGroup,
	Name:        "Group",
	Description: "Group (served read-only by ldapscim from the directory)",
	Attributes: []*Attribute{
		{Name: "displayName", Type: TypeString, Required: true, Description: "A human-readable name for the Group."},
		{Name: "members", Type: TypeComplex, MultiValued: true, Description: "A list of members of the Group.",
			SubAttributes: []*Attribute{
				// Member values are resource ids, which are caseExact like "id" itself.
				{Name: "value", Type: TypeString, CaseExact: true, Mutability: MutImmutable, Description: "Identifier of the member of this Group."},
				{Name: "$ref", Type: TypeReference, CaseExact: true, Mutability: MutImmutable, ReferenceTypes: []string{"User", "Group"}, Description: "The URI corresponding to a SCIM resource that is a member of this Group."},
				{Name: "type", Type: TypeString, Mutability: MutImmutable, CanonicalValues: []string{"User", "Group"}, Description: "A label indicating the type of resource, e.g., 'User' or 'Group'."},
				{Name: "display", Type: TypeString, Mutability: MutReadOnly, Description: "A human-readable name for the member."},
			}},
	},
}

// UserResource is the User resource type: core User plus the EnterpriseUser extension.
var UserResource = &ResourceSchema{
	Type:        UserType,
	Endpoint:    "/Users",
	Description: "User Account",
	Schema:      UserSchema,
	Extensions:  []SchemaExtension{{Schema: EnterpriseUserSchema}},
}

// GroupResource is the Group resource type.
var GroupResource = &ResourceSchema{
	Type:        GroupType,
	Endpoint:    "/Groups",
	Description: "Group",
	Schema:      GroupSchema,
}

func init() {
	for _, s := range []*Schema{UserSchema, EnterpriseUserSchema, GroupSchema} {
		fillDefaults(s.Attributes)
	}
	fillDefaults(CommonAttributes)
}

// fillDefaults applies RFC 7643 §2.2's defaults to fields the literals leave empty. Binary values
// are case-exact by definition (§2.3.6).
func fillDefaults(list []*Attribute) {
	for _, a := range list {
		if a.Mutability == "" {
			a.Mutability = MutReadWrite
		}
		if a.Returned == "" {
			a.Returned = ReturnedDefault
		}
		if a.Uniqueness == "" {
			a.Uniqueness = UniqueNone
		}
		if a.Type == TypeBinary {
			a.CaseExact = true
		}
		fillDefaults(a.SubAttributes)
	}
}

// str is a single-valued, case-insensitive, readWrite string attribute.
func str(name, desc string) *Attribute {
	return &Attribute{Name: name, Type: TypeString, Description: desc}
}

// multi is an RFC 7643 §2.4 multi-valued complex attribute with the standard sub-attributes
// value, display, type and primary.
func multi(name, desc string, valueType AttrType, types ...string) *Attribute {
	value := &Attribute{Name: "value", Type: valueType, Description: "The value of the attribute."}
	if valueType == TypeReference {
		value.ReferenceTypes = []string{"external"}
	}
	return &Attribute{Name: name, Type: TypeComplex, MultiValued: true, Description: desc,
		SubAttributes: []*Attribute{
			value,
			str("display", "A human-readable name, primarily used for display purposes."),
			{Name: "type", Type: TypeString, CanonicalValues: types, Description: "A label indicating the attribute's function."},
			{Name: "primary", Type: TypeBoolean, Description: "A Boolean value indicating the 'primary' or preferred attribute value for this attribute."},
		}}
}
