package sampledata

import (
	"bufio"
	"errors"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// The enterprise shape (Options.Enterprise) is what the scale benchmark loads: N users, Groups
// groupOfNames of GroupMembers members each, optionally one all-staff group listing every user,
// and manager chains. It is written as a stream: every user's name, uid and manager are
// functions of its index and the seed, so 1M users take a few seconds and a few MB of memory,
// whatever N is. (The classic shape dedupes uids across all users and keeps a permutation for
// the manager tree, both O(N).)

const (
	// AllStaffName is the cn of the enterprise shape's group of every user (Options.AllStaff).
	AllStaffName = "all-staff"
	// DefaultGroupMembers is the size of an enterprise-shape group when GroupMembers is 0.
	DefaultGroupMembers = 50
)

// UserDN returns the DN of the i-th user (0-based, in file order) of the enterprise shape, so
// that tests can modify users without reading them back. It is "" for the classic shape, whose
// uids depend on all the users before.
func UserDN(o Options, i int) string {
	if !o.Enterprise || i < 0 || i >= o.Users {
		return ""
	}
	if o.Suffix == "" {
		o.Suffix = DefaultSuffix
	}
	return newEnterprise(o).userDN(i)
}

// AllStaffDN returns the DN of the enterprise shape's all-staff group.
func AllStaffDN(o Options) string {
	if o.Suffix == "" {
		o.Suffix = DefaultSuffix
	}
	return "cn=" + AllStaffName + ",ou=groups," + o.Suffix
}

func (o Options) validateEnterprise() error {
	var errs []error
	if !o.Enterprise && (o.AllStaff || o.GroupMembers != 0) {
		errs = append(errs, errors.New("sampledata: AllStaff and GroupMembers need the enterprise shape"))
	}
	if o.GroupMembers < 0 {
		errs = append(errs, errors.New("sampledata: GroupMembers must not be negative"))
	}
	if o.Enterprise && o.AllStaff && o.Users == 0 {
		errs = append(errs, errors.New("sampledata: the all-staff group needs at least one user"))
	}
	return errors.Join(errs...)
}

// enterprise writes the enterprise shape. Its state does not grow with Users.
type enterprise struct {
	o      Options
	seed   uint64
	domain string
	people string // ",ou=people," + suffix
	// The manager tree is a reportsPerManager-ary tree over positions: position 0 is the CEO,
	// position k reports to (k-1)/reportsPerManager. User i sits at position (a·i + c) mod N, a
	// permutation (gcd(a, N) = 1), so file order and tree order differ: many managers come
	// after their reports, as in real exports. ainv inverts it.
	a, c, ainv uint64
}

func newEnterprise(o Options) *enterprise {
	e := &enterprise{o: o, seed: uint64(o.Seed), domain: mailDomain(o.Suffix), people: ",ou=people," + o.Suffix}
	n := uint64(o.Users)
	if n > 1 {
		e.a = mix(e.seed, 1)%n | 1
		for gcd(e.a, n) != 1 {
			e.a = (e.a + 2) % n
			if e.a < 2 {
				e.a = 1
			}
		}
		e.c = mix(e.seed, 2) % n
		e.ainv = modInverse(e.a, n)
	}
	return e
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// modInverse returns x with a·x ≡ 1 (mod n), for gcd(a, n) = 1.
func modInverse(a, n uint64) uint64 {
	t, newT := int64(0), int64(1)
	r, newR := int64(n), int64(a)
	for newR != 0 {
		q := r / newR
		t, newT = newT, t-q*newT
		r, newR = newR, r-q*newR
	}
	if t < 0 {
		t += int64(n)
	}
	return uint64(t)
}

// mulmod is a·b mod n without overflow.
func mulmod(a, b, n uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, rem := bits.Div64(hi%n, lo, n)
	return rem
}

// mix is SplitMix64 of the seed and a value: a cheap, well-spread hash.
func mix(seed, v uint64) uint64 {
	z := seed*0x9e3779b97f4a7c15 + v*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (e *enterprise) position(i int) int {
	n := uint64(e.o.Users)
	if n <= 1 {
		return 0
	}
	return int((mulmod(e.a, uint64(i), n) + e.c) % n)
}

func (e *enterprise) userAt(pos int) int {
	n := uint64(e.o.Users)
	if n <= 1 {
		return 0
	}
	return int(mulmod(e.ainv, (uint64(pos)+n-e.c)%n, n))
}

// manager returns the index of user i's manager, or -1 for the CEO.
func (e *enterprise) manager(i int) int {
	pos := e.position(i)
	if pos == 0 {
		return -1
	}
	return e.userAt((pos - 1) / reportsPerManager)
}

func (e *enterprise) person(i int) person {
	if i%97 == 13 {
		return special[(i/97)%len(special)]
	}
	h := mix(e.seed, uint64(i)<<8|3)
	given := givenNames[h%uint64(len(givenNames))]
	sn := surnames[(h>>16)%uint64(len(surnames))]
	return person{given, given, sn, sn}
}

// uid is "given.sn" and the 1-based index: unique, since the name part has no digits.
func (e *enterprise) uid(i int, p person) string {
	b := make([]byte, 0, 32)
	b = append(b, strings.ToLower(p.givenASCII)...)
	b = append(b, '.')
	b = append(b, strings.ToLower(p.snASCII)...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	return string(b)
}

func (e *enterprise) userDN(i int) string {
	return "uid=" + ldap.EscapeDN(e.uid(i, e.person(i))) + e.people
}

// disabled spreads exactly Disabled users evenly over the file.
func (e *enterprise) disabled(i int) bool {
	n, d := uint64(e.o.Users), uint64(e.o.Disabled)
	return d > 0 && (uint64(i)*d)/n != (uint64(i+1)*d)/n
}

func (e *enterprise) write(bw *bufio.Writer) {
	for i := range e.o.Users {
		e.writeUser(bw, i)
	}
	if e.o.AllStaff {
		line(bw, "dn", AllStaffDN(e.o))
		line(bw, "objectClass", "top")
		line(bw, "objectClass", "groupOfNames")
		line(bw, "cn", AllStaffName)
		line(bw, "description", "every user")
		for i := range e.o.Users {
			line(bw, "member", e.userDN(i))
		}
		bw.WriteByte('\n')
	}
	size := e.o.GroupMembers
	if size == 0 {
		size = DefaultGroupMembers
	}
	size = min(size, e.o.Users)
	rng := rand.New(rand.NewPCG(e.seed, 0x6e7e4941))
	for gi := range e.o.Groups {
		name := e.groupName(gi)
		line(bw, "dn", e.groupDN(name))
		line(bw, "objectClass", "top")
		line(bw, "objectClass", "groupOfNames")
		line(bw, "cn", name)
		if gi == 0 && e.o.NestedGroup && e.o.Groups > 1 {
			line(bw, "description", "has groups among its members")
			line(bw, "member", e.groupDN(e.groupName(e.o.Groups-1)))
		}
		for _, m := range sampleWith(rng, e.o.Users, size) {
			line(bw, "member", e.userDN(m))
		}
		bw.WriteByte('\n')
	}
}

func (e *enterprise) groupName(i int) string {
	return groupWords[i%len(groupWords)] + "-" + strconv.Itoa(i)
}

func (e *enterprise) groupDN(name string) string {
	return "cn=" + ldap.EscapeDN(name) + ",ou=groups," + e.o.Suffix
}

func (e *enterprise) writeUser(w *bufio.Writer, i int) {
	p := e.person(i)
	uid := e.uid(i, p)
	h := mix(e.seed, uint64(i)<<8|5)
	cn := p.given + " " + p.sn
	if i%50 == 7 {
		cn = p.sn + ", " + p.given
	}
	line(w, "dn", "uid="+ldap.EscapeDN(uid)+e.people)
	line(w, "objectClass", "top")
	line(w, "objectClass", "person")
	line(w, "objectClass", "organizationalPerson")
	line(w, "objectClass", "inetOrgPerson")
	line(w, "uid", uid)
	line(w, "cn", cn)
	line(w, "sn", p.sn)
	line(w, "givenName", p.given)
	line(w, "displayName", p.given+" "+p.sn)
	line(w, "mail", uid+"@"+e.domain)
	var num [32]byte
	line(w, "telephoneNumber", string(phone(num[:0], 100+i/10000%900, i%10000)))
	if h%3 == 0 {
		line(w, "mobile", string(phone(num[:0], 200+int((h>>8)%700), int((h>>20)%10000))))
	}
	line(w, "title", titles[(h>>32)%uint64(len(titles))])
	line(w, "departmentNumber", departments[(h>>40)%uint64(len(departments))])
	line(w, "o", "Example Corp")
	line(w, "employeeNumber", string(pad(append(num[:0], 'E'), i+1, 6)))
	if m := e.manager(i); m >= 0 {
		line(w, "manager", e.userDN(m))
	}
	if e.disabled(i) {
		line(w, "pwdAccountLockedTime", LockedTime)
	}
	w.WriteByte('\n')
}

// phone formats "+1 555 AAA BBBB" with AAA and BBBB zero-padded.
func phone(b []byte, a, n int) []byte {
	b = append(b, "+1 555 "...)
	b = pad(b, a, 3)
	b = append(b, ' ')
	return pad(b, n, 4)
}

func pad(b []byte, v, width int) []byte {
	s := strconv.AppendInt(nil, int64(v), 10)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// sampleWith returns k distinct indices in [0,n), sorted (Floyd's algorithm).
func sampleWith(rng *rand.Rand, n, k int) []int {
	chosen := make(map[int]bool, k)
	out := make([]int, 0, k)
	for j := n - k; j < n; j++ {
		t := rng.IntN(j + 1)
		if chosen[t] {
			t = j
		}
		chosen[t] = true
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
