//go:build reliability

package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// scimCase is one malformed request of testdata/scim-requests.json and the answer it must get.
// In path and body, ${N*TEXT} stands for TEXT N times and $byte(N) for one raw byte.
type scimCase struct {
	Name     string  `json:"name"`
	Method   string  `json:"method"`
	Path     string  `json:"path"` // under /scim/v2
	Body     string  `json:"body"`
	Auth     *string `json:"auth"` // the Authorization header; absent: the valid token
	Status   int     `json:"status"`
	ScimType string  `json:"scimType"` // "" = any
}

var (
	repeatRE = regexp.MustCompile(`\$\{(\d+)\*([^}]*)\}`)
	byteRE   = regexp.MustCompile(`\$byte\((\d+)\)`)
)

// expand replaces ${N*TEXT} and $byte(N).
func expand(s string) string {
	s = repeatRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := repeatRE.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[1])
		return strings.Repeat(sub[2], n)
	})
	return byteRE.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.Atoi(byteRE.FindStringSubmatch(m)[1])
		return string([]byte{byte(n)})
	})
}

// testMalformed is R5: every request of the corpus gets the SCIM answer it should (an error
// with the right status and scimType, or a well-formed list), every bad config file of
// testdata/config is refused with exit status 2 naming the key (or line) its first line
// names, serve never panics, and the fuzz targets run for a fixed time without a failure.
func testMalformed(t *testing.T, bin string, sz sizes) {
	start := time.Now()
	reqFails, nReq := scimCorpus(t, bin)
	record(t, row{kind: "R5 malformed SCIM requests (corpus)", trials: nReq, failures: reqFails,
		figure: "answer = expected SCIM error or list; no panic", took: time.Since(start)})

	start = time.Now()
	cfgFails, nCfg := configCorpus(t, bin)
	record(t, row{kind: "R5 bad config files (corpus)", trials: nCfg, failures: cfgFails,
		figure: "exit 2, message names the key or line", took: time.Since(start)})

	for _, fz := range []struct{ name, pkg string }{{"FuzzParse", "./scim/filter/"}, {"FuzzDecode", "./internal/ldapwire/"}} {
		start = time.Now()
		execs, err := fuzz(t, fz.name, fz.pkg, sz.fuzzTime)
		fails := 0
		if err != nil {
			t.Errorf("%s: %v", fz.name, err)
			fails = 1
		}
		record(t, row{kind: "R5 fuzz " + fz.name + " " + fz.pkg, trials: 1, failures: fails,
			figure: fmt.Sprintf("%s, %s execs, no failure", sz.fuzzTime, execs), took: time.Since(start)})
	}
}

func scimCorpus(t *testing.T, bin string) (fails, n int) {
	b, err := os.ReadFile("testdata/scim-requests.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []scimCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("testdata/scim-requests.json: %v", err)
	}
	o := sampledata.Options{Enterprise: true, Users: 300, Groups: 10, Seed: 3}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, o)}})
	s := setup{dir: t.TempDir(), sl: sl, admin: testenv.FreeAddr(t), scim: testenv.FreeAddr(t)}
	srv := startServe(t, bin, s.write(t, "serve.toml"), s)
	if err := srv.pass(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if err := scimRequest(s.scim, c); err != nil {
			t.Errorf("R5 %q: %v", c.Name, err)
			fails++
		}
	}
	select {
	case <-srv.exited:
		t.Errorf("serve exited during the corpus\n%s", srv.stderr)
		fails++
	default:
	}
	if strings.Contains(srv.stderr.String(), "panic") {
		t.Errorf("serve logged a panic:\n%s", srv.stderr)
		fails++
	}
	srv.stop(t)
	return min(fails, len(cases)), len(cases)
}

// scimRequest sends c and checks the answer: the status, a SCIM content type, and a body that
// is a SCIM Error with that status (and scimType), or a ListResponse for a 200.
func scimRequest(addr string, c scimCase) error {
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(expand(c.Body))
	}
	req, err := http.NewRequest(c.Method, "http://"+addr+"/scim/v2"+expand(c.Path), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+scimToken)
	if c.Auth != nil {
		req.Header.Set("Authorization", *c.Auth)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var ans struct {
		Schemas  []string `json:"schemas"`
		Status   string   `json:"status"`
		ScimType string   `json:"scimType"`
		Detail   string   `json:"detail"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("status %d, body is not JSON: %v: %.200q", resp.StatusCode, err, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "application/scim+json") {
		return fmt.Errorf("status %d, Content-Type %q", resp.StatusCode, ct)
	}
	if resp.StatusCode != c.Status {
		return fmt.Errorf("status %d (scimType %q, %q), want %d", resp.StatusCode, ans.ScimType, ans.Detail, c.Status)
	}
	want := "urn:ietf:params:scim:api:messages:2.0:Error"
	if c.Status == http.StatusOK {
		want = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	} else if ans.Status != strconv.Itoa(c.Status) || (c.ScimType != "" && ans.ScimType != c.ScimType) {
		return fmt.Errorf("error body status %q scimType %q (%q), want %d %q", ans.Status, ans.ScimType, ans.Detail, c.Status, c.ScimType)
	}
	if !slices.Contains(ans.Schemas, want) {
		return fmt.Errorf("status %d, schemas %v, want %s", resp.StatusCode, ans.Schemas, want)
	}
	return nil
}

// configCorpus runs check-config on every testdata/config/*.bad.toml: exit status 2 and the
// text of its "# want: ..." first line in the message.
func configCorpus(t *testing.T, bin string) (fails, n int) {
	files, _ := filepath.Glob("testdata/config/*.bad.toml")
	if len(files) == 0 {
		t.Fatal("no testdata/config/*.bad.toml")
	}
	for _, f := range files {
		want := firstLineWant(t, f)
		var stderr strings.Builder
		cmd := exec.Command(bin, "check-config", "--config", f)
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		switch {
		case code != 2:
			t.Errorf("R5 %s: check-config exit status %d (%v), want 2\n%.500s", f, code, err, stderr.String())
			fails++
		case !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "panic"):
			t.Errorf("R5 %s: the message does not name %q:\n%.500s", f, want, stderr.String())
			fails++
		}
	}
	return fails, len(files)
}

func firstLineWant(t *testing.T, file string) string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	want, ok := strings.CutPrefix(strings.TrimSpace(line), "# want: ")
	if !ok {
		t.Fatalf("%s: the first line must be \"# want: TEXT\"", file)
	}
	return want
}

var execsRE = regexp.MustCompile(`execs: (\d+)`)

// fuzz runs one fuzz target for d with one worker (the machine is shared) and returns the
// last execs count it printed.
func fuzz(t *testing.T, name, pkg string, d time.Duration) (string, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+name+"$", "-fuzztime", d.String(), "-parallel", "1", pkg)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	execs := "?"
	if m := execsRE.FindAllStringSubmatch(string(out), -1); len(m) > 0 {
		execs = m[len(m)-1][1]
	}
	if err != nil {
		return execs, fmt.Errorf("%v\n%s", err, out)
	}
	return execs, nil
}
