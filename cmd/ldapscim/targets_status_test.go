package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/push"
)

// `targets status` says why a target is quarantined: a rotated secret reads differently from
// a target that is down.
func TestPrintStatusShowsQuarantineReason(t *testing.T) {
	var b strings.Builder
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	printStatus(&b, []push.Status{{Name: "okta", Kind: "target", Quarantined: true, Since: since,
		QuarantineReason: "the target refused the credentials: HTTP 401 to POST /Users"}})
	want := "quarantined since 2026-01-02T03:04:05Z: the target refused the credentials: HTTP 401 to POST /Users"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("status %q does not say %q", b.String(), want)
	}
}
