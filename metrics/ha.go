package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterHALeader exports ldapscim_ha_leader: 1 while this replica leads the [ha] election
// (it runs the push workers), else 0. leader is read at scrape time and must be safe for
// concurrent use. Only a serve with [ha] registers it. Call it once per Metrics.
func (m *Metrics) RegisterHALeader(leader func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ldapscim_ha_leader",
		Help: "1 while this replica leads the high-availability election and runs the push workers, else 0.",
	}, func() float64 {
		if leader() {
			return 1
		}
		return 0
	}))
}
