// Package reliability is ldapscim's reliability suite, run with `make reliability`: kill -9
// trials of `serve` (R1), directory failures mid-pass (R2), push target faults (R4), malformed
// SCIM requests and config files (R5) and SCIM reads under a full pass (R7). Every trial runs
// the real binary (go build ./cmd/ldapscim) against a private slapd and a SCIMMY target on
// 127.0.0.1, checks its outcome against the directory, and the suite prints one table of
// figures that README.md quotes.
//
// The tests carry the build tag "reliability", so `go test ./...` and `make test` leave them
// out; without slapd or SCIMMY they fail saying how to install them, never skip. Sizes come from
// the environment (see sizes in suite_test.go). To spend R2's trials on one kind of directory
// fault, LDAPSCIM_REL_R2_FAULT keeps only the kinds whose name holds it, e.g.
//
//	LDAPSCIM_REL_R2_FAULT=kill LDAPSCIM_REL_SLAPD_FAULTS=30 go test -tags reliability -count=1 -v -run 'TestReliability/R2' ./reliability/
package reliability
