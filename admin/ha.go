package admin

import "time"

// HAStatus is this replica's part in high availability ([ha]), shown by /readyz, /status and
// /admin/v1/info. Role is "leader" (it runs the push workers), "follower" (it syncs and serves
// reads only), "staging" ([ha] with [safety] staging = true: it syncs and serves reads, does not
// campaign and never pushes) or "standalone" (no [ha]: it does everything).
type HAStatus struct {
	Role   string `json:"role"`
	Node   string `json:"node,omitempty"`
	Leader string `json:"leader,omitempty"` // the leader's node name; "" when not known
	// LeaseAge is how long the current leader has held its lease, as this replica saw it.
	LeaseAge string `json:"leaseAge,omitempty"`
}

// HA is what the admin server reads of the election; safe for concurrent use.
type HA interface {
	HAStatus() HAStatus
}

// haStatus returns the replica's HA status: standalone without an election.
func (s *Server) haStatus() HAStatus {
	if s.opts.HA == nil {
		return HAStatus{Role: "standalone"}
	}
	return s.opts.HA.HAStatus()
}

// LeaseAgeString formats a lease age for HAStatus.LeaseAge: whole seconds, "" for none.
func LeaseAgeString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.Round(time.Second).String()
}
