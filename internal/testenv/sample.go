package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldapscim/ldapscim/internal/sampledata"
)

// SampleLDIF writes sample data generated with o to a file in a temp dir and returns its path,
// for SlapdOptions.LDIF.
func SampleLDIF(t testing.TB, o sampledata.Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := sampledata.Write(&b, o); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sample.ldif")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
