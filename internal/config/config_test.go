package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each testdata/*.bad.toml names the messages it must produce in "# want:" lines.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.toml")
	if len(files) < 10 {
		t.Fatalf("only %d bad configs found", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for _, line := range strings.Split(string(raw), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("no # want: lines")
			}
			_, err = Parse(raw)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestExampleValidates(t *testing.T) {
	cfg, err := Load("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	// The example documents the defaults: decoding it must give exactly the defaults.
	d := Defaults()
	var a, b bytes.Buffer
	if err := cfg.Print(&a); err != nil {
		t.Fatal(err)
	}
	d.LDAP.URL = cfg.LDAP.URL
	d.LDAP.Users.BaseDN, d.LDAP.Groups.BaseDN = cfg.LDAP.Users.BaseDN, cfg.LDAP.Groups.BaseDN
	d.LDAP.Users.Mapping, d.LDAP.Groups.Mapping = nil, nil
	if err := d.Print(&b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("config.toml.example differs from the defaults:\nexample:\n%s\ndefaults:\n%s", a.String(), b.String())
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("file-secret-123\n"), 0o600)
	for _, src := range []string{
		`bind_password = "inline-secret-123"`,
		`bind_password_file = "` + pwFile + `"`,
	} {
		raw := `[cache]
dir = "/tmp/x"
[ldap]
url = "ldap://127.0.0.1:389"
bind_dn = "cn=reader,dc=example,dc=com"
` + src + `
[ldap.users]
base_dn = "ou=people,dc=example,dc=com"
[ldap.groups]
base_dn = "ou=groups,dc=example,dc=com"
`
		cfg, err := Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.LDAP.BindPassword.IsSet() {
			t.Fatal("password not loaded")
		}
		var out bytes.Buffer
		cfg.Print(&out)
		if strings.Contains(out.String(), "secret-123") || !strings.Contains(out.String(), "<secret>") {
			t.Errorf("printed config leaks or hides the password state:\n%s", out.String())
		}
	}
	t.Setenv("LDAPSCIM_LDAP_BIND_PASSWORD", "env-secret-123")
	cfg, err := Parse([]byte("[ldap]\nurl = \"ldap://h\"\nbind_dn = \"cn=r\"\n[ldap.users]\nbase_dn = \"dc=x\"\n[ldap.groups]\nbase_dn = \"dc=x\"\n"))
	if err != nil || cfg.LDAP.BindPassword.Reveal() != "env-secret-123" {
		t.Fatalf("env password: %v", err)
	}
}

// exampleWithSCIM returns config.toml.example with its [scim] block enabled (the lines that
// start with a single "#" uncommented), the token file pointing at tokenFile.
func exampleWithSCIM(t *testing.T, tokenFile string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in, found := false, false
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "#[scim]" {
			in, found = true, true
		}
		if strings.HasPrefix(line, "# ---- Active Directory") {
			in = false // an alternative [ldap] section, not an addition
		}
		if in && strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "##") {
			line = line[1:]
		}
		out = append(out, strings.ReplaceAll(line, "/etc/ldapscim/entra.token", tokenFile))
	}
	if !found {
		t.Fatal("config.toml.example has no #[scim] block")
	}
	return []byte(strings.Join(out, "\n"))
}

func TestExampleSCIMValidates(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "entra.token")
	os.WriteFile(tokFile, []byte("raw-token-value-42\n"), 0o600)
	cfg, err := Parse(exampleWithSCIM(t, tokFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SCIM == nil || cfg.SCIM.Listen != "127.0.0.1:8080" || cfg.SCIM.MaxResults != 1000 || len(cfg.SCIM.Tokens) != 2 {
		t.Fatalf("scim section %+v", cfg.SCIM)
	}
	// check-config prints token hashes and file names, never a token file's contents.
	var b bytes.Buffer
	if err := cfg.Print(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "raw-token-value-42") {
		t.Errorf("the token from token_file is printed:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "[scim]") || !strings.Contains(b.String(), tokFile) {
		t.Errorf("the [scim] section is not printed:\n%s", b.String())
	}
}

func TestNoSCIMSectionDisablesAPI(t *testing.T) {
	cfg, err := Load("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SCIM != nil {
		t.Fatalf("SCIM enabled without a [scim] section: %+v", cfg.SCIM)
	}
}

func TestActiveDirectoryDefaults(t *testing.T) {
	base := "[cache]\ndir=\"/tmp/x\"\n[ldap]\nurl = \"ldaps://dc1.example.com\"\ndialect = \"activedirectory\"\n[ldap.users]\nbase_dn=\"DC=example,DC=com\"\n[ldap.groups]\nbase_dn=\"DC=example,DC=com\"\n"
	cfg, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LDAP.Users.Filter != "(&(objectClass=user)(objectCategory=person))" || cfg.LDAP.Groups.Filter != "(objectClass=group)" ||
		len(cfg.LDAP.Groups.MemberAttributes) != 1 || len(cfg.LDAP.Groups.MemberUIDAttributes) != 0 {
		t.Fatalf("AD defaults not applied: %+v %+v", cfg.LDAP.Users, cfg.LDAP.Groups)
	}
	_, err = Parse([]byte(base + "filter = \"(objectClass=group)(cn=x)\"\n"))
	if err == nil {
		t.Fatal("a bad explicit filter validated")
	}
	cfg, err = Parse([]byte(strings.Replace(base, "[ldap.groups]\n", "[ldap.groups]\nfilter = \"(cn=app-*)\"\n", 1)))
	if err != nil || cfg.LDAP.Groups.Filter != "(cn=app-*)" {
		t.Fatalf("an explicit filter must win: %v %q", err, cfg.LDAP.Groups.Filter)
	}
}

// The Active Directory block of config.toml.example, uncommented, is a valid [ldap] section.
func TestExampleActiveDirectoryValidates(t *testing.T) {
	raw, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "# ---- Active Directory")
	if !ok {
		t.Fatal("config.toml.example has no Active Directory block")
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("example\n"), 0o600)
	out := []string{"[cache]", `dir = "/tmp/x"`}
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "##") {
			out = append(out, strings.ReplaceAll(line[1:], "/etc/ldapscim/ldap-password", pw))
		}
	}
	cfg, err := Parse([]byte(strings.Join(out, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LDAP.Dialect != "activedirectory" || cfg.LDAP.Groups.Filter != "(objectClass=group)" {
		t.Fatalf("AD example: dialect %q, groups filter %q", cfg.LDAP.Dialect, cfg.LDAP.Groups.Filter)
	}
}

// TestCSVEnrichValidates: an enrich source joined by externalId or userName is accepted.
func TestCSVEnrichValidates(t *testing.T) {
	for _, join := range []string{"externalId", "userName"} {
		raw := `[cache]
dir = "/tmp/x"
[ldap]
url = "ldap://127.0.0.1:389"
[ldap.users]
base_dn = "ou=people,dc=example,dc=com"
[ldap.groups]
base_dn = "ou=groups,dc=example,dc=com"
[[csv]]
name = "hr"
path = "/tmp/hr.csv"
mode = "enrich"
key = "Personnel No"
join = "` + join + `"
end_date = "End"
[csv.mapping]
title = "Job Title"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "Department"
`
		cfg, err := Parse([]byte(raw))
		if err != nil {
			t.Fatalf("join %s: %v", join, err)
		}
		if len(cfg.CSV) != 1 || cfg.CSV[0].Mode != "enrich" || cfg.CSV[0].Join != join {
			t.Fatalf("join %s: decoded %+v", join, cfg.CSV)
		}
	}
}

// The [ha] block of config.toml.example, uncommented, is a valid [ha] section.
func TestExampleHAValidates(t *testing.T) {
	raw, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "#[ha]\n")
	if !ok {
		t.Fatal("config.toml.example has no #[ha] block")
	}
	block, _, _ = strings.Cut(block, "\n\n")
	out := []string{string(raw), "[ha]"}
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "##") {
			out = append(out, line[1:])
		}
	}
	cfg, err := Parse([]byte(strings.Join(out, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HA.Enabled() || len(cfg.HA.EtcdEndpoints) != 3 || cfg.HA.Election != "/ldapscim/pusher" || cfg.HA.LeaseTTL.D() != 10*time.Second || cfg.HA.Node == "" ||
		cfg.HA.MaxLag.D() != 5*time.Minute || cfg.HA.ReplicaLag() != 5*time.Minute {
		t.Fatalf("ha section %+v", cfg.HA)
	}
}

// Without etcd_endpoints there is no HA: max_lag is not checked and the cache gets no lag.
func TestMaxLagOnlyWithHA(t *testing.T) {
	cfg, err := Parse([]byte(`[cache]
dir = "/tmp/x"
[ldap]
url = "ldap://127.0.0.1:389"
[ldap.users]
base_dn = "ou=people,dc=example,dc=com"
[ldap.groups]
base_dn = "ou=groups,dc=example,dc=com"
[schedule]
delta = "@every 1h"
[ha]
max_lag = "1ms"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HA.ReplicaLag() != 0 {
		t.Errorf("ReplicaLag %v without etcd_endpoints", cfg.HA.ReplicaLag())
	}
}
