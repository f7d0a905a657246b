package cache

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

func openMem(t testing.TB) *Store {
	t.Helper()
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openDir(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func userID(i int) string  { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
func groupID(i int) string { return fmt.Sprintf("11111111-0000-4000-8000-%012d", i) }

// user returns a user with about 15 attributes, like ldapsync makes from inetOrgPerson.
func user(i int) *scim.Resource {
	uid := fmt.Sprintf("user%06d", i)
	return &scim.Resource{
		Type:       scim.UserType,
		ID:         userID(i),
		ExternalID: fmt.Sprintf("E%06d", i),
		DN:         fmt.Sprintf("uid=%s,ou=People,dc=example,dc=com", uid),
		Attributes: map[string]any{
			"userName":    uid,
			"displayName": fmt.Sprintf("User %06d", i),
			"name": map[string]any{
				"givenName": "User", "familyName": fmt.Sprintf("N%06d", i),
				"formatted": fmt.Sprintf("User N%06d", i),
			},
			"emails": []any{map[string]any{"value": uid + "@example.com", "type": "work", "primary": true}},
			"phoneNumbers": []any{
				map[string]any{"value": "+1 555 0100", "type": "work"},
				map[string]any{"value": "+1 555 0199", "type": "mobile"},
			},
			"title":  "Engineer",
			"active": true,
			scim.SchemaEnterpriseUser: map[string]any{
				"employeeNumber": fmt.Sprintf("E%06d", i),
				"department":     "Engineering",
				"organization":   "Example",
				"manager":        map[string]any{"value": userID(0), "displayName": "User 000000"},
			},
			"preferredLanguage": "en",
			"locale":            "en-US",
			"timezone":          "Europe/Berlin",
			"userType":          "Employee",
			"nickName":          uid,
		},
	}
}

func group(i int, members ...int) *scim.Resource {
	g := &scim.Resource{
		Type: scim.GroupType,
		ID:   groupID(i),
		DN:   fmt.Sprintf("cn=group%d,ou=Groups,dc=example,dc=com", i),
		Attributes: map[string]any{
			"displayName": fmt.Sprintf("Group %d", i),
		},
	}
	for _, m := range members {
		g.Members = append(g.Members, scim.Member{Value: userID(m), Type: scim.UserType, Display: fmt.Sprintf("User %06d", m)})
	}
	return g
}

func users(from, to int) []*scim.Resource {
	out := make([]*scim.Resource, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, user(i))
	}
	return out
}

func mustApply(t testing.TB, s *Store, b Batch) Result {
	t.Helper()
	res, err := s.Apply(context.Background(), b)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func mustJournal(t testing.TB, s *Store, after uint64) []JournalRecord {
	t.Helper()
	recs, err := s.Journal(context.Background(), after, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
