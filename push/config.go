package push

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/redact"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
	"github.com/robfig/cron/v3"
)

// Deprovisioning policies: what happens at a target to a user who leaves the scope, is
// disabled or is deleted in the directory.
const (
	Deactivate           = "deactivate"
	Delete               = "delete"
	DeactivateThenDelete = "deactivate_then_delete"
)

// Profiles: the request shapes of a kind of target (ref/scim-clients.md).
const (
	ProfileRFC   = "rfc"
	ProfileOkta  = "okta"
	ProfileEntra = "entra"
	ProfileAWS   = "aws"
)

// TargetConfig is one [[targets]] entry: a SCIM service provider that ldapscim provisions.
type TargetConfig struct {
	Name string `toml:"name"`
	// URL is the SCIM base URL, e.g. "https://example.okta.com/scim/v2" (without /Users).
	URL string `toml:"url"`

	// Auth: a bearer token (token, token_file) or OAuth2 client credentials.
	Token            confval.Secret `toml:"token"`
	TokenFile        string         `toml:"token_file"`
	TokenURL         string         `toml:"token_url"`
	ClientID         string         `toml:"client_id"`
	ClientSecret     confval.Secret `toml:"client_secret"`
	ClientSecretFile string         `toml:"client_secret_file"`
	Scopes           []string       `toml:"scopes"`

	// Scope: a SCIM filter over users; source groups (by displayName) whose members, nested
	// ones included, are in scope too. Neither set: every user. Both: either one.
	Scope        string   `toml:"scope"`
	SourceGroups []string `toml:"source_groups"`

	// Groups pushes groups; GroupFilter (a SCIM filter over groups) picks which. Members are
	// the pushed users and groups; FlattenGroups replaces nested groups by their users.
	Groups        bool   `toml:"groups"`
	GroupFilter   string `toml:"group_filter"`
	FlattenGroups bool   `toml:"flatten_groups"`

	Deprovision string           `toml:"deprovision"`
	DeleteAfter confval.Duration `toml:"delete_after"`

	// Reconcile is a cron spec (five fields or a descriptor such as "@weekly") on which the
	// worker reconciles the target (Target.Reconcile with Apply); "": only when asked, or when a
	// new [ha] leader lacks current push state.
	Reconcile string `toml:"reconcile"`

	// Attributes maps target attribute → source attribute ("" drops it). Names are top-level
	// attributes or "urn:...:User:attr" for extension attributes.
	Attributes map[string]string `toml:"attributes"`

	Profile               string           `toml:"profile"`
	MembershipChunk       int              `toml:"membership_chunk"` // 0: the profile's
	MaxRequestsPerSecond  float64          `toml:"max_requests_per_second"`
	Concurrency           int              `toml:"concurrency"`
	Timeout               confval.Duration `toml:"timeout"`
	RetryPolicy                            // max_attempts, backoff_*, quarantine_*
	PollInterval          confval.Duration `toml:"poll_interval"`
	TLSInsecureSkipVerify bool             `toml:"tls_insecure_skip_verify"`

	scope, groupScope *filter.Matcher
	reconcileAt       cron.Schedule
}

// WebhookConfig is one [[webhooks]] entry: an HTTPS endpoint that receives change events
// (or, with format "slack", alert texts for a chat incoming webhook).
type WebhookConfig struct {
	Name       string         `toml:"name"`
	URL        string         `toml:"url"`
	Secret     confval.Secret `toml:"secret"`
	SecretFile string         `toml:"secret_file"`
	// Events limits the event types sent ("user.*", "group.created", ...); empty: all.
	Events []string `toml:"events"`
	// Format: "events" (signed JSON change events, the default) or "slack" (alerts about dead
	// letters, quarantine and held deletions as {"text": ...}).
	Format string `toml:"format"`
	// MaxRequestsPerSecond, Concurrency, Timeout, RetryPolicy and PollInterval as for targets.
	MaxRequestsPerSecond float64          `toml:"max_requests_per_second"`
	Concurrency          int              `toml:"concurrency"`
	Timeout              confval.Duration `toml:"timeout"`
	RetryPolicy                           // max_attempts, backoff_*, quarantine_*
	PollInterval         confval.Duration `toml:"poll_interval"`
}

func dur(d *confval.Duration, def time.Duration) {
	if *d == 0 {
		*d = confval.Duration(def)
	}
}

func defInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func (t *TargetConfig) defaults() {
	if t.Profile == "" {
		t.Profile = ProfileRFC
	}
	if t.Deprovision == "" {
		t.Deprovision = Deactivate
	}
	if t.MembershipChunk == 0 {
		t.MembershipChunk = profileFor(t.Profile).membershipChunk
	}
	defInt(&t.Concurrency, 4)
	dur(&t.Timeout, 30*time.Second)
	t.RetryPolicy.defaults()
	dur(&t.PollInterval, 2*time.Second)
	dur(&t.DeleteAfter, 30*24*time.Hour)
}

func (w *WebhookConfig) defaults() {
	if w.Format == "" {
		w.Format = "events"
	}
	defInt(&w.Concurrency, 4)
	dur(&w.Timeout, 10*time.Second)
	w.RetryPolicy.defaults()
	dur(&w.PollInterval, 2*time.Second)
}

