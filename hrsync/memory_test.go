package hrsync

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// TestEnrichBytesPerRow measures what an enrich pass keeps of each row between the check and
// the walks of the cache (enrichState, in a slice grown by append), the figure the comments of
// enrichrows.go and docs/architecture.md quote:
//
//	go test -count=1 -run TestEnrichBytesPerRow -v ./hrsync/
func TestEnrichBytesPerRow(t *testing.T) {
	const n = 200000
	c := hrcsv.DefaultConfig()
	c.Name, c.Mode, c.Key, c.Join, c.EndDate = "hr", hrcsv.ModeEnrich, "Personnel No", "externalId", "End"
	dept := scim.SchemaEnterpriseUser + ":department"
	c.Mapping = map[string]string{dept: "Department", "title": "Job Title"}
	s, err := New(c, ingest.Threshold{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	today := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	rows := make([]hrcsv.Row, 1000) // the cells, made before the measure
	for i := range rows {
		rows[i] = hrcsv.Row{Key: fmt.Sprintf("E%07d", i), Line: i + 2, Offset: int64(i * 40),
			Values: map[string]string{dept: fmt.Sprintf("Dept %d", i%13), "title": "Engineer"}}
		if i%10 == 0 {
			rows[i].End = today.AddDate(0, 0, -1)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	col := newEnrichCollector(s, today)
	for i := range n {
		row := rows[i%len(rows)]
		row.Line, row.Offset = i+2, int64(i*40)
		if err := col.add(row); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per row kept by an enrich pass (enrichState %d rows, capacity %d)", per, len(col.rows), cap(col.rows))
	if per > 64 {
		t.Errorf("%.1f bytes per row; an enrich pass should keep tens of bytes a row", per)
	}
	runtime.KeepAlive(col)
}
