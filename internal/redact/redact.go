// Package redact turns URLs from the configuration into strings that are safe to print in
// check-config output, logs, errors and the admin status data: credentials in the userinfo,
// query values (OAuth tokens, API keys, SAS signatures) and fragments are replaced by "xxxxx";
// Host additionally hides the path, where chat incoming-webhook URLs carry their secret
// (https://hooks.slack.com/services/T000/B000/XXXX prints as https://hooks.slack.com/…).
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a secret part of a URL.
const Mask = "xxxxx"

// URL returns raw with its userinfo (user and password) replaced by xxxxx, every query value
// replaced by xxxxx (the keys stay) and any fragment replaced by xxxxx. Scheme, host and path
// are kept. A URL that does not parse, or has an '@' outside its userinfo (a password with a
// '/', '?' or '#' in it moves the '@' there), is redacted by its shape: everything up to the
// last '@', and everything after '?' or '#'.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || (u.User == nil && strings.Contains(raw, "@")) {
		return byShape(raw, false)
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = query(u.RawQuery)
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	return u.String()
}

// Host returns raw as URL does, and with any path beyond the host replaced by "/…": for
// webhook URLs, whose path is their secret.
func Host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" || (u.User == nil && strings.Contains(raw, "@")) {
		return byShape(raw, true)
	}
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(Mask + "@")
	}
	b.WriteString(u.Host)
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		b.WriteString("/…")
	}
	return b.String()
}

// query keeps the keys of a query string, in order, and masks their values; a part without
// '=' (a bare token) is masked whole.
func query(raw string) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if _, err := url.QueryUnescape(k); !ok || err != nil || k == "" {
			parts[i] = Mask
			continue
		}
		parts[i] = k + "=" + Mask
	}
	return strings.Join(parts, "&")
}

// byShape redacts a string that net/url does not parse (an ldapi:// URL with its
// percent-encoded socket path, or a mistyped URL): userinfo, query and fragment by their
// delimiters, and with hidePath everything after the authority.
func byShape(raw string, hidePath bool) string {
	rest, prefix := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	} else if hidePath {
		return Mask
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		prefix, rest = prefix+Mask+"@", rest[at+1:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	if hidePath {
		if tail != "" && tail != "/" {
			tail = "/…"
		}
		return prefix + auth + tail
	}
	if i := strings.IndexAny(tail, "?#"); i >= 0 {
		tail = tail[:i+1] + Mask
	}
	return prefix + auth + tail
}
