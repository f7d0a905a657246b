package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// scrapeTimeout bounds the cache reads of one scrape.
const scrapeTimeout = 5 * time.Second

var (
	descJournalHead = prometheus.NewDesc("ldapscim_cache_journal_head",
		"Sequence number of the last change journal record.", nil, nil)
	descResources = prometheus.NewDesc("ldapscim_cache_resources",
		"Resources in the cache by type.", []string{"type"}, nil)
	descHeld = prometheus.NewDesc("ldapscim_sync_held_deletions",
		"Deletions and deactivations held by the safety threshold, waiting for `ldapscim deletes approve`.", nil, nil)
	descLastSuccess = prometheus.NewDesc("ldapscim_sync_last_success_timestamp_seconds",
		"Unix time of the last successful sync pass, as stored with the watermark (absent before the first).", nil, nil)
	descWatermarkAge = prometheus.NewDesc("ldapscim_sync_watermark_age_seconds",
		"Seconds since the watermark was last moved by a successful pass (absent before the first).", nil, nil)
	descLastFull = prometheus.NewDesc("ldapscim_sync_last_full_timestamp_seconds",
		"Unix time of the last successful full reconciliation.", nil, nil)
	descCursorLag = prometheus.NewDesc("ldapscim_push_cursor_lag",
		"Journal records a push target has not consumed yet (journal head minus its cursor).", []string{"target"}, nil)
	descDeadLetters = prometheus.NewDesc("ldapscim_push_dead_letters",
		"Changes a push target refused or that ran out of attempts, waiting for replay or skip.", []string{"target"}, nil)
	descScrapeErr = prometheus.NewDesc("ldapscim_cache_scrape_error",
		"1 when reading the cache for this scrape failed.", nil, nil)
)

// storeCollector reads the cache at scrape time, so the numbers are right also for changes
// made by another path (an admin approving holds, a pass of a previous process).
type storeCollector struct {
	store   Store
	targets func() []string
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJournalHead, descResources, descHeld, descLastSuccess,
		descWatermarkAge, descLastFull, descCursorLag, descDeadLetters, descScrapeErr} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	failed := 0.0
	st, statsErr := c.store.Stats(ctx)
	if statsErr != nil {
		failed = 1
	} else {
		ch <- prometheus.MustNewConstMetric(descJournalHead, prometheus.GaugeValue, float64(st.JournalHead))
		ch <- prometheus.MustNewConstMetric(descResources, prometheus.GaugeValue, float64(st.Users), string(scim.UserType))
		ch <- prometheus.MustNewConstMetric(descResources, prometheus.GaugeValue, float64(st.Groups), string(scim.GroupType))
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(st.Holds))
	}
	if ls, err := ldapsync.LastSync(ctx, c.store); err != nil {
		failed = 1
	} else if ls.OK {
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, unix(ls.LastSuccess))
		ch <- prometheus.MustNewConstMetric(descWatermarkAge, prometheus.GaugeValue, time.Since(ls.LastSuccess).Seconds())
		ch <- prometheus.MustNewConstMetric(descLastFull, prometheus.GaugeValue, unix(ls.LastFull))
	}
	if c.targets != nil {
		for _, t := range c.targets() {
			ps, perr := c.store.PushSummary(ctx, t)
			if perr != nil {
				failed = 1
				continue
			}
			if statsErr == nil {
				lag := float64(0)
				if st.JournalHead > ps.Cursor {
					lag = float64(st.JournalHead - ps.Cursor)
				}
				ch <- prometheus.MustNewConstMetric(descCursorLag, prometheus.GaugeValue, lag, t)
			}
			ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.GaugeValue, float64(ps.DeadLetters), t)
		}
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.GaugeValue, failed)
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
