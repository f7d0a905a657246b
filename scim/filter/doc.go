// Package filter is the SCIM filter language (RFC 7644 §3.4.2.2) as ldapscim serves it:
// a lexer and a hand-written recursive-descent parser (the grammar is in parse.go) produce an
// Expr tree whose nodes print themselves back; Compile validates a tree against a resource
// type's schema (scim.ResourceSchema) and turns it into a Matcher that evaluates resources;
// Plan derives an index access path for the cache.
//
//	e, err := filter.Parse(`emails[type eq "work"].value eq "bjensen@example.com"`)
//	m, err := filter.Compile(e, scim.UserResource) // 400 invalidFilter on error
//	p := filter.Plan(e)                            // index(emails.value eq "...")
//	for _, r := range candidates(p.Access) { if m.Match(r) { ... } }
//
// Every error about a filter is an *Error carrying the byte position of the problem. Parsing
// never panics, whatever the input (FuzzParse).
package filter
