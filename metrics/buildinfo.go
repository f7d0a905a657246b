package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterBuildInfo exports ldapscim_build_info{version, commit, goversion} with the value 1,
// the Prometheus convention for telling which build a scrape comes from (join on it in
// queries, or alert when versions differ across a fleet). Call it once per Metrics.
func (m *Metrics) RegisterBuildInfo(version, commit, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "ldapscim_build_info",
		Help:        "A metric with a constant value 1 labelled by the version, commit and Go version ldapscim was built from.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": goVersion},
	})
	g.Set(1)
	m.reg.MustRegister(g)
}
