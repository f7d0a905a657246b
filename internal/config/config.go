// Package config assembles ldapscim's TOML file from the sections its packages own: it decodes
// the file over the defaults, rejects unknown keys with their key path, resolves secrets from
// files or the environment, and reports every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/ha"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/internal/redact"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// File is the whole configuration file.
type File struct {
	Cache    Cache                   `toml:"cache"`
	LDAP     ldapsync.Config         `toml:"ldap"`
	Schedule ldapsync.ScheduleConfig `toml:"schedule"`
	Safety   ldapsync.SafetyConfig   `toml:"safety"`
	// Rules are [[rules]]: roles and virtual groups from HR attributes.
	Rules []ldapsync.RuleConfig `toml:"rules"`
	Log   Log                   `toml:"log"`
	// SCIM is [scim]; nil when the file has no [scim] section, and then serve runs no API.
	SCIM *scimapi.Config `toml:"scim,omitempty"`
	// Admin is [admin]: health, metrics, status page and admin API; on by default, on loopback.
	Admin admin.Config `toml:"admin"`
	// Targets are [[targets]] and Webhooks [[webhooks]]: push provisioning (package push).
	Targets  []push.TargetConfig  `toml:"targets"`
	Webhooks []push.WebhookConfig `toml:"webhooks"`
	// CSV are [[csv]]: HR files as sources of users beside the directory (package hrsync).
	CSV []hrcsv.Config `toml:"csv"`
	// HA is [ha]: the replicas elect the one that pushes on etcd (package ha); off by default.
	HA ha.Config `toml:"ha"`

	inline   []string // keys whose secret is written in the file itself (not a *_file or the environment)
	warnings []string // about the file itself (Load), beside those of its settings (Warnings)
}

// Cache is [cache].
type Cache struct {
	Dir        string `toml:"dir"`
	SyncWrites bool   `toml:"sync_writes"`
}

// Log is [log].
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Defaults returns the configuration every file is decoded over.
func Defaults() File {
	return File{
		Cache:    Cache{Dir: "/var/lib/ldapscim"},
		LDAP:     ldapsync.DefaultConfig(),
		Schedule: ldapsync.DefaultSchedule(),
		Safety:   ldapsync.DefaultSafety(),
		Log:      Log{Level: "info", Format: "text"},
		Admin:    admin.DefaultConfig(),
		HA:       ha.DefaultConfig(),
	}
}

// Load reads, decodes and validates the file at path. Its error lists every problem found.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 && len(f.inline) > 0 {
		f.warnings = append(f.warnings, fmt.Sprintf("%s is readable by every local user and holds %s inline: chmod 600 it, or move the secret to a *_file or the environment",
			path, strings.Join(f.inline, ", ")))
	}
	return f, nil
}

// Warnings returns what works but weakens security, for the log at start-up and check-config:
// a world-readable file with inline secrets, a bind in clear text, certificates not verified.
// They name keys, never a secret.
func (f *File) Warnings() []string {
	w := append(slices.Clone(f.warnings), f.LDAP.Warnings()...)
	w = append(w, f.HA.Warnings()...)
	for i, t := range f.Targets {
		if t.TLSInsecureSkipVerify {
			w = append(w, fmt.Sprintf("targets[%d] (%s).tls_insecure_skip_verify: the target's certificate is not verified, so whoever is on the path can pose as it and learn its token", i, t.Name))
		}
	}
	return w
}

// inlineSecrets lists the keys whose secret the file holds itself: read before the *_file
// and environment values are resolved into the same fields.
func (f *File) inlineSecrets() []string {
	var keys []string
	if f.LDAP.BindPassword.IsSet() {
		keys = append(keys, "ldap.bind_password")
	}
	for i, t := range f.Targets {
		if t.Token.IsSet() {
			keys = append(keys, fmt.Sprintf("targets[%d].token", i))
		}
		if t.ClientSecret.IsSet() {
			keys = append(keys, fmt.Sprintf("targets[%d].client_secret", i))
		}
	}
	for i, w := range f.Webhooks {
		if w.Secret.IsSet() {
			keys = append(keys, fmt.Sprintf("webhooks[%d].secret", i))
		}
	}
	return keys
}

