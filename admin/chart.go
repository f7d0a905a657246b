package admin

import (
	"context"
	"sort"
	"sync"
	"time"
)

// chartHours is how many hours the changes chart shows.
const chartHours = 24

// journalChunk is how many journal records one read takes.
const journalChunk = 5000

// chart counts journal records per hour for the status page. It reads the journal
// incrementally: the first render finds the first record of the window by binary search over
// the gapless sequence numbers, later renders read only what was appended since.
type chart struct {
	store  Store
	mu     sync.Mutex
	seq    uint64          // last journal record counted
	counts map[int64]int64 // hour (unix seconds, truncated) → changes
}

func newChart(store Store) *chart { return &chart{store: store, counts: map[int64]int64{}} }

// Bar is one hour of the chart.
type Bar struct {
	Hour    time.Time
	Changes int64
}

// hourly returns chartHours bars ending with the hour of now, oldest first.
func (c *chart) hourly(ctx context.Context, now time.Time) ([]Bar, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	if c.seq == 0 {
		seq, err := c.firstSince(ctx, first)
		if err != nil {
			return nil, err
		}
		c.seq = seq
	}
	for {
		recs, err := c.store.Journal(ctx, c.seq, journalChunk)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			c.counts[r.Time.Truncate(time.Hour).Unix()]++
			c.seq = r.Seq
		}
		if len(recs) < journalChunk {
			break
		}
	}
	for h := range c.counts {
		if h < first.Unix() {
			delete(c.counts, h)
		}
	}
	bars := make([]Bar, chartHours)
	for i := range bars {
		t := first.Add(time.Duration(i) * time.Hour)
		bars[i] = Bar{Hour: t, Changes: c.counts[t.Unix()]}
	}
	return bars, nil
}

// firstSince returns the sequence number just before the first journal record at or after t
// (records are in time order: the cache stamps them with its own clock when it commits).
func (c *chart) firstSince(ctx context.Context, t time.Time) (uint64, error) {
	head, err := c.store.JournalHead(ctx)
	if err != nil {
		return 0, err
	}
	// The journal has no gaps, so record i+1 is Journal(i, 1), and "record i+1 is at or after
	// t" is monotonic in i: about log2(head) reads.
	n := sort.Search(int(head), func(i int) bool {
		if err != nil {
			return true
		}
		recs, e := c.store.Journal(ctx, uint64(i), 1)
		if e != nil {
			err = e
			return true
		}
		return len(recs) == 0 || !recs[0].Time.Before(t)
	})
	return uint64(n), err
}
