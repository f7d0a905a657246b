package httpserve

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A request in flight when the context ends still completes; Run then returns nil.
func TestRunLetsInFlightRequestsFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "done")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, hs, ln, 5*time.Second) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	cancel()
	if b := <-got; b != "done" {
		t.Fatalf("in-flight request: %q", b)
	}
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// New's server has the shared limits: headers over the limit get 431, a handler's panic
// reaches the slog logger, and Options raise the header limit and set the write timeout.
func TestNewSharedSettings(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	hs := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	}), log, Options{})
	if hs.ReadHeaderTimeout != ReadHeaderTimeout || hs.ReadTimeout != ReadTimeout || hs.IdleTimeout != IdleTimeout ||
		hs.WriteTimeout != 0 || hs.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Fatalf("settings: %+v", hs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, hs, ln, 5*time.Second) }()
	defer func() { cancel(); <-ran }()
	url := "http://" + ln.Addr().String()

	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*DefaultMaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers over the limit: %d, want 431", resp.StatusCode)
	}
	if resp, err := http.Get(url + "/panic"); err == nil {
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		s := logged.String()
		mu.Unlock()
		if strings.Contains(s, "level=DEBUG") && strings.Contains(s, "boom") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handler's panic did not reach the logger: %q", s)
		}
		time.Sleep(10 * time.Millisecond)
	}

	big := New(http.NotFoundHandler(), log, Options{WriteTimeout: time.Minute, MaxHeaderBytes: 4 << 20})
	if big.WriteTimeout != time.Minute || big.MaxHeaderBytes != 4<<20 {
		t.Errorf("options not applied: write %v, headers %d", big.WriteTimeout, big.MaxHeaderBytes)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Every http.Server of the program is built by New: no other non-test file builds one.
func TestEveryServerIsBuiltByNew(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".cache" || d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.Dir(path) == filepath.Join(root, "internal", "httpserve") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("http.Server{")) {
			t.Errorf("%s builds an http.Server itself; use httpserve.New", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