// Parse decodes and validates a configuration.
func Parse(raw []byte) (*File, error) {
	f := Defaults()
	// Mappings are merged over the dialect's defaults later, so decode them into empty maps.
	f.LDAP.Users.Mapping, f.LDAP.Groups.Mapping = nil, nil
	scimDefaults := scimapi.DefaultConfig()
	f.SCIM = &scimDefaults
	// The syntax first (its error ends the parse), then every key, so that each value of the
	// wrong type is a problem of its own (decodeEach).
	var doc toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&doc)
	if err != nil {
		return nil, decodeError(err)
	}
	errs := decodeEach(raw, md, doc, &f, "")
	if !md.IsDefined("scim") {
		f.SCIM = nil
	}
	dialectDefaults(&f.LDAP, md)
	f.inline = f.inlineSecrets()
	if err := f.LDAP.ResolveSecrets(); err != nil {
		errs = append(errs, err)
	}
	if f.SCIM != nil {
		errs = append(errs, f.SCIM.ResolveTokens()...)
	}
	errs = append(errs, f.Admin.ResolveToken()...)
	errs = append(errs, push.Prepare(f.Targets, f.Webhooks)...)
	errs = append(errs, f.HA.Resolve()...)
	f.csvDefaults(md)
	errs = append(errs, f.validate()...)
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	return &f, nil
}

func (f *File) validate() []error {
	var errs []error
	if f.Cache.Dir == "" {
		errs = append(errs, errors.New("cache.dir: is required"))
	}
	switch f.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", f.Log.Level))
	}
	switch f.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", f.Log.Format))
	}
	errs = append(errs, f.LDAP.Validate()...)
	errs = append(errs, f.Schedule.Validate()...)
	errs = append(errs, f.Safety.Validate()...)
	if _, err := ldapsync.CompileRules(f.Rules); err != nil {
		errs = append(errs, splitErrors(err)...)
	}
	if f.SCIM != nil {
		errs = append(errs, f.SCIM.Validate()...)
	}
	errs = append(errs, f.Admin.Validate()...)
	errs = append(errs, f.validateCSV()...)
	errs = append(errs, f.HA.Validate()...)
	if gap := f.Schedule.LongestGap(time.Now()); f.HA.Enabled() && gap >= f.HA.MaxLag.D() {
		errs = append(errs, fmt.Errorf("ha.max_lag: %s is not longer than the longest gap between two passes of [schedule] (%s): a replica may take longer than that to apply a change; set it above the gap plus a pass plus the clock skew between the machines", f.HA.MaxLag.D(), gap))
	}
	return errs
}

// csvDefaults fills the keys each [[csv]] entry left out.
func (f *File) csvDefaults(md toml.MetaData) {
	def := hrcsv.DefaultConfig()
	for i := range f.CSV {
		c := &f.CSV[i]
		for _, k := range []struct {
			v   *string
			def string
		}{{&c.Mode, def.Mode}, {&c.Delimiter, def.Delimiter}, {&c.Encoding, def.Encoding}, {&c.DateFormat, def.DateFormat}} {
			if *k.v == "" {
				*k.v = k.def
			}
		}
	}
}

// validateCSV checks every [[csv]] entry: its keys, its mapping's SCIM paths, unique names.
func (f *File) validateCSV() []error {
	var errs []error
	names := map[string]int{}
	for i, c := range f.CSV {
		at := fmt.Sprintf("csv[%d]", i)
		if c.Name != "" {
			at = fmt.Sprintf("csv[%d] (%s)", i, c.Name)
			if j, dup := names[c.Name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: csv[%d] has the same name", at, j))
			}
			names[c.Name] = i
		}
		for _, err := range c.Validate() {
			errs = append(errs, fmt.Errorf("%s.%w", at, err))
		}
		if c.Mode == hrcsv.ModeEnrich && c.Join != "" && c.Join != "externalId" && c.Join != "userName" {
			errs = append(errs, fmt.Errorf("%s.join: %q: want \"externalId\" or \"userName\" (the attribute of directory users that equals the key)", at, c.Join))
		}
		if c.Path == "" {
			errs = append(errs, fmt.Errorf("%s.path: required: the file scheduled passes read", at))
		}
		for _, p := range slices.Sorted(maps.Keys(c.Mapping)) {
			sp, err := scim.ParsePath(scim.UserType, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.mapping: %w", at, err))
			} else if c.Mode == hrcsv.ModeEnrich && !sp.Single() {
				errs = append(errs, fmt.Errorf("%s.mapping: %w", at, hrsync.EnrichPathError(sp)))
			}
		}
	}
	return errs
}

