package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

// syncBuffer is a bytes.Buffer the workers of a push may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// batchLines returns the "pushed batch" records logged so far and forgets them.
func (s *syncBuffer) batchLines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(s.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "pushed batch" {
			out = append(out, m)
		}
	}
	s.b.Reset()
	return out
}

// A push logs one INFO line per batch with what it sent and how far behind the target is, and
// nothing for an empty batch.
func TestPushLogsOneLinePerBatch(t *testing.T) {
	const n = 1003 // one full batch (1000 records) and a short one
	var ldif strings.Builder
	for i := range n - 2 {
		ldif.WriteString(userLDIF(fmt.Sprintf("u%04d", i), "U", fmt.Sprint(i), "Engineering", ""))
	}
	ldif.WriteString(userLDIF("bob", "Bob", "Brown", "Engineering", ""))
	ldif.WriteString(userLDIF("carol", "Carol", "Clark", "Engineering", ""))
	e := newEnv(t, ldif.String())
	cfg := e.targetConfig(e.target.URL, func(tc *push.TargetConfig) {
		tc.Groups = false
		tc.Concurrency = 8
		tc.Scope = `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering"`
	})
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{Log: log})
	ctx := context.Background()

	check := func(line map[string]any, want map[string]float64) {
		t.Helper()
		if line["level"] != "INFO" || line["target"] != "scimmy" {
			t.Errorf("batch line %v: want level INFO and target scimmy", line)
		}
		for k, v := range want {
			if got, ok := line[k].(float64); !ok || got != v {
				t.Errorf("batch line: %s = %v, want %v (line %v)", k, line[k], v, line)
			}
		}
		if age, ok := line["oldest_change_age"].(float64); !ok || age < 0 || time.Duration(age) > 10*time.Minute { // 0 when it is under half a millisecond
			t.Errorf("batch line: oldest_change_age %v, want the age of the batch's first change", line["oldest_change_age"])
		}
	}
	if got, err := tg.PushOnce(ctx); err != nil || got != 1000 {
		t.Fatalf("first batch: %d records, %v", got, err)
	}
	lines := buf.batchLines(t)
	if len(lines) != 1 {
		t.Fatalf("first batch logged %d lines, want 1", len(lines))
	}
	check(lines[0], map[string]float64{"changes": 1000, "sent": 1000, "created": 1000, "updated": 0, "deleted": 0,
		"deactivated": 0, "failed": 0, "lag": n - 1000})

	if got, err := tg.PushOnce(ctx); err != nil || got != n-1000 {
		t.Fatalf("second batch: %d records, %v", got, err)
	}
	lines = buf.batchLines(t)
	if len(lines) != 1 {
		t.Fatalf("second batch logged %d lines, want 1", len(lines))
	}
	check(lines[0], map[string]float64{"changes": n - 1000, "sent": n - 1000, "created": n - 1000, "updated": 0, "lag": 0})
	if len(users(t, e.target)) != n {
		t.Fatalf("the target has %d users, want %d", len(users(t, e.target)), n)
	}

	// Nothing to push: no line.
	if got, err := tg.PushOnce(ctx); err != nil || got != 0 {
		t.Fatalf("empty batch: %d records, %v", got, err)
	}
	if lines := buf.batchLines(t); len(lines) != 0 {
		t.Fatalf("an empty batch logged %v", lines)
	}

	// bob is renamed (an update), carol leaves the scope (a deactivation).
	e.sl.Modify(t, fmt.Sprintf(`dn: uid=bob,ou=people,%[1]s
changetype: modify
replace: title
title: Staff Engineer

dn: uid=carol,ou=people,%[1]s
changetype: modify
replace: departmentNumber
departmentNumber: Sales
`, base))
	e.pass()
	drain(t, tg)
	lines = buf.batchLines(t)
	if len(lines) != 1 {
		t.Fatalf("the update batch logged %d lines, want 1: %v", len(lines), lines)
	}
	check(lines[0], map[string]float64{"changes": 2, "sent": 2, "created": 0, "updated": 1, "deleted": 0,
		"deactivated": 1, "failed": 0, "lag": 0})
}

// A webhook's batch line counts the events it sent and those the receiver refused.
func TestWebhookLogsOneLinePerBatch(t *testing.T) {
	e := newEnv(t, userLDIF("fay", "Fay", "Fox", "Ops", ""))
	var reject atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reject.Load() {
			w.WriteHeader(http.StatusUnprocessableEntity) // permanent: a dead letter at once
		}
	}))
	defer srv.Close()
	hooks := []push.WebhookConfig{{Name: "hook", URL: srv.URL, Secret: confval.NewSecret("s3cret-hook")}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	var buf syncBuffer
	wh := push.NewWebhook(hooks[0], e.store, push.WorkerOptions{Log: slog.New(slog.NewJSONHandler(&buf, nil))})
	drain(t, wh)
	want := func(line map[string]any, sent, failed float64) {
		t.Helper()
		if line["webhook"] != "hook" || line["changes"] != 1.0 || line["sent"] != sent || line["failed"] != failed || line["lag"] != 0.0 {
			t.Errorf("batch line %v: want webhook hook, changes 1, sent %v, failed %v, lag 0", line, sent, failed)
		}
		if _, ok := line["created"]; ok {
			t.Errorf("a webhook's line counts created resources: %v", line)
		}
	}
	lines := buf.batchLines(t)
	if len(lines) != 1 {
		t.Fatalf("first batch logged %d lines, want 1", len(lines))
	}
	want(lines[0], 1, 0)
	reject.Store(true)
	e.sl.Modify(t, fmt.Sprintf("dn: uid=fay,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: One\n", base))
	e.pass()
	drain(t, wh)
	if lines = buf.batchLines(t); len(lines) != 1 {
		t.Fatalf("second batch logged %d lines, want 1", len(lines))
	}
	want(lines[0], 1, 1)
}
