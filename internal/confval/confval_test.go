package confval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	var b strings.Builder
	fmt.Fprintf(&b, "%v %s %+v %#v %q", s, s, s, s, s)
	j, _ := json.Marshal(struct{ P Secret }{s})
	b.Write(j)
	if err := toml.NewEncoder(&b).Encode(struct{ P Secret }{s}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "hunter2") {
		t.Fatalf("secret leaked: %s", b.String())
	}
	if s.Reveal() != "hunter2" {
		t.Fatal("Reveal lost the value")
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	os.WriteFile(f, []byte("fromfile\n"), 0o600)
	t.Setenv("CONFVAL_TEST_PW", "fromenv")
	for _, tc := range []struct {
		inline, path, env, want string
	}{
		{"inline", f, "CONFVAL_TEST_PW", "fromfile"},
		{"inline", "", "CONFVAL_TEST_PW", "fromenv"},
		{"inline", "", "CONFVAL_TEST_UNSET", "inline"},
	} {
		got, err := LoadSecret(NewSecret(tc.inline), tc.path, tc.env)
		if err != nil || got.Reveal() != tc.want {
			t.Errorf("LoadSecret(%q,%q,%q) = %q, %v; want %q", tc.inline, tc.path, tc.env, got.Reveal(), err, tc.want)
		}
	}
	if _, err := LoadSecret(Secret{}, filepath.Join(dir, "missing"), ""); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestDuration(t *testing.T) {
	var v struct{ D Duration }
	if _, err := toml.Decode(`D = "90s"`, &v); err != nil || v.D.D().Seconds() != 90 {
		t.Fatalf("got %v, %v", v.D.D(), err)
	}
	if _, err := toml.Decode(`D = "ninety"`, &v); err == nil || !strings.Contains(err.Error(), "invalid duration") {
		t.Fatalf("bad duration: %v", err)
	}
}
