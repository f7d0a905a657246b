package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
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
	// HA is the replica's role in the [ha] election: a follower is ready too, it serves reads.
	HA HAStatus `json:"ha"`
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
	CacheDir string   `json:"cacheDir"`
	PID      int      `json:"pid"`
	Started  string   `json:"started"`
	HA       HAStatus `json:"ha"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Info{CacheDir: s.opts.CacheDir, PID: os.Getpid(), Started: s.start.UTC().Format(time.RFC3339),
		HA: s.haStatus()})
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
	s.log.Info("pass requested through the admin API", "full", full, "remote", r.RemoteAddr)
	sum, err := s.opts.Ops.Sync(r.Context(), full)
	if err != nil && ops.CodeOf(err) != ops.Failed {
		s.opError(w, "running a pass", err)
		return
	}
	res := SyncResult{Summary: sum}
	status := http.StatusOK
	if err != nil {
		res.Error, status = err.Error(), http.StatusBadGateway
	}
	writeJSON(w, status, res)
}

func (s *Server) holds(w http.ResponseWriter, r *http.Request) {
	hs, err := s.opts.Ops.Holds(r.Context())
	if err != nil {
		s.opError(w, "listing holds", err)
		return
	}
	writeJSON(w, http.StatusOK, HoldList{Holds: hs})
}

// HoldList is the answer of GET /admin/v1/holds.
type HoldList struct {
	Holds []cache.Hold `json:"holds"`
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
	res, err := s.opts.Ops.ApproveHolds(r.Context(), ids)
	if err != nil {
		s.opError(w, "approving holds", err)
		return
	}
	s.log.Info("held deletions approved through the admin API", "ids", len(ids), "all", ids == nil,
		"deleted", res.Deleted, "deactivated", res.Deactivated)
	writeJSON(w, http.StatusOK, res)
}

// DeadLetterList is the answer of GET /admin/v1/targets/{target}/deadletters.
type DeadLetterList struct {
	Target      string             `json:"target"`
	DeadLetters []cache.DeadLetter `json:"deadLetters"`
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	t := r.PathValue("target")
	dl, err := s.opts.Ops.DeadLetters(r.Context(), t)
	if err != nil {
		s.opError(w, "listing dead letters", err)
		return
	}
	writeJSON(w, http.StatusOK, DeadLetterList{Target: t, DeadLetters: dl})
}

// targets answers every target's and webhook's progress and health (ops.TargetsStatus).
func (s *Server) targets(w http.ResponseWriter, r *http.Request) {
	ts, err := s.opts.Ops.TargetsStatus(r.Context())
	if err != nil {
		s.opError(w, "reading the targets' status", err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

// audit answers what sync and push did to one resource (ops.AuditHistory).
func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	h, err := s.opts.Ops.Audit(r.Context(), r.PathValue("id"))
	if err != nil {
		s.opError(w, "reading audit records", err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// plan runs a dry-run pass (it reads the directory, writes nothing) and answers its report.
// A failed pass answers 502 with the report so far and "error".
func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	var req ops.PlanRequest
	if err := decodeJSON(r, &req, 1<<16, true); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"full\": bool, \"target\": name}: "+err.Error())
		return
	}
	s.log.Info("plan requested through the admin API", "full", req.Full, "target", req.Target, "remote", r.RemoteAddr)
	p, err := s.opts.Ops.Plan(r.Context(), req)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, p)
	case ops.CodeOf(err) == ops.Failed && p != nil:
		writeJSON(w, http.StatusBadGateway, PlanResult{Plan: p, Error: err.Error()})
	case ops.CodeOf(err) == ops.Failed:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		s.opError(w, "planning", err)
	}
}

// PlanResult is the answer of POST /admin/v1/plan when the pass failed (502): the plan of
// what was read, and the error.
type PlanResult struct {
	*ops.Plan
	Error string `json:"error"`
}

// explain answers how the rules and push scopes see one user (id or userName).
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	ex, err := s.opts.Ops.Explain(r.Context(), r.PathValue("user"))
	if err != nil {
		s.opError(w, "explaining", err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	ids, ok := readSelection(w, r)
	if !ok {
		return
	}
	n, err := s.opts.Ops.ReplayDeadLetters(r.Context(), r.PathValue("target"), ids)
	if err != nil {
		s.opError(w, "replaying dead letters", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

// skip drops dead letters: the admin decided the change need not reach the target.
func (s *Server) skip(w http.ResponseWriter, r *http.Request) {
	ids, ok := readSelection(w, r)
	if !ok {
		return
	}
	t := r.PathValue("target")
	n, err := s.opts.Ops.SkipDeadLetters(r.Context(), t, ids)
	if err != nil {
		s.opError(w, "skipping dead letters", err)
		return
	}
	s.log.Info("dead letters skipped through the admin API", "target", t, "skipped", n)
	writeJSON(w, http.StatusOK, map[string]int{"skipped": n})
}

// reconcile compares a push target with the cache by reading the target (?apply=true also
// corrects the drift) and answers the push.ReconcileReport. A target that cannot be read
// answers 502 with the error (nothing was corrected); a cache busy with a first sync, 503.
func (s *Server) reconcile(w http.ResponseWriter, r *http.Request) {
	apply, err := boolParam(r, "apply")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	t := r.PathValue("target")
	s.log.Info("reconciliation requested through the admin API", "target", t, "apply", apply, "remote", r.RemoteAddr)
	rep, err := s.opts.Ops.Reconcile(r.Context(), ops.ReconcileRequest{Target: t, Apply: apply})
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, rep)
	case ops.CodeOf(err) == ops.Failed && !errors.Is(err, cache.ErrBusy):
		s.log.Error("admin: reconciling", "target", t, "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		s.opError(w, "reconciling", err)
	}
}

// MaxImportBytes bounds the body of an import: an HR export of a few million rows.
const MaxImportBytes = 2 << 30

// importReadTimeout is how long a client may take to send an import.
const importReadTimeout = 30 * time.Minute

// importFile applies the text/csv body as the current content of a [[csv]] source
// (?dry_run=true: reports only). The body is spooled to a temporary file first, since a pass
// reads its file twice (every row is checked before any is applied).
func (s *Server) importFile(w http.ResponseWriter, r *http.Request) {
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tmp, err := os.CreateTemp("", "ldapscim-import-*.csv")
	if err != nil {
		s.internal(w, "spooling the import", err)
		return
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	// An export of a million rows takes longer to send than the server's ReadTimeout.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(importReadTimeout))
	if _, err := io.Copy(tmp, http.MaxBytesReader(w, r.Body, MaxImportBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is larger than %d bytes", int64(MaxImportBytes)))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the file: "+err.Error())
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		s.internal(w, "spooling the import", err)
		return
	}
	source := r.PathValue("source")
	s.log.Info("import requested through the admin API", "source", source, "dry_run", dry, "remote", r.RemoteAddr)
	sum, err := s.opts.Ops.Import(r.Context(), source, tmp, dry)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, sum)
	case ops.CodeOf(err) == ops.Failed:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		s.opError(w, "importing", err)
	}
}

// opError is the one translation of an operation's error into an answer: a refusal answers
// its status with its text, a cache busy with a first sync's bulk load 503 with Retry-After, and
// a failure is logged and answers 500 without its text.
func (s *Server) opError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, cache.ErrBusy) {
		// A first sync is streaming its bulk load (seconds); nothing failed and nothing changed.
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, what+": "+cache.ErrBusy.Error())
		return
	}
	switch ops.CodeOf(err) {
	case ops.Invalid:
		writeError(w, http.StatusBadRequest, err.Error())
	case ops.NotFound:
		writeError(w, http.StatusNotFound, err.Error())
	case ops.Unavailable:
		writeError(w, http.StatusNotImplemented, err.Error())
	default:
		s.internal(w, what, err)
	}
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
