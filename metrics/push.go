package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// PushHealth is what a push worker reports about itself since the process started.
type PushHealth struct {
	Target      string
	Kind        string // target or webhook
	Delivered   int64  // changes delivered since start
	DeadLetters int64  // changes dead-lettered since start
	Quarantined bool   // the circuit breaker holds deliveries back
	Failures    int    // failed requests in a row
}

var (
	descPushDelivered = prometheus.NewDesc("ldapscim_push_delivered_total",
		"Changes a push worker delivered since the process started.", []string{"target", "kind"}, nil)
	descPushDeadTotal = prometheus.NewDesc("ldapscim_push_dead_lettered_total",
		"Changes a push worker dead-lettered since the process started.", []string{"target", "kind"}, nil)
	descPushQuarantined = prometheus.NewDesc("ldapscim_push_quarantined",
		"1 while a push worker's circuit breaker holds deliveries back.", []string{"target", "kind"}, nil)
	descPushFailures = prometheus.NewDesc("ldapscim_push_failures_in_a_row",
		"Failed requests in a row of a push worker.", []string{"target", "kind"}, nil)
)

// RegisterPushHealth exports the push workers' own counters, read from health at every scrape.
func (m *Metrics) RegisterPushHealth(health func(ctx context.Context) []PushHealth) {
	m.reg.MustRegister(pushHealthCollector(health))
}

type pushHealthCollector func(ctx context.Context) []PushHealth

func (c pushHealthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPushDelivered, descPushDeadTotal, descPushQuarantined, descPushFailures} {
		ch <- d
	}
}

func (c pushHealthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, h := range c(ctx) {
		q := 0.0
		if h.Quarantined {
			q = 1
		}
		ch <- prometheus.MustNewConstMetric(descPushDelivered, prometheus.CounterValue, float64(h.Delivered), h.Target, h.Kind)
		ch <- prometheus.MustNewConstMetric(descPushDeadTotal, prometheus.CounterValue, float64(h.DeadLetters), h.Target, h.Kind)
		ch <- prometheus.MustNewConstMetric(descPushQuarantined, prometheus.GaugeValue, q, h.Target, h.Kind)
		ch <- prometheus.MustNewConstMetric(descPushFailures, prometheus.GaugeValue, float64(h.Failures), h.Target, h.Kind)
	}
}
