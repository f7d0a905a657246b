package admin

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
)

//go:embed status.html
var statusHTML string

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago":  ago,
	"dur":  func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
}).Parse(statusHTML))

// statusPage is what status.html renders.
type statusPage struct {
	Now        time.Time
	Started    time.Time
	Source     ldapsync.Endpoint
	Sync       ldapsync.SyncState
	Ready      Readiness
	Stats      cache.Stats
	Passes     []PassRecord
	Holds      []cache.Hold
	ApproveAll string // the command approving every hold
	ApproveOne string // the command without ids
	Targets    []targetRow
	Push       bool
	Failures   []failure
	Chart      svgChart
	Problems   []string // parts of the page that could not be read
}

type targetRow struct {
	Name        string
	Health      *TargetHealth
	Cursor, Lag uint64
	Resources   int
	DeadLetters []cache.DeadLetter
	DueDeletes  int
}

type failure struct {
	Time  time.Time
	What  string
	Error string
}

// status renders the status page from the cache, the pass history and push.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.now()
	p := statusPage{Now: now, Started: s.start, Source: s.opts.Source, Push: s.opts.Push != nil,
		Passes: s.opts.History.Recent(20)}
	problem := func(what string, err error) {
		s.log.Warn("status page: "+what, "err", err)
		p.Problems = append(p.Problems, what)
	}
	var err error
	if p.Stats, err = s.opts.Store.Stats(ctx); err != nil {
		problem("cache statistics", err)
	}
	if p.Sync, err = ldapsync.LastSync(ctx, s.opts.Store); err != nil {
		problem("last sync state", err)
	}
	p.Ready = s.readiness(p.Sync, err, now)
	if p.Holds, err = s.opts.Store.Holds(ctx); err != nil {
		problem("held deletions", err)
	}
	cfg := s.opts.ConfigPath
	if cfg == "" {
		cfg = "FILE"
	}
	p.ApproveAll = "ldapscim deletes approve --config " + shellQuote(cfg) + " --all"
	p.ApproveOne = "ldapscim deletes approve --config " + shellQuote(cfg)
	for _, pr := range p.Passes {
		if pr.Result != "success" {
			p.Failures = append(p.Failures, failure{Time: pr.Ended, What: pr.Result + " sync pass", Error: pr.Error})
		}
	}
	p.Targets = s.targetRows(ctx, p.Stats.JournalHead, &p, problem)
	bars, err := s.chart.hourly(ctx, now)
	if err != nil {
		problem("changes per hour", err)
	}
	p.Chart = newSVGChart(bars)

	var b bytes.Buffer
	if err := statusTmpl.Execute(&b, p); err != nil {
		s.internal(w, "rendering the status page", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// No external assets, no scripts: a strict policy costs nothing.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	_, _ = b.WriteTo(w)
}

func (s *Server) targetRows(ctx context.Context, head uint64, p *statusPage, problem func(string, error)) []targetRow {
	if s.opts.Push == nil {
		return nil
	}
	health := map[string]TargetHealth{}
	if ph, ok := s.opts.Push.(PushHealth); ok {
		for _, h := range ph.Health(ctx) {
			health[h.Name] = h
		}
	}
	var rows []targetRow
	for _, t := range s.opts.Push.Targets() {
		row := targetRow{Name: t}
		if h, ok := health[t]; ok {
			row.Health = &h
			if h.LastError != "" {
				p.Failures = append(p.Failures, failure{Time: p.Now, What: "push to " + t + ": last error", Error: h.LastError})
			}
		}
		ps, err := s.opts.Store.PushSummary(ctx, t)
		if err != nil {
			problem("push state of "+t, err)
			continue
		}
		row.Cursor, row.Resources, row.DueDeletes = ps.Cursor, ps.Resources, ps.DueDeletes
		if head > ps.Cursor {
			row.Lag = head - ps.Cursor
		}
		if ps.DeadLetters > 0 {
			if row.DeadLetters, err = s.opts.Store.DeadLetters(ctx, t); err != nil {
				problem("dead letters of "+t, err)
			}
		}
		for _, d := range row.DeadLetters {
			p.Failures = append(p.Failures, failure{Time: d.Time, What: fmt.Sprintf("push to %s: %s %s %s", t, d.Op, d.Type, d.ID), Error: d.Error})
		}
		rows = append(rows, row)
	}
	return rows
}

// readiness is the /readyz decision for the status page.
func (s *Server) readiness(ls ldapsync.SyncState, err error, now time.Time) Readiness {
	rd := Readiness{MaxAge: s.cfg.ReadyMaxAge.D().String(), HA: s.haStatus()}
	switch {
	case err != nil:
		rd.Reason = "cannot read the cache"
	case !ls.OK:
		rd.Reason = "no sync pass has completed successfully yet"
	default:
		age := now.Sub(ls.LastSuccess)
		rd.LastSuccess, rd.Age = ls.LastSuccess, age.Round(time.Second).String()
		if age > s.cfg.ReadyMaxAge.D() {
			rd.Reason = "the last successful sync pass is older than ready_max_age"
		} else {
			rd.Ready = true
		}
	}
	return rd
}

// svgChart is the changes-per-hour bar chart, laid out here so the template only draws.
type svgChart struct {
	Width, Height int
	Bars          []svgBar
	Max           int64
	Total         int64
	From, To      string
}

type svgBar struct {
	X, Y, W, H int
	Title      string
}

func newSVGChart(bars []Bar) svgChart {
	const w, h, plotH, top = 720, 140, 110, 10
	c := svgChart{Width: w, Height: h}
	for _, b := range bars {
		c.Max = max(c.Max, b.Changes)
		c.Total += b.Changes
	}
	if len(bars) == 0 {
		return c
	}
	c.From, c.To = bars[0].Hour.UTC().Format("Jan 2 15:04Z"), bars[len(bars)-1].Hour.UTC().Format("15:04Z")
	slot := w / len(bars)
	for i, b := range bars {
		bh := 0
		if c.Max > 0 {
			bh = int(float64(b.Changes) / float64(c.Max) * plotH)
		}
		if b.Changes > 0 && bh < 2 {
			bh = 2 // a change is never invisible
		}
		c.Bars = append(c.Bars, svgBar{X: i*slot + 2, Y: top + plotH - bh, W: slot - 4, H: bh,
			Title: fmt.Sprintf("%s: %d changes", b.Hour.UTC().Format("Jan 2 15:00Z"), b.Changes)})
	}
	return c
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// shellQuote quotes p for a POSIX shell when it needs it.
func shellQuote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:=@,") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
