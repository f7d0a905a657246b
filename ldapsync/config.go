package ldapsync

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"github.com/robfig/cron/v3"

	"github.com/ldapscim/ldapscim/internal/confval"
)

// Dialects.
const (
	DialectOpenLDAP        = "openldap"
	DialectActiveDirectory = "activedirectory"
)

// Change tracking modes for delta passes.
const (
	TrackAuto            = "auto"            // syncrepl when the server offers it, else modifytimestamp
	TrackSyncrepl        = "syncrepl"        // RFC 4533 refreshOnly with a stored cookie
	TrackModifyTimestamp = "modifytimestamp" // (modifyTimestamp>=max seen - overlap); deletions from full passes, but for OUs moved out (subtrees.go)
	TrackUSN             = "usn"             // Active Directory: uSNChanged above the DC's last highestCommittedUSN, tombstones
	TrackDirSync         = "dirsync"         // Active Directory: the DirSync control with a stored cookie
)

// tracks reports whether a watermark written in mode serves delta passes under the configured
// change_tracking. auto keeps whichever of syncrepl and modifytimestamp the last full pass
// chose; any other setting wants exactly its own mode.
func (s *Syncer) tracks(mode string) bool {
	switch {
	case s.cfg.Dialect == DialectActiveDirectory:
		return mode == s.adMode()
	case s.cfg.ChangeTracking == TrackAuto:
		return mode == TrackSyncrepl || mode == TrackModifyTimestamp
	}
	return mode == s.cfg.ChangeTracking
}

// Config is the [ldap] section: where the directory is and how to read it.
type Config struct {
	URL                string           `toml:"url"`
	Dialect            string           `toml:"dialect"`
	BindDN             string           `toml:"bind_dn"`
	BindPassword       confval.Secret   `toml:"bind_password"`
	BindPasswordFile   string           `toml:"bind_password_file"`
	StartTLS           bool             `toml:"start_tls"`
	CAFile             string           `toml:"ca_file"`
	InsecureSkipVerify bool             `toml:"insecure_skip_verify"`
	PageSize           int              `toml:"page_size"`
	Timeout            confval.Duration `toml:"timeout"`
	ChangeTracking     string           `toml:"change_tracking"`
	Overlap            confval.Duration `toml:"overlap"`
	// RangeStep is how many values of a multi-valued attribute (member) an Active Directory
	// read asks for at a time ("member;range=0-1499"); 0 asks for the whole attribute and
	// follows only the ranges the server imposes. Samba ranges only when asked.
	RangeStep int `toml:"range_step"`
	// ExpiredAccountsInactive makes an Active Directory user whose accountExpires has passed
	// inactive, like a disabled one.
	ExpiredAccountsInactive bool         `toml:"expired_accounts_inactive"`
	Users                   UsersConfig  `toml:"users"`
	Groups                  GroupsConfig `toml:"groups"`
}

// UsersConfig is [ldap.users].
type UsersConfig struct {
	BaseDN  string            `toml:"base_dn"`
	Filter  string            `toml:"filter"`
	Mapping map[string]string `toml:"mapping"` // SCIM path → LDAP attribute spec; merged over the dialect's defaults
}

// GroupsConfig is [ldap.groups].
type GroupsConfig struct {
	BaseDN  string            `toml:"base_dn"`
	Filter  string            `toml:"filter"`
	Mapping map[string]string `toml:"mapping"`
	// MemberAttributes hold member DNs (groupOfNames member, groupOfUniqueNames uniqueMember).
	MemberAttributes []string `toml:"member_attributes"`
	// MemberUIDAttributes hold user uids (posixGroup memberUid), resolved through the users' uid.
	MemberUIDAttributes []string `toml:"member_uid_attributes"`
}

// ScheduleConfig is [schedule]: robfig/cron specs for delta and full passes.
type ScheduleConfig struct {
	Delta string `toml:"delta"`
	Full  string `toml:"full"`
}

// SafetyConfig is [safety]: the deletion threshold (invariant 5, docs/architecture.md).
type SafetyConfig struct {
	MaxDeletes       int     `toml:"max_deletes"`
	MaxDeletePercent float64 `toml:"max_delete_percent"`
	// Staging syncs and serves but never pushes to targets or webhooks: a way to watch what a
	// new deployment would do (with `ldapscim plan`) before it touches a cloud app.
	Staging bool `toml:"staging"`
}

