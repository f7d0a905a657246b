package ldapwire

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// This file is a private stand-in for internal/testenv.StartSlapd, written
// while that package was being built; it follows docs/directories.md.

const (
	testSuffix = "dc=example,dc=com"
	testRootDN = "cn=admin,dc=example,dc=com"
	testRootPW = "secret"
	slapdBin   = "/usr/sbin/slapd"
)

type slapd struct {
	URL      string         // ldap://127.0.0.1:PORT
	LdapiURL string         // ldapi://%2F...
	LdapsURL string         // ldaps://127.0.0.1:PORT
	CAs      *x509.CertPool // trusts the server's self-signed certificate
	Conf     string
	dir      string
	cmd      *exec.Cmd
}

// startSlapd runs a private slapd preloaded (offline, slapadd -q) with the
// LDIF that load writes, stopped when the test ends. It fails the test if
// slapd is not installed.
func startSlapd(tb testing.TB, load func(w io.Writer)) *slapd {
	tb.Helper()
	s, err := newSlapd(load)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// newSlapd is startSlapd for callers without a testing.TB that lives long
// enough (the benchmarks share one server across benchmark functions).
func newSlapd(load func(w io.Writer)) (s *slapd, err error) {
	if _, err := os.Stat(slapdBin); err != nil {
		return nil, fmt.Errorf("slapd not found: run `make test` or scripts/install-deps.sh ldap (%v)", err)
	}
	// Short path: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "lw")
	if err != nil {
		return nil, err
	}
	s = &slapd{dir: dir, Conf: filepath.Join(dir, "slapd.conf")}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, err
	}
	if s.CAs, err = writeSelfSignedCert(dir); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.Conf, []byte(slapdConf(dir)), 0o600); err != nil {
		return nil, err
	}
	if load != nil {
		if err := s.slapadd(load); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", port)
	s.LdapsURL = fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort)
	s.LdapiURL = "ldapi://" + url.PathEscape(filepath.Join(dir, "ldapi"))
	s.cmd = exec.Command(slapdBin, "-f", s.Conf, "-h", s.URL+"/ "+s.LdapsURL+"/ "+s.LdapiURL+"/", "-d", "0")
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	return s, waitListening(fmt.Sprintf("127.0.0.1:%d", port))
}

// Kill stops slapd at once; the database is throwaway (dbnosync).
func (s *slapd) Kill() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Close kills slapd and removes its directory.
func (s *slapd) Close() {
	s.Kill()
	os.RemoveAll(s.dir)
}

func slapdConf(dir string) string {
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
TLSCertificateFile %[1]s/cert.pem
TLSCertificateKeyFile %[1]s/key.pem
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit unlimited
timelimit unlimited
database mdb
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
maxsize 1073741824
dbnosync
index objectClass eq
index uid eq
`, dir, testSuffix, testRootDN, testRootPW)
}

func (s *slapd) slapadd(load func(w io.Writer)) error {
	ldif := filepath.Join(s.dir, "load.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	load(w)
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", s.Conf, "-l", ldif).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd: %v\n%s", err, out)
	}
	return nil
}

// writeSelfSignedCert writes cert.pem and key.pem for 127.0.0.1 into dir.
func writeSelfSignedCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ldapwire test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("slapd did not listen on %s within 10s", addr)
}

// genDirectory writes the suffix, ou=people with n inetOrgPerson users and
// ou=groups with groups groupOfNames, each holding up to 100 members. Every
// 7th user has two mail values and every 10th a binary jpegPhoto.
func genDirectory(w io.Writer, n, groups int) {
	fmt.Fprintf(w, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n", testSuffix)
	fmt.Fprintf(w, "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n", testSuffix)
	fmt.Fprintf(w, "dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n", testSuffix)
	photo := make([]byte, 96)
	for i := range n {
		fmt.Fprintf(w, "dn: uid=user%06d,ou=people,%s\n", i, testSuffix)
		fmt.Fprintf(w, "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n")
		fmt.Fprintf(w, "uid: user%06d\ncn: Given%d Family%d\nsn: Family%d\ngivenName: Given%d\n", i, i, i, i, i)
		fmt.Fprintf(w, "displayName:: %s\n", base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("Jürgen Ünïcödé %d", i))))
		fmt.Fprintf(w, "mail: user%06d@example.com\n", i)
		if i%7 == 0 {
			fmt.Fprintf(w, "mail: alias%06d@example.org\n", i)
		}
		fmt.Fprintf(w, "employeeNumber: %d\ntelephoneNumber: +1 555 %07d\ntitle: Engineer level %d\n", i, i, i%5)
		fmt.Fprintf(w, "departmentNumber: %d\nou: Department %d\n", i%50, i%50)
		fmt.Fprintf(w, "description: Generated user number %d for the ldapwire tests and benchmarks\n", i)
		if i%10 == 0 {
			_, _ = rand.Read(photo)
			fmt.Fprintf(w, "jpegPhoto:: %s\n", base64.StdEncoding.EncodeToString(photo))
		}
		fmt.Fprintln(w)
	}
	for g := range groups {
		fmt.Fprintf(w, "dn: cn=group%04d,ou=groups,%s\nobjectClass: groupOfNames\ncn: group%04d\n", g, testSuffix, g)
		for m := 0; m < 100 && m < n; m++ {
			fmt.Fprintf(w, "member: uid=user%06d,ou=people,%s\n", (g*100+m)%n, testSuffix)
		}
		fmt.Fprintln(w)
	}
}