// Prepare fills in defaults, reads secret files and validates every [[targets]] and
// [[webhooks]] entry. It returns every problem; no error names a secret's value.
func Prepare(targets []TargetConfig, hooks []WebhookConfig) []error {
	var errs []error
	names := map[string]string{}
	unique := func(where, name string) {
		if name == "" {
			errs = append(errs, fmt.Errorf("%s.name: is required", where))
			return
		}
		if prev, ok := names[strings.ToLower(name)]; ok {
			errs = append(errs, fmt.Errorf("%s.name: %q is also the name of %s", where, name, prev))
		}
		names[strings.ToLower(name)] = where
	}
	for i := range targets {
		where := fmt.Sprintf("targets[%d]", i)
		unique(where, targets[i].Name)
		errs = append(errs, targets[i].prepare(where)...)
	}
	for i := range hooks {
		where := fmt.Sprintf("webhooks[%d]", i)
		unique(where, hooks[i].Name)
		errs = append(errs, hooks[i].prepare(where)...)
	}
	return errs
}

func (t *TargetConfig) prepare(where string) []error {
	t.defaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+"."+format, args...)) }
	if err := checkURL(t.URL); err != nil {
		add("url: %v", err)
	}
	if err := t.resolveAuth(); err != nil {
		add("%v", err)
	}
	var err error
	if t.scope, err = compile(t.Scope, scim.UserResource); err != nil {
		add("scope: %v", err)
	}
	if t.groupScope, err = compile(t.GroupFilter, scim.GroupResource); err != nil {
		add("group_filter: %v", err)
	}
	if strings.TrimSpace(t.Reconcile) != "" {
		if t.reconcileAt, err = cronParser.Parse(t.Reconcile); err != nil {
			add("reconcile: %q is not a cron spec (five fields, or a descriptor such as \"@weekly\"): %v", t.Reconcile, err)
		}
	}
	switch t.Profile {
	case ProfileRFC, ProfileOkta, ProfileEntra, ProfileAWS:
	default:
		add("profile: %q is not one of rfc, okta, entra, aws", t.Profile)
	}
	switch t.Deprovision {
	case Deactivate, DeactivateThenDelete:
	case Delete:
		if t.Profile == ProfileOkta {
			add("deprovision: the okta profile never deletes users; use \"deactivate\"")
		}
	default:
		add("deprovision: %q is not one of deactivate, delete, deactivate_then_delete", t.Deprovision)
	}
	for k, v := range t.Attributes {
		if k == "" || k == "id" || k == "userName" || strings.EqualFold(k, "schemas") {
			add("attributes: %q cannot be mapped", k)
		}
		_ = v
	}
	errs = append(errs, checkLimits(where, t.Concurrency, t.MaxRequestsPerSecond, t.MembershipChunk)...)
	errs = append(errs, t.RetryPolicy.validate(where)...)
	return errs
}

func (t *TargetConfig) resolveAuth() error {
	tok, err := confval.LoadSecret(t.Token, t.TokenFile, "")
	if err != nil {
		return fmt.Errorf("token_file: %v", err)
	}
	t.Token = tok
	if t.TokenURL == "" {
		if !t.Token.IsSet() {
			return errors.New("auth: set token, token_file, or token_url with client_id and client_secret(_file)")
		}
		return nil
	}
	if t.Token.IsSet() {
		return errors.New("auth: set either a bearer token or OAuth2 client credentials, not both")
	}
	sec, err := confval.LoadSecret(t.ClientSecret, t.ClientSecretFile, "")
	if err != nil {
		return fmt.Errorf("client_secret_file: %v", err)
	}
	t.ClientSecret = sec
	if err := checkURL(t.TokenURL); err != nil {
		return fmt.Errorf("token_url: %v", err)
	}
	if t.ClientID == "" || !t.ClientSecret.IsSet() {
		return errors.New("auth: OAuth2 needs client_id and client_secret or client_secret_file")
	}
	return nil
}

func (w *WebhookConfig) prepare(where string) []error {
	w.defaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+"."+format, args...)) }
	if err := checkURL(w.URL); err != nil {
		add("url: %v", err)
	}
	sec, err := confval.LoadSecret(w.Secret, w.SecretFile, "")
	if err != nil {
		add("secret_file: %v", err)
	}
	w.Secret = sec
	switch w.Format {
	case "events":
		if !w.Secret.IsSet() {
			add("secret: is required (events are signed with it); or secret_file")
		}
	case "slack":
	default:
		add("format: %q is not one of events, slack", w.Format)
	}
	for _, e := range w.Events {
		if !knownEvent(e) {
			add("events: unknown event %q (want user.*, group.*, membership.* or one of them)", e)
		}
	}
	errs = append(errs, checkLimits(where, w.Concurrency, w.MaxRequestsPerSecond, 1)...)
	errs = append(errs, w.RetryPolicy.validate(where)...)
	return errs
}

func checkLimits(where string, conc int, rps float64, chunk int) []error {
	var errs []error
	if conc < 1 || conc > 256 {
		errs = append(errs, fmt.Errorf("%s.concurrency: %d is not between 1 and 256", where, conc))
	}
	if rps < 0 {
		errs = append(errs, fmt.Errorf("%s.max_requests_per_second: must not be negative (0: unlimited)", where))
	}
	if chunk < 1 {
		errs = append(errs, fmt.Errorf("%s.membership_chunk: must be at least 1", where))
	}
	return errs
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		return errors.New("credentials in the URL are not allowed; use token or token_file")
	}
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an http(s) URL", redact.Host(s))
	}
	return nil
}

// cronParser reads reconcile specs as [schedule] reads its own: the five standard fields and
// descriptors such as "@every 24h" and "@weekly".
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func compile(expr string, rs *scim.ResourceSchema) (*filter.Matcher, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	e, err := filter.Parse(expr)
	if err != nil {
		return nil, err
	}
	return filter.Compile(e, rs)
}