// PasswordEnv is the environment variable that may hold the bind password.
const PasswordEnv = "LDAPSCIM_LDAP_BIND_PASSWORD"

// DefaultConfig returns the [ldap] defaults for OpenLDAP.
func DefaultConfig() Config {
	return Config{
		Dialect:        DialectOpenLDAP,
		PageSize:       5000,
		Timeout:        confval.Duration(30e9),
		ChangeTracking: TrackAuto,
		Overlap:        confval.Duration(60e9),
		RangeStep:      1500,
		Users:          UsersConfig{Filter: "(objectClass=inetOrgPerson)"},
		Groups: GroupsConfig{
			Filter:              "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))",
			MemberAttributes:    []string{"member", "uniqueMember"},
			MemberUIDAttributes: []string{"memberUid"},
		},
	}
}

// DialectDefaults returns the [ldap] defaults for a dialect: DefaultConfig's, with Active
// Directory's user and group filters and member attributes when dialect is activedirectory.
func DialectDefaults(dialect string) Config {
	c := DefaultConfig()
	if dialect == DialectActiveDirectory {
		c.Dialect = dialect
		c.Users.Filter = "(&(objectClass=user)(objectCategory=person))"
		c.Groups.Filter = "(objectClass=group)"
		c.Groups.MemberAttributes = []string{"member"}
		c.Groups.MemberUIDAttributes = nil
	}
	return c
}

// DefaultSchedule returns the [schedule] defaults.
func DefaultSchedule() ScheduleConfig { return ScheduleConfig{Delta: "@every 1m", Full: "0 3 * * *"} }

// DefaultSafety returns the [safety] defaults.
func DefaultSafety() SafetyConfig { return SafetyConfig{MaxDeletes: 100, MaxDeletePercent: 5} }

// ResolveSecrets loads the bind password from the first line of bind_password_file, else
// $LDAPSCIM_LDAP_BIND_PASSWORD, else keeps bind_password.
func (c *Config) ResolveSecrets() error {
	if c.BindPasswordFile != "" {
		pw, err := firstLine(c.BindPasswordFile)
		if err != nil {
			return fmt.Errorf("ldap.bind_password_file: %w", err)
		}
		c.BindPassword = confval.NewSecret(pw)
		return nil
	}
	c.BindPassword, _ = confval.LoadSecret(c.BindPassword, "", PasswordEnv) // no file: cannot fail
	return nil
}

// firstLine returns the first line of a secret file without its CR/LF: what follows (a comment,
// a second secret for a rotation) is not part of the password. Its errors never quote the file.
func firstLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("the first line of secret file %s is empty", path)
	}
	return line, nil
}

// Warnings returns the settings that work but expose the bind password or the directory's
// answers: a simple bind in clear text and an unverified server certificate. They never quote
// a secret.
func (c *Config) Warnings() []string {
	var w []string
	if c.BindDN != "" && clearText(c.URL, c.StartTLS) {
		w = append(w, fmt.Sprintf("ldap: simple bind as %q over ldap:// without start_tls: the password crosses the network in clear text (use ldaps:// or start_tls = true)", c.BindDN))
	}
	if c.InsecureSkipVerify {
		w = append(w, "ldap.insecure_skip_verify: the server certificate is not verified, so whoever is on the path can pose as the directory and learn the bind password (set ca_file instead)")
	}
	return w
}

// clearText reports whether rawURL is plain ldap:// to another host without StartTLS. A
// loopback host is exempt: the password never leaves the machine (nor does it over ldapi://).
func clearText(rawURL string, startTLS bool) bool {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.EqualFold(u.Scheme, "ldap") || startTLS {
		return false
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return !ip.IsLoopback()
	}
	return !strings.EqualFold(h, "localhost")
}

