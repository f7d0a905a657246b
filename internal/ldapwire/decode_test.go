package ldapwire

import (
	"bufio"
	"bytes"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// encodeEntryMessage builds a SearchResultEntry LDAPMessage as a server would.
func encodeEntryMessage(id int32, dn string, attrs map[string][]string) []byte {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	list := ber.NewSequence("")
	for name, vals := range attrs {
		pa := ber.NewSequence("")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, ""))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		for _, v := range vals {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, ""))
		}
		pa.AppendChild(set)
		list.AppendChild(pa)
	}
	op.AppendChild(list)
	return envelope(id, op, nil).Bytes()
}

// encodeDoneMessage builds a SearchResultDone, with a paging control
// carrying cookie unless cookie is nil.
func encodeDoneMessage(id int32, code int, diag string, cookie []byte) []byte {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultDone, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	var ctrls []ldap.Control
	if cookie != nil {
		ctrls = []ldap.Control{&ldap.ControlPaging{PagingSize: 0, Cookie: cookie}}
	}
	return envelope(id, op, ctrls).Bytes()
}

// decodeAll runs every decoder over a stream of messages, as Search would.
func decodeAll(data []byte, bufSize int) {
	r := msgReader{br: bufio.NewReaderSize(bytes.NewReader(data), bufSize)}
	var e Entry
	for {
		b, err := r.next()
		if err != nil {
			return
		}
		m, err := parseMessage(b)
		if err != nil {
			continue
		}
		switch m.op {
		case tagSearchEntry:
			if decodeEntry(m.body, &e) == nil {
				_ = e.Get("cn")
				_, _, _, _ = e.GetRange("member")
				_ = e.Clone()
			}
		case tagSearchReference:
			_, _ = decodeURIs(m.body)
		default:
			if res, _, err := decodeResult(m.body); err == nil {
				_ = res.err("fuzz")
			}
		}
		_, _, _ = pagedCookie(m.controls)
	}
}

func TestDecodeEntryMessage(t *testing.T) {
	msg := encodeEntryMessage(7, "cn=x,dc=example", map[string][]string{"member;range=0-1": {"a", "b"}})
	var seen []string
	r := msgReader{br: bufio.NewReaderSize(bytes.NewReader(append(msg, msg...)), 16)} // force the big-message path
	for range 2 {
		b, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseMessage(b)
		if err != nil || m.id != 7 || m.op != tagSearchEntry {
			t.Fatalf("%+v %v", m, err)
		}
		var e Entry
		if err := decodeEntry(m.body, &e); err != nil {
			t.Fatal(err)
		}
		v, lo, hi, ok := e.GetRange("member")
		if !ok || lo != 0 || hi != 1 {
			t.Fatalf("range %v %d %d", ok, lo, hi)
		}
		seen = append(seen, string(e.DN)+"="+string(v[0])+string(v[1]))
	}
	if seen[0] != "cn=x,dc=example=ab" || seen[1] != seen[0] {
		t.Fatalf("seen %q", seen)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, data := range map[string][]byte{
		"indefinite length":  {0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00},
		"length over 512MiB": {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff},
		"5 length octets":    {0x30, 0x85, 0, 0, 0, 0, 1},
		"not a sequence":     {0x04, 0x01, 0x00},
		"truncated":          {0x30, 0x10, 0x02, 0x01},
	} {
		r := msgReader{br: bufio.NewReader(bytes.NewReader(data))}
		if _, err := r.next(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, b := range [][]byte{{0x1f, 0x01, 0x00}, {0x04, 0x05, 'a'}, {0x04}} {
		if _, _, _, err := next(b); err == nil {
			t.Errorf("next(%x) accepted", b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeEntryMessage(1, "uid=a,dc=x", map[string][]string{"cn": {"A"}, "mail": {"a@x", "b@x"}}))
	f.Add(encodeDoneMessage(2, 0, "", []byte("cookie")))
	f.Add(encodeDoneMessage(3, 4, "size limit", nil))
	f.Add([]byte{0x30, 0x84, 0x00, 0x00, 0x00, 0x03, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeAll(data, 16)
		decodeAll(data, 4096)
	})
}

// Lengths are decoded unsigned: the largest four-octet length must be refused as over the
// limit on every platform, not wrap to a negative int on a 32-bit one (GOARCH=386 go test).
func TestParseLengthRefusesHugeLengths(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		n    int
		fail bool
	}{
		{[]byte{0x05}, 5, false},
		{[]byte{0x82, 0x01, 0x00}, 256, false},
		{[]byte{0x84, 0x04, 0x00, 0x00, 0x00}, 64 << 20, false},
		{[]byte{0x84, 0x20, 0x00, 0x00, 0x00}, 512 << 20, false},
		{[]byte{0x84, 0x20, 0x00, 0x00, 0x01}, 0, true},
		{[]byte{0x84, 0xff, 0xff, 0xff, 0xff}, 0, true},
		{[]byte{0x84, 0x80, 0x00, 0x00, 0x00}, 0, true},
		{[]byte{0x85, 0x01, 0x00, 0x00, 0x00, 0x00}, 0, true},
		{[]byte{0x80}, 0, true},
	} {
		n, _, err := parseLength(tc.in)
		if (err != nil) != tc.fail || (!tc.fail && n != tc.n) {
			t.Errorf("parseLength(% x) = %d, %v; want %d, fail %v", tc.in, n, err, tc.n, tc.fail)
		}
	}
}
