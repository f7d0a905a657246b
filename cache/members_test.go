package cache

import (
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// Hashing a member (done for every member of every restated group) allocates nothing.
func TestMemberHashAllocs(t *testing.T) {
	m := scim.Member{Value: "00000000-0000-4000-8000-000000000001", Type: scim.UserType, Display: "Some User"}
	if n := testing.AllocsPerRun(100, func() { memberHash(m) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
