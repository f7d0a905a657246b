// Package ops is ldapscim's operations layer: the administrative operations an admin runs
// (a pass, held changes, plan, explain, audit, dead letters, targets status, import) as one typed
// interface, Operations, with two implementations. Local works on a cache this process holds;
// admin.Client asks the admin API of the `serve` that holds it. The CLI picks one, and the
// admin server answers each route with Local's result, so both paths give the same types,
// the same answers and the same errors.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
)

// Operations are the administrative operations. A nil ids argument means "all". Every method
// returns an *Error for a request it refuses (see Code); other errors are failures.
type Operations interface {
	// Sync runs one pass (full: a full reconciliation) and returns its summary; a pass that
	// fails may still return the summary of what it did.
	Sync(ctx context.Context, full bool) (ldapsync.Summary, error)
	// Holds lists the held deletions, deactivations and member removals.
	Holds(ctx context.Context) ([]cache.Hold, error)
	// ApproveHolds applies the held changes of ids. An id that is not held: NotFound, and
	// nothing is applied.
	ApproveHolds(ctx context.Context, ids []string) (cache.Result, error)
	// Plan reads the directory as a pass would and reports what it would change, writing
	// nothing. A failed read may still return the plan of what was read.
	Plan(ctx context.Context, req PlanRequest) (*Plan, error)
	// Explain shows how the rules and the push scopes see one user (an id or a userName).
	Explain(ctx context.Context, user string) (*Explanation, error)
	// Audit is the sync and push history of the resource with that id.
	Audit(ctx context.Context, id string) (*AuditHistory, error)
	// DeadLetters lists a target's or webhook's dead letters.
	DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error)
	// ReplayDeadLetters delivers the dead letters of ids again and returns how many it tried.
	ReplayDeadLetters(ctx context.Context, target string, ids []string) (int, error)
	// SkipDeadLetters drops the dead letters of ids and returns how many it dropped.
	SkipDeadLetters(ctx context.Context, target string, ids []string) (int, error)
	// TargetsStatus is every target's and webhook's progress, and its health when the push
	// workers run in this process.
	TargetsStatus(ctx context.Context) (*TargetsStatus, error)
	// Import applies file as the whole current content of the [[csv]] source named source
	// (dryRun: reports what would change, writing nothing). A file with any bad row changes
	// nothing: Invalid, listing the rows.
	Import(ctx context.Context, source string, file io.ReadSeeker, dryRun bool) (*hrsync.Summary, error)
	// Reconcile reads a push target's users and groups, compares them with what push would
	// send, and with Apply corrects the drift (the [safety] threshold holds extras above it).
	// An unknown target: Invalid (as for Plan). Apply on an [ha] replica that does not lead, or under
	// [safety] staging: Unavailable; a dry run may run anywhere.
	Reconcile(ctx context.Context, req ReconcileRequest) (*push.ReconcileReport, error)
}

// ReconcileRequest asks for the reconciliation of one push target.
type ReconcileRequest struct {
	Target string `json:"target"`
	Apply  bool   `json:"apply"`
}

// PlanRequest asks for a plan: of a full pass or a delta, and of one push target or all.
type PlanRequest struct {
	Full   bool   `json:"full"`
	Target string `json:"target,omitempty"`
}

// Plan is what a pass would change in the cache, and what each push target would be sent.
type Plan struct {
	*ldapsync.PlanReport
	Targets []TargetPlan `json:"targets"`
}

// TargetPlan is what one push target would be sent, judged against what it last received.
type TargetPlan struct {
	Target  string            `json:"target"`
	Changes []push.PlanChange `json:"changes"`
}

// Explanation is a user as cached, every rule and whether it matched, the user's direct
// groups and each push target's scope verdict.
type Explanation struct {
	ID string `json:"id"`
	// Source is where every attribute of the user comes from: "ldap" (the directory) or an
	// HR file source such as "csv:hr".
	Source     string                `json:"source"`
	UserName   string                `json:"userName"`
	DN         string                `json:"dn"`
	ExternalID string                `json:"externalId"`
	Attributes map[string]any        `json:"attributes"`
	Rules      []ldapsync.RuleResult `json:"rules"`
	Groups     []cache.Ref           `json:"groups"` // direct, by display name
	Targets    []ScopeVerdict        `json:"targets"`
	// Sources says which source each attribute comes from: every top-level attribute (and
	// externalId) the user has maps to Source, and each path an enriching source sets (an HR
	// file in enrich mode, such as "title" or "name.givenName") to that source, "csv:NAME". The
	// most specific path wins.
	Sources map[string]string `json:"sources"`
}

// ScopeVerdict is whether a push target has the user in scope, and why.
type ScopeVerdict struct {
	Target  string `json:"target"`
	InScope bool   `json:"inScope"`
	Why     string `json:"why"`
}

// AuditHistory is what sync did to one resource (the cache's audit records) and every push
// attempt for it, each in time order.
type AuditHistory struct {
	ID   string              `json:"id"`
	Sync []cache.AuditRecord `json:"sync"`
	Push []cache.PushAudit   `json:"push"`
}

// TargetsStatus is the push side at a glance.
type TargetsStatus struct {
	// Live is set when the rows come from running push workers (serve), with their health
	// (delivered, quarantine, failures, last error); else they come from the cache alone.
	Live    bool          `json:"live"`
	Targets []push.Status `json:"targets"`
}

// Code says why an operation refused its request.
type Code int

const (
	// Failed is not a refusal: the operation failed (the directory, the cache, a target).
	Failed Code = iota
	// Invalid: the request is wrong (an unknown user, target or option).
	Invalid
	// NotFound: what the request names is not there (an id that is not held, a target push
	// does not run).
	NotFound
	// Unavailable: this process cannot do it (push workers are off, or it is an [ha] replica
	// that does not lead).
	Unavailable
)

// Error is an operation's refusal of its request. Its text is meant for the admin.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error of code with a formatted message.
func Errorf(code Code, format string, a ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// CodeOf returns the Code of the *Error in err's chain, or Failed.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Failed
}
