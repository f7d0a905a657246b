package ldapwire

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// These tests drive protocol corners slapd never produces (a server that
// drops the paging control, an unsolicited notice of disconnection, garbage
// on the wire) with a scripted server on a real TCP socket. Everything
// slapd can do is tested against slapd in ldapwire_test.go.

// scriptedServer accepts one connection, answers the bind, and hands every
// later request's message ID to search, which writes raw responses.
func scriptedServer(t *testing.T, search func(id int32, conn net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			p, err := ber.ReadPacket(conn)
			if err != nil || len(p.Children) < 2 {
				return
			}
			id := int32(p.Children[0].Value.(int64))
			switch p.Children[1].Tag {
			case ldap.ApplicationBindRequest:
				conn.Write(encodeResultMessage(id, ldap.ApplicationBindResponse, 0))
			case ldap.ApplicationSearchRequest:
				search(id, conn)
			}
		}
	}()
	return "ldap://" + l.Addr().String()
}

func encodeResultMessage(id int32, app ber.Tag, code int) []byte {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, app, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "scripted", ""))
	return envelope(id, op, nil).Bytes()
}

func entries(conn net.Conn, id int32, n int) {
	for range n {
		conn.Write(encodeEntryMessage(id, "cn=x", map[string][]string{"cn": {"x"}}))
	}
}

func scriptedSearch(t *testing.T, pageSize int, search func(id int32, conn net.Conn)) (SearchResult, error) {
	t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, DialOptions{URL: scriptedServer(t, search), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(ctx, "cn=x", "pw"); err != nil {
		t.Fatal(err)
	}
	r := SearchRequest{BaseDN: "dc=x", Scope: ldap.ScopeWholeSubtree, Filter: "(cn=*)", PageSize: pageSize}
	return c.Search(ctx, r, func(*Entry) error { return nil })
}

func TestFullPageWithoutPagingControl(t *testing.T) {
	res, err := scriptedSearch(t, 3, func(id int32, conn net.Conn) {
		entries(conn, id, 3)
		conn.Write(encodeDoneMessage(id, 0, "", nil))
	})
	if !errors.Is(err, ErrPagingIgnored) || res.Entries != 3 {
		t.Fatalf("got %v, %+v; want ErrPagingIgnored", err, res)
	}
	// A short page without the control is a complete (unpaged) answer.
	res, err = scriptedSearch(t, 3, func(id int32, conn net.Conn) {
		entries(conn, id, 2)
		conn.Write(encodeDoneMessage(id, 0, "", nil))
	})
	if err != nil || res.Entries != 2 {
		t.Fatalf("got %v, %+v", err, res)
	}
}

func TestPagingFollowsCookies(t *testing.T) {
	page := 0
	res, err := scriptedSearch(t, 2, func(id int32, conn net.Conn) {
		page++
		entries(conn, id, 2)
		cookie := []byte("more")
		if page == 3 {
			cookie = []byte{}
		}
		conn.Write(encodeDoneMessage(id, 0, "", cookie))
	})
	if err != nil || res.Entries != 6 || res.Pages != 3 {
		t.Fatalf("got %v, %+v", err, res)
	}
}

func TestProtocolFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		code   uint16
		script func(id int32, conn net.Conn)
	}{
		"busy": {ldap.LDAPResultBusy, func(id int32, conn net.Conn) {
			conn.Write(encodeDoneMessage(id, int(ldap.LDAPResultBusy), "try later", []byte{}))
		}},
		"notice of disconnection": {ldap.LDAPResultUnavailable, func(id int32, conn net.Conn) {
			entries(conn, id, 1)
			conn.Write(encodeResultMessage(0, ldap.ApplicationExtendedResponse, int(ldap.LDAPResultUnavailable)))
		}},
		"closed before SearchResultDone": {ldap.ErrorNetwork, func(id int32, conn net.Conn) {
			entries(conn, id, 2)
			conn.Close()
		}},
		"closed mid-message": {ldap.ErrorNetwork, func(id int32, conn net.Conn) {
			conn.Write(encodeEntryMessage(id, "cn=x", map[string][]string{"cn": {"x"}})[:10])
			conn.Close()
		}},
		"wrong message id": {ldap.ErrorMalformedPacket, func(id int32, conn net.Conn) {
			entries(conn, id+5, 1)
		}},
		"indefinite length": {ldap.ErrorMalformedPacket, func(id int32, conn net.Conn) {
			conn.Write([]byte{0x30, 0x80, 0x02, 0x01, byte(id), 0x65, 0x80, 0, 0, 0, 0})
		}},
		"huge length": {ldap.ErrorMalformedPacket, func(id int32, conn net.Conn) {
			conn.Write([]byte{0x30, 0x84, 0x40, 0, 0, 0})
		}},
		"truncated attribute": {ldap.ErrorMalformedPacket, func(id int32, conn net.Conn) {
			m := encodeEntryMessage(id, "cn=x", map[string][]string{"cn": {"x"}})
			m[len(m)-2] = 0x31 // claim the value is 0x31 bytes long
			conn.Write(m)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := scriptedSearch(t, 10, tc.script)
			if !ldap.IsErrorWithCode(err, tc.code) {
				t.Fatalf("got %v (%+v), want code %d", err, res, tc.code)
			}
		})
	}
}
