package ldapsync_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// Every transport syncs: ldaps:// and StartTLS with the CA file, ldapi://; a server certificate
// that does not verify fails unless the admin opted out.
func TestTransports(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{"testdata/small.ldif"}, TLS: true})
	for _, tc := range []struct {
		name  string
		tweak func(c *ldapsync.Config)
		fail  string
	}{
		{"ldaps with ca_file", func(c *ldapsync.Config) { c.URL, c.CAFile = sl.LDAPSURL, sl.CAFile }, ""},
		{"starttls with ca_file", func(c *ldapsync.Config) { c.StartTLS, c.CAFile = true, sl.CAFile }, ""},
		{"ldapi", func(c *ldapsync.Config) { c.URL = sl.LDAPIURL }, ""},
		{"ldaps without the CA", func(c *ldapsync.Config) { c.URL = sl.LDAPSURL }, "certificate"},
		{"starttls without the CA", func(c *ldapsync.Config) { c.StartTLS = true }, "certificate"},
		{"ldaps, verification off", func(c *ldapsync.Config) { c.URL, c.InsecureSkipVerify = sl.LDAPSURL, true }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, sl: sl, store: nil}
			e.store = openCacheForTest(t)
			e.cfg, e.safe = testConfig(sl), ldapsync.SafetyConfig{MaxDeletes: 1000, MaxDeletePercent: 100}
			tc.tweak(&e.cfg)
			e.rebuild()
			_, err := e.s.SyncOnce(context.Background())
			if tc.fail != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("err %v, want one about %q", err, tc.fail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := e.count(scim.UserType); n != 3 {
				t.Fatalf("%d users", n)
			}
		})
	}
}