// Validate returns every problem in the section, each prefixed with its key path.
func (c *Config) Validate() []error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("ldap.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.URL == "" {
		add("url", "is required (ldap://host:389, ldaps://host:636 or ldapi://%%2Fpath%%2Fto%%2Fsocket)")
	} else if len(c.URL) > 8 && strings.EqualFold(c.URL[:8], "ldapi://") {
		// net/url rejects the percent-encoded socket path in the host; the clients parse it.
		if _, err := url.PathUnescape(c.URL[8:]); err != nil {
			add("url", "%q: the socket path does not unescape: %v", redactURL(c.URL), err)
		}
	} else if u, err := url.Parse(c.URL); err != nil {
		if strings.Contains(c.URL, "@") { // the parse error could quote a piece of a password
			add("url", "%q does not parse (credentials in the URL are not allowed; set bind_dn and bind_password_file)", redactURL(c.URL))
		} else {
			add("url", "%q does not parse: %v", redactURL(c.URL), errors.Unwrap(err))
		}
	} else {
		switch u.Scheme {
		case "ldap", "ldapi":
		case "ldaps":
			if c.StartTLS {
				add("start_tls", "cannot be combined with an ldaps:// url (it is already TLS)")
			}
		default:
			add("url", "scheme %q is not supported (use ldap://, ldaps:// or ldapi://)", u.Scheme)
		}
		if u.Scheme != "ldapi" && u.Host == "" {
			add("url", "%q has no host", redactURL(c.URL))
		}
		if u.User != nil {
			add("url", "credentials in the URL are not allowed (they would be shown wherever the URL is); set bind_dn and bind_password_file (or $%s)", PasswordEnv)
		}
	}
	switch c.Dialect {
	case DialectOpenLDAP, DialectActiveDirectory:
	default:
		add("dialect", "%q is not one of %q, %q", c.Dialect, DialectOpenLDAP, DialectActiveDirectory)
	}
	if c.BindDN != "" && !c.BindPassword.IsSet() {
		add("bind_password", "bind_dn is set but no password was given (bind_password, bind_password_file or $%s)", PasswordEnv)
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			add("ca_file", "cannot read %s: %v", c.CAFile, errors.Unwrap(err))
		}
	}
	if c.PageSize < 1 || c.PageSize > 100000 {
		add("page_size", "%d is out of range (1..100000)", c.PageSize)
	}
	if c.Timeout.D() <= 0 {
		add("timeout", "must be positive")
	}
	if c.Overlap.D() < 0 {
		add("overlap", "must not be negative")
	}
	switch {
	case c.Dialect == DialectActiveDirectory:
		if c.ChangeTracking != TrackAuto && c.ChangeTracking != TrackUSN && c.ChangeTracking != TrackDirSync {
			add("change_tracking", "%q is not one of auto, usn, dirsync (dialect activedirectory)", c.ChangeTracking)
		}
	case c.ChangeTracking != TrackAuto && c.ChangeTracking != TrackSyncrepl && c.ChangeTracking != TrackModifyTimestamp:
		add("change_tracking", "%q is not one of auto, syncrepl, modifytimestamp", c.ChangeTracking)
	}
	if c.RangeStep < 0 || c.RangeStep > 1000000 {
		add("range_step", "%d is out of range (0..1000000; 0: only the ranges the server imposes)", c.RangeStep)
	}
	errs = append(errs, validateSearch("users", c.Users.BaseDN, c.Users.Filter)...)
	errs = append(errs, validateSearch("groups", c.Groups.BaseDN, c.Groups.Filter)...)
	if _, known := defaultUserMappings[c.Dialect]; known {
		if _, err := UserMapping(c.Dialect, c.Users.Mapping); err != nil {
			errs = append(errs, prefixErrs("ldap.users.mapping", err)...)
		}
		if _, err := GroupMapping(c.Dialect, c.Groups.Mapping); err != nil {
			errs = append(errs, prefixErrs("ldap.groups.mapping", err)...)
		}
	}
	for _, a := range append(append([]string{}, c.Groups.MemberAttributes...), c.Groups.MemberUIDAttributes...) {
		if !validAttrName(a) {
			errs = append(errs, fmt.Errorf("ldap.groups: member attribute %q is not a valid LDAP attribute name", a))
		}
	}
	return errs
}

// maxDN bounds a configured DN: real ones are a few hundred bytes at most.
const maxDN = 4096

