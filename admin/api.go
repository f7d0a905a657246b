package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// healthz answers 200 while the process can serve HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready       bool      `json:"ready"`
	Reason      string    `json:"reason,omitempty"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	Age         string    `json:"age,omitempty"`
	MaxAge      string    `json:"maxAge"`
}

// readyz answers 200 once the cache holds a successful pass that is at most ready_max_age old,
// else 503 with the reason. The state comes from the cache's watermark (ldapsync.LastSync), so
// a restarted serve is ready right away when its cache is fresh.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ls, err := ldapsync.LastSync(r.Context(), s.opts.Store)
	if err != nil {
		s.log.Warn("readyz: reading the watermark", "err", err)
	}
	rd := s.readiness(ls, err, s.now())
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

// Info identifies a running serve to the CLI.
type Info struct {
	CacheDir string `json:"cacheDir"`
	PID      int    `json:"pid"`
	Started  string `json:"started"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Info{CacheDir: s.opts.CacheDir, PID: os.Getpid(), Started: s.start.UTC().Format(time.RFC3339)})
}

// SyncResult is the answer of POST /admin/v1/sync: the pass's Summary and, when it failed,
// its error (status 502: the directory or the pass failed, not the request).
type SyncResult struct {
	ldapsync.Summary
	Error string `json:"error,omitempty"`
}

// sync runs one pass through the serve's Syncer: ?full=true forces a full reconciliation. It
// waits for a running pass first. The pass runs with the request's context, so a client that
// goes away stops it, which is safe (a pass never moves the watermark past what it applied).
func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	full, err := boolParam(r, "full")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	run := s.opts.Syncer.SyncOnce
	if full {
		run = s.opts.Syncer.SyncFull
	}
	s.log.Info("pass requested through the admin API", "full", full, "remote", r.RemoteAddr)
	sum, err := run(r.Context())
	res := SyncResult{Summary: sum}
	status := http.StatusOK
	if err != nil {
		res.Error, status = err.Error(), http.StatusBadGateway
	}
	writeJSON(w, status, res)
}

func (s *Server) holds(w http.ResponseWriter, r *http.Request) {
	hs, err := s.opts.Store.Holds(r.Context())
	if err != nil {
		s.internal(w, "listing holds", err)
		return
	}
	if hs == nil {
		hs = []cache.Hold{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"holds": hs})
}

// Selection is the body of the approve, replay and skip endpoints: some ids, or all.
type Selection struct {
	IDs []string `json:"ids,omitempty"`
	All bool     `json:"all,omitempty"`
}

// ids returns nil for "all", as ApproveHolds and DropDeadLetters want it.
func readSelection(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	var sel Selection
	if err := decodeJSON(r, &sel, 1<<20, false); err != nil {
		writeError(w, http.StatusBadRequest, "want a JSON body {\"ids\":[...]} or {\"all\":true}: "+err.Error())
		return nil, false
	}
	if sel.All == (len(sel.IDs) > 0) {
		writeError(w, http.StatusBadRequest, "give either \"all\": true or a non-empty \"ids\"")
		return nil, false
	}
	if sel.All {
		return nil, true
	}
	return sel.IDs, true
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	ids, ok := readSelection(w, r)
	if !ok {
		return
	}
	res, err := s.opts.Syncer.ApproveHolds(r.Context(), ids)
	if err != nil {
		if strings.HasPrefix(err.Error(), "not held:") || errors.Is(err, cache.ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		s.internal(w, "approving holds", err)
		return
	}
	s.log.Info("held deletions approved through the admin API", "ids", len(ids), "all", ids == nil,
		"deleted", res.Deleted, "deactivated", res.Deactivated)
	writeJSON(w, http.StatusOK, res)
}

// target returns the {target} path value if push knows it, else answers.
func (s *Server) target(w http.ResponseWriter, r *http.Request) (string, bool) {
	if s.opts.Push == nil {
		writeError(w, http.StatusNotImplemented, "push is not running in this serve")
		return "", false
	}
	t := r.PathValue("target")
	for _, n := range s.opts.Push.Targets() {
		if n == t {
			return t, true
		}
	}
	writeError(w, http.StatusNotFound, "no such target: "+strconv.Quote(t))
	return "", false
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	t, ok := s.target(w, r)
	if !ok {
		return
	}
	dl, err := s.opts.Store.DeadLetters(r.Context(), t)
	if err != nil {
		s.internal(w, "listing dead letters", err)
		return
	}
	if dl == nil {
		dl = []cache.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"target": t, "deadLetters": dl})
}

