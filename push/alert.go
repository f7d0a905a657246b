package push

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// rawJSON is a request body sent exactly as given (it was signed).
type rawJSON []byte

func jsonBody(v any) ([]byte, error) { return json.Marshal(v) }

// alertSink posts alerts as {"text": ...} to a chat incoming webhook (Slack, Mattermost,
// Rocket.Chat and Teams workflows accept that shape). Alerts are best effort: they live in a
// small in-memory queue, and when it is full new ones are dropped and counted in the log; the
// durable record of every problem is the dead-letter list and the push audit.
type alertSink struct {
	cfg   WebhookConfig
	log   *slog.Logger
	queue chan Alert
	http  *http.Client
}

func newAlertSink(cfg WebhookConfig, log *slog.Logger) *alertSink {
	return &alertSink{cfg: cfg, log: log.With("alerts", cfg.Name), queue: make(chan Alert, 256),
		http: newHTTPClient(cfg.Timeout.D(), 1, false)}
}

func (s *alertSink) send(a Alert) {
	select {
	case s.queue <- a:
	default:
		s.log.Warn("alert queue full; alert dropped", "kind", a.Kind, "target", a.Target)
	}
}

func (s *alertSink) run(ctx context.Context) {
	c := &client{base: s.cfg.URL, http: s.http, breaker: &breaker{after: 1 << 30}, limiter: newLimiter(1, 5)}
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-s.queue:
			for attempt := 1; attempt <= s.cfg.MaxAttempts; attempt++ {
				_, err := c.do(ctx, "POST", "", map[string]string{"text": a.Text})
				if err == nil || ctx.Err() != nil {
					break
				}
				if attempt == s.cfg.MaxAttempts {
					s.log.Warn("alert not delivered", "kind", a.Kind, "err", err)
					break
				}
				_ = sleep(ctx, backoff(attempt, s.cfg.BackoffBase.D(), min(s.cfg.BackoffMax.D(), time.Minute), 0))
			}
		}
	}
}