// attrType is an RFC 4512 attribute type: a descriptor or a numeric OID.
var attrType = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)$`)

// checkDN is stricter than go-ldap's ParseDN, which takes "=a=b": every RDN needs an attribute
// type and a value.
func checkDN(s string) error {
	if len(s) > maxDN {
		return fmt.Errorf("longer than %d bytes", maxDN)
	}
	d, err := ldap.ParseDN(s)
	if err != nil {
		return err
	}
	// go-ldap reads "=a=b" as a=b: find a component that starts with "=" ourselves.
	start := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
			start = false
		case c == ',' || c == '+' || c == ';':
			start = true
		case c == ' ' && start:
		case c == '=' && start:
			return fmt.Errorf("a component has no attribute type")
		default:
			start = false
		}
	}
	for _, rdn := range d.RDNs {
		for _, a := range rdn.Attributes {
			if !attrType.MatchString(a.Type) {
				return fmt.Errorf("%q is not an attribute type", clip(a.Type, 40))
			}
			if a.Value == "" {
				return fmt.Errorf("%s has no value", a.Type)
			}
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func validateSearch(section, base, filter string) []error {
	var errs []error
	if base == "" {
		errs = append(errs, fmt.Errorf("ldap.%s.base_dn: is required", section))
	} else if err := checkDN(base); err != nil {
		errs = append(errs, fmt.Errorf("ldap.%s.base_dn: %q is not a valid DN: %v", section, clip(base, 80), err))
	}
	if filter == "" {
		errs = append(errs, fmt.Errorf("ldap.%s.filter: is required", section))
	} else if _, err := ldap.CompileFilter(filter); err != nil {
		errs = append(errs, fmt.Errorf("ldap.%s.filter: %q is not a valid LDAP filter: %v", section, filter, err))
	}
	return errs
}

// Validate checks the cron specs.
func (s ScheduleConfig) Validate() []error {
	var errs []error
	for key, spec := range map[string]string{"delta": s.Delta, "full": s.Full} {
		if spec == "" {
			continue // disabled
		}
		if _, err := cronParser.Parse(spec); err != nil {
			errs = append(errs, fmt.Errorf("schedule.%s: %q is not a cron spec: %v", key, spec, err))
		}
	}
	if s.Delta == "" && s.Full == "" {
		errs = append(errs, errors.New("schedule: both delta and full are empty, so serve would never sync"))
	}
	return errs
}

// LongestGap returns the longest time between two passes of the schedule (delta or full,
// whichever comes first) over the week after start, or 0 when no spec parses. A pass that
// runs longer than a gap makes the next one wait; the caller adds that.
func (s ScheduleConfig) LongestGap(start time.Time) time.Duration {
	var scheds []cron.Schedule
	for _, spec := range []string{s.Delta, s.Full} {
		if sc, err := cronParser.Parse(spec); err == nil && spec != "" {
			scheds = append(scheds, sc)
		}
	}
	if len(scheds) == 0 {
		return 0
	}
	var gap time.Duration
	end := start.Add(7 * 24 * time.Hour)
	t := start
	for i := 0; i < 100000 && t.Before(end); i++ {
		var next time.Time
		for _, sc := range scheds {
			if n := sc.Next(t); next.IsZero() || (!n.IsZero() && n.Before(next)) {
				next = n
			}
		}
		if next.IsZero() {
			break
		}
		gap = max(gap, next.Sub(t))
		t = next
	}
	return gap
}

// cronParser accepts the five standard fields and descriptors like "@every 1m" and "@daily".
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Validate checks the threshold values.
func (s SafetyConfig) Validate() []error {
	var errs []error
	if s.MaxDeletes < 0 {
		errs = append(errs, fmt.Errorf("safety.max_deletes: %d must not be negative", s.MaxDeletes))
	}
	if s.MaxDeletePercent < 0 || s.MaxDeletePercent > 100 {
		errs = append(errs, fmt.Errorf("safety.max_delete_percent: %g is out of range (0..100)", s.MaxDeletePercent))
	}
	return errs
}

func prefixErrs(prefix string, err error) []error {
	var out []error
	for _, e := range unjoin(err) {
		out = append(out, fmt.Errorf("%s: %w", prefix, e))
	}
	return out
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