// AuditHistory is the answer of GET /admin/v1/audit/{id}: what sync did to one resource (the
// cache's audit records) and every push attempt for it, each in time order.
type AuditHistory struct {
	ID   string              `json:"id"`
	Sync []cache.AuditRecord `json:"sync"`
	Push []cache.PushAudit   `json:"push"`
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	h := AuditHistory{ID: r.PathValue("id")}
	var err error
	if h.Sync, err = s.opts.Store.Audit(r.Context(), h.ID); err != nil {
		s.internal(w, "reading audit records", err)
		return
	}
	if h.Push, err = s.opts.Store.PushAudit(r.Context(), h.ID); err != nil {
		s.internal(w, "reading push audit records", err)
		return
	}
	if h.Sync == nil {
		h.Sync = []cache.AuditRecord{}
	}
	if h.Push == nil {
		h.Push = []cache.PushAudit{}
	}
	writeJSON(w, http.StatusOK, h)
}

// PlanRequest is the body of POST /admin/v1/plan.
type PlanRequest struct {
	Full   bool   `json:"full"`
	Target string `json:"target,omitempty"`
}

// plan runs a dry-run pass (it reads the directory, writes nothing) and answers its report.
// A failed pass answers 502 with the report so far and "error".
func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reports == nil {
		writeError(w, http.StatusNotImplemented, "plan is not available in this serve")
		return
	}
	var req PlanRequest
	if err := decodeJSON(r, &req, 1<<16, true); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"full\": bool, \"target\": name}: "+err.Error())
		return
	}
	s.log.Info("plan requested through the admin API", "full", req.Full, "target", req.Target, "remote", r.RemoteAddr)
	rep, err := s.opts.Reports.Plan(r.Context(), req.Full, req.Target)
	s.report(w, rep, err)
}

// explain answers how the rules and push scopes see one user (id or userName).
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reports == nil {
		writeError(w, http.StatusNotImplemented, "explain is not available in this serve")
		return
	}
	rep, err := s.opts.Reports.Explain(r.Context(), r.PathValue("user"))
	s.report(w, rep, err)
}

// report answers a Reports result: the report, a 400 for the caller's mistakes, a 502 with
// the error (and the report, if any) for a failure.
func (s *Server) report(w http.ResponseWriter, rep any, err error) {
	var bad BadRequestError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, rep)
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, bad.Msg)
	default:
		body := map[string]any{}
		if raw, jerr := json.Marshal(rep); jerr == nil && rep != nil {
			_ = json.Unmarshal(raw, &body)
		}
		body["error"] = err.Error()
		writeJSON(w, http.StatusBadGateway, body)
	}
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	t, ok := s.target(w, r)
	if !ok {
		return
	}
	ids, ok := readSelection(w, r)
	if !ok {
		return
	}
	n, err := s.opts.Push.Replay(r.Context(), t, ids)
	if err != nil {
		s.internal(w, "replaying dead letters", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

// skip drops dead letters: the admin decided the change need not reach the target.
func (s *Server) skip(w http.ResponseWriter, r *http.Request) {
	t, ok := s.target(w, r)
	if !ok {
		return
	}
	ids, ok := readSelection(w, r)
	if !ok {
		return
	}
	n, err := s.opts.Store.DropDeadLetters(r.Context(), t, ids)
	if err != nil {
		s.internal(w, "skipping dead letters", err)
		return
	}
	s.log.Info("dead letters skipped through the admin API", "target", t, "skipped", n)
	writeJSON(w, http.StatusOK, map[string]int{"skipped": n})
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New(name + ": want true or false")
	}
	return b, nil
}

// internal logs err once and answers 500 without its text.
func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error("admin: "+what, "err", err)
	writeError(w, http.StatusInternalServerError, what+" failed; see the serve log")
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