// Error lists every problem of a configuration.
type Error struct{ Problems []error }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config has %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// decodeError turns a TOML syntax or type error into one problem with its line.
func decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{Problems: []error{fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)}}
	}
	return &Error{Problems: []error{err}}
}

// Print writes the effective configuration as TOML, mappings merged with their defaults,
// secrets shown as <secret> and URLs redacted (Redacted).
func (f *File) Print(w io.Writer) error {
	eff := f.Redacted()
	eff.LDAP.Users.Mapping = mergeMapping(ldapsync.DefaultUserMapping(f.LDAP.Dialect), f.LDAP.Users.Mapping)
	eff.LDAP.Groups.Mapping = mergeMapping(ldapsync.DefaultGroupMapping(f.LDAP.Dialect), f.LDAP.Groups.Mapping)
	return toml.NewEncoder(w).Encode(eff)
}

// Redacted returns a copy of f that is safe to print or marshal: the URLs it holds have their
// credentials and query values masked (redact.URL), and webhook URLs, whose path is their
// secret, keep only scheme and host (redact.Host). Secrets marshal as <secret> anyway.
func (f *File) Redacted() File {
	eff := *f
	eff.LDAP.URL = redact.URL(f.LDAP.URL)
	eff.Targets = slices.Clone(f.Targets)
	for i := range eff.Targets {
		eff.Targets[i].URL = redact.URL(eff.Targets[i].URL)
		if eff.Targets[i].TokenURL != "" {
			eff.Targets[i].TokenURL = redact.URL(eff.Targets[i].TokenURL)
		}
	}
	eff.Webhooks = slices.Clone(f.Webhooks)
	for i := range eff.Webhooks {
		eff.Webhooks[i].URL = redact.Host(eff.Webhooks[i].URL)
	}
	return eff
}

func mergeMapping(defaults, overrides map[string]string) map[string]string {
	for k, v := range overrides {
		for d := range defaults {
			if strings.EqualFold(d, k) {
				delete(defaults, d)
			}
		}
		defaults[k] = v
	}
	return defaults
}

// splitErrors splits a joined error into its problems.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// SyncOptions are the ldapsync options the file implies (its compiled rules); the caller adds
// the logger, progress and observers.
func (f *File) SyncOptions() ldapsync.Options {
	rules, err := ldapsync.CompileRules(f.Rules)
	if err != nil {
		return ldapsync.Options{} // Load has already rejected the file
	}
	return ldapsync.Options{Rules: rules}
}

// dialectDefaults replaces the OpenLDAP defaults of the keys the file left out with those of its
// dialect: the defaults are decoded before the file says which directory it reads.
func dialectDefaults(c *ldapsync.Config, md toml.MetaData) {
	d := ldapsync.DialectDefaults(c.Dialect)
	if !md.IsDefined("ldap", "users", "filter") {
		c.Users.Filter = d.Users.Filter
	}
	if !md.IsDefined("ldap", "groups", "filter") {
		c.Groups.Filter = d.Groups.Filter
	}
	if !md.IsDefined("ldap", "groups", "member_attributes") {
		c.Groups.MemberAttributes = d.Groups.MemberAttributes
	}
	if !md.IsDefined("ldap", "groups", "member_uid_attributes") {
		c.Groups.MemberUIDAttributes = d.Groups.MemberUIDAttributes
	}
}
