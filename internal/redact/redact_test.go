package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"ldap://ldap.example.com:389":                    "ldap://ldap.example.com:389",
		"ldap://cn=admin:s3cret@ldap.example.com":        "ldap://xxxxx@ldap.example.com",
		"ldaps://user@host:636":                          "ldaps://xxxxx@host:636",
		"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi":           "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi",
		"https://example.okta.com/scim/v2":               "https://example.okta.com/scim/v2",
		"https://login.example.com/token?key=s3cret&a=b": "https://login.example.com/token?key=xxxxx&a=xxxxx",
		"https://h/p?s3cret":                             "https://h/p?xxxxx",
		"https://h/p#s3cret":                             "https://h/p#xxxxx",
		"https://u:s3cret@h/p?sig=s3cret%zz":             "https://xxxxx@h/p?sig=xxxxx",
		"hxxps://u:s3cret@h/%zz?s3cret":                  "hxxps://xxxxx@h/%zz?xxxxx",
		"ldap://admin:s3cret/pw@ldap.example.com":        "ldap://xxxxx@ldap.example.com",
		"https://u:1234#s3cret@h/p":                      "https://xxxxx@h/p",
		"https://u:s3?cret@h/p?q=s3cret":                 "https://xxxxx@h/p?xxxxx",
	} {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("URL(%q) = %q shows the secret", in, got)
		}
	}
}

func TestHost(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/s3cret": "https://hooks.slack.com/…",
		"https://hooks.example.com":                         "https://hooks.example.com",
		"https://hooks.example.com/":                        "https://hooks.example.com",
		"https://hooks.example.com?token=s3cret":            "https://hooks.example.com/…",
		"https://u:s3cret@hooks.example.com/x":              "https://xxxxx@hooks.example.com/…",
		"hxxps://hooks.slack.com/services/%zz/s3cret":       "hxxps://hooks.slack.com/…",
		"hooks.slack.com/services/T000/B000/s3cret":         "xxxxx",
	} {
		got := Host(in)
		if got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("Host(%q) = %q shows the secret", in, got)
		}
	}
}
