// Package sampledata generates realistic, deterministic LDIF for OpenLDAP: an organization
// with people (inetOrgPerson, a manager tree, a few disabled and non-ASCII users) and groups
// (groupOfNames of many sizes, groupOfUniqueNames, posixGroup, optionally nested). The same
// Options always produce the same bytes, so tests and benchmarks can name their data.
package sampledata

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// Options describe the directory to generate.
type Options struct {
	Users       int    // inetOrgPerson entries under ou=people
	Groups      int    // group entries under ou=groups; needs Users ≥ 1
	Suffix      string // default DefaultSuffix
	Seed        int64  // same seed, same output
	NestedGroup bool   // one group has another group among its members
	Disabled    int    // users with pwdAccountLockedTime (OpenLDAP's "inactive")

	// Enterprise writes the enterprise shape instead (see enterprise.go), streaming, in bounded
	// memory: users named from their index, manager chains (an 8-ary tree, ~log8(Users) levels),
	// Groups groupOfNames of GroupMembers random members each, and with AllStaff one more
	// groupOfNames, cn=all-staff, listing every user. Disabled and NestedGroup apply too.
	Enterprise   bool
	GroupMembers int  // members per group in the enterprise shape; 0 means DefaultGroupMembers
	AllStaff     bool // the enterprise shape's all-staff group
}

const (
	// DefaultSuffix is used when Options.Suffix is empty.
	DefaultSuffix = "dc=example,dc=com"
	// ReaderPassword is the password of the cn=reader service account (internal/testenv
	// uses the same account and password).
	ReaderPassword = "reader-secret"
	// LockedTime is the pwdAccountLockedTime of disabled users: ppolicy's "locked until an
	// administrator unlocks".
	LockedTime = "000001010000Z"
	// BigGroupSize is the size of the big group written when Users ≥ BigGroupSize.
	BigGroupSize = 2000
)

// WriteBase writes the suffix entry and the cn=reader service account.
func WriteBase(w io.Writer, suffix, readerPassword string) error {
	bw := bufio.NewWriter(w)
	writeBase(bw, suffix, readerPassword)
	return bw.Flush()
}

// Write writes the whole directory as LDIF: suffix, cn=reader, ou=people, ou=groups, users,
// then groups. Entries may reference entries that come later in the file (managers, nested
// groups), as in real exports; slapadd accepts that.
func Write(w io.Writer, o Options) error {
	if o.Suffix == "" {
		o.Suffix = DefaultSuffix
	}
	if err := o.validate(); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	writeBase(bw, o.Suffix, ReaderPassword)
	entry(bw, "ou=people,"+o.Suffix, "objectClass", "top", "objectClass", "organizationalUnit", "ou", "people")
	entry(bw, "ou=groups,"+o.Suffix, "objectClass", "top", "objectClass", "organizationalUnit", "ou", "groups")
	if o.Enterprise {
		newEnterprise(o).write(bw)
		return bw.Flush()
	}
	g := newGenerator(o)
	for i := range o.Users {
		g.writeUser(bw, i)
	}
	for i := range o.Groups {
		g.writeGroup(bw, i)
	}
	return bw.Flush()
}

func (o Options) validate() error {
	var errs []error
	if o.Users < 0 || o.Groups < 0 || o.Disabled < 0 {
		errs = append(errs, errors.New("sampledata: counts must not be negative"))
	}
	if o.Disabled > o.Users {
		errs = append(errs, fmt.Errorf("sampledata: %d disabled users but only %d users", o.Disabled, o.Users))
	}
	if o.Groups > 0 && o.Users == 0 {
		errs = append(errs, errors.New("sampledata: groups need at least one user (groupOfNames requires a member)"))
	}
	if _, err := ldap.ParseDN(o.Suffix); err != nil {
		errs = append(errs, fmt.Errorf("sampledata: suffix: %w", err))
	}
	if err := o.validateEnterprise(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func writeBase(w *bufio.Writer, suffix, readerPassword string) {
	attr, value, _ := strings.Cut(strings.SplitN(suffix, ",", 2)[0], "=")
	switch strings.ToLower(attr) {
	case "dc":
		entry(w, suffix, "objectClass", "top", "objectClass", "dcObject", "objectClass", "organization",
			"dc", value, "o", value)
	case "o":
		entry(w, suffix, "objectClass", "top", "objectClass", "organization", "o", value)
	default:
		entry(w, suffix, "objectClass", "top", "objectClass", "organizationalUnit", "ou", value)
	}
	entry(w, "cn=reader,"+suffix, "objectClass", "top", "objectClass", "simpleSecurityObject",
		"objectClass", "organizationalRole", "cn", "reader",
		"description", "read-only service account", "userPassword", readerPassword)
}

// entry writes one LDIF record from attribute/value pairs. Values that are not RFC 2849
// SAFE-STRINGs (non-ASCII, leading space/colon/<, trailing space) are base64-encoded.
func entry(w *bufio.Writer, dn string, pairs ...string) {
	line(w, "dn", dn)
	for i := 0; i < len(pairs); i += 2 {
		line(w, pairs[i], pairs[i+1])
	}
	w.WriteByte('\n')
}

func line(w *bufio.Writer, attr, value string) {
	w.WriteString(attr)
	if safe(value) {
		w.WriteString(": ")
		w.WriteString(value)
	} else {
		w.WriteString(":: ")
		w.WriteString(base64.StdEncoding.EncodeToString([]byte(value)))
	}
	w.WriteByte('\n')
}

func safe(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= utf8.RuneSelf || c == 0 || c == '\n' || c == '\r' {
			return false
		}
	}
	return true
}

// generator holds what is decided up front so that users and groups can reference each other.
type generator struct {
	o        Options
	rng      *rand.Rand
	people   []person
	uids     []string
	manager  []int // index of each user's manager, -1 for the root of the tree
	disabled map[int]bool
}

// reportsPerManager shapes the manager tree: roughly one manager per this many people.
const reportsPerManager = 8

func newGenerator(o Options) *generator {
	g := &generator{o: o, rng: rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed1da9))}
	seen := make(map[string]int, o.Users)
	for i := range o.Users {
		p := g.pickPerson(i)
		base := strings.ToLower(p.givenASCII + "." + p.snASCII)
		uid := base
		if n := seen[base]; n > 0 {
			uid = fmt.Sprintf("%s%d", base, n+1)
		}
		seen[base]++
		g.people = append(g.people, p)
		g.uids = append(g.uids, uid)
	}
	// A random order laid out as an 8-ary tree: perm[0] is the CEO, perm[k] reports to
	// perm[(k-1)/8]. File order is index order, so many managers come after their reports.
	perm := g.rng.Perm(o.Users)
	g.manager = make([]int, o.Users)
	for k, u := range perm {
		g.manager[u] = -1
		if k > 0 {
			g.manager[u] = perm[(k-1)/reportsPerManager]
		}
	}
	g.disabled = make(map[int]bool, o.Disabled)
	for _, i := range g.sample(o.Users, o.Disabled) {
		g.disabled[i] = true
	}
	return g
}

