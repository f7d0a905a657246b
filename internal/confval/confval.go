// Package confval holds the small value types that config sections share: a Secret that
// never prints itself, and a Duration that reads and writes "90s"-style strings in TOML.
package confval

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Secret is a password or token. It prints as "<secret>" in every format (fmt, TOML, JSON),
// so a config can be logged or shown by check-config without leaking it. Reveal returns the
// value for the one place that needs it.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.v }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s.v != "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return "<secret>"
}

// GoString implements fmt.GoStringer, so %#v does not leak either.
func (s Secret) GoString() string { return `confval.Secret("` + s.String() + `")` }

// MarshalText implements encoding.TextMarshaler (used by TOML and JSON encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Secret) UnmarshalText(b []byte) error {
	s.v = string(b)
	return nil
}

// LoadSecret resolves a secret from, in order: the file at path (trailing newline trimmed),
// the environment variable env, or the inline value. It names the file or variable in its
// error, never the value.
func LoadSecret(inline Secret, path, env string) (Secret, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Secret{}, fmt.Errorf("reading secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return Secret{}, fmt.Errorf("secret file %s is empty", path)
		}
		return Secret{v: v}, nil
	}
	if env != "" {
		if v, ok := os.LookupEnv(env); ok && v != "" {
			return Secret{v: v}, nil
		}
	}
	return inline, nil
}

// Duration is a time.Duration that TOML reads from and writes to strings like "90s" or "5m".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a number with a unit, like \"30s\" or \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}