func (g *generator) pickPerson(i int) person {
	// Every 97th user has a name that needs base64 and transliteration.
	if i%97 == 13 {
		return special[(i/97)%len(special)]
	}
	given := givenNames[g.rng.IntN(len(givenNames))]
	sn := surnames[g.rng.IntN(len(surnames))]
	return person{given, given, sn, sn}
}

func (g *generator) userDN(i int) string {
	return "uid=" + ldap.EscapeDN(g.uids[i]) + ",ou=people," + g.o.Suffix
}

func (g *generator) writeUser(w *bufio.Writer, i int) {
	p, uid := g.people[i], g.uids[i]
	cn := p.given + " " + p.sn
	if i%50 == 7 { // "Family, Given" style cn: a comma in a value, not in the DN
		cn = p.sn + ", " + p.given
	}
	domain := mailDomain(g.o.Suffix)
	a := []string{
		"objectClass", "top", "objectClass", "person", "objectClass", "organizationalPerson",
		"objectClass", "inetOrgPerson",
		"uid", uid, "cn", cn, "sn", p.sn, "givenName", p.given,
		"displayName", p.given + " " + p.sn,
		"mail", uid + "@" + domain,
	}
	if i%40 == 3 {
		a = append(a, "mail", string(p.givenASCII[0])+"."+strings.ToLower(p.snASCII)+"@alias."+domain)
	}
	a = append(a, "telephoneNumber", fmt.Sprintf("+1 555 %03d %04d", 100+i/10000%900, i%10000))
	if g.rng.IntN(3) == 0 {
		a = append(a, "mobile", fmt.Sprintf("+1 555 %03d %04d", 200+g.rng.IntN(700), g.rng.IntN(10000)))
	}
	a = append(a,
		"title", titles[g.rng.IntN(len(titles))],
		"departmentNumber", departments[g.rng.IntN(len(departments))],
		"o", "Example Corp",
		"employeeNumber", fmt.Sprintf("E%06d", i+1),
	)
	if m := g.manager[i]; m >= 0 {
		a = append(a, "manager", g.userDN(m))
	}
	if g.disabled[i] {
		a = append(a, "pwdAccountLockedTime", LockedTime)
	}
	entry(w, g.userDN(i), a...)
}

func mailDomain(suffix string) string {
	dn, err := ldap.ParseDN(suffix)
	if err != nil {
		return "example.com"
	}
	var parts []string
	for _, r := range dn.RDNs {
		for _, a := range r.Attributes {
			if strings.EqualFold(a.Type, "dc") {
				parts = append(parts, strings.ToLower(a.Value))
			}
		}
	}
	if len(parts) == 0 {
		return "example.com"
	}
	return strings.Join(parts, ".")
}

// sample returns k distinct indices in [0,n), sorted (Floyd's algorithm: O(k), not O(n)).
func (g *generator) sample(n, k int) []int {
	chosen := make(map[int]bool, k)
	out := make([]int, 0, k)
	for j := n - k; j < n; j++ {
		t := g.rng.IntN(j + 1)
		if chosen[t] {
			t = j
		}
		chosen[t] = true
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// groupSize is log-uniform in [2, min(500, Users)]: many small groups, a few large ones.
func (g *generator) groupSize() int {
	hi := min(500, g.o.Users)
	if hi <= 2 {
		return hi
	}
	return int(math.Round(math.Exp(math.Log(2) + g.rng.Float64()*(math.Log(float64(hi))-math.Log(2)))))
}
