package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Alerts waiting for, or delivered to, a chat webhook (push's alert sinks), per sink by name.
// Each alert condition (kind, target, key) has one record, in the order raised, which is the
// order of delivery: an alert is stored before it is sent, so it survives a restart, and it
// stays while its condition is open, so raising it again sends nothing. When the condition
// clears the record gets a "resolved" text to send, and goes once that is delivered. A sink
// keeps at most the number of records its caller gives; the oldest go first.

// StoredAlert is one alert record of a sink.
type StoredAlert struct {
	Seq    uint64    `json:"seq"` // order raised; the record's key
	Kind   string    `json:"kind"`
	Target string    `json:"target"`
	Key    string    `json:"key,omitempty"` // what in the target: a resource id, an event
	Text   string    `json:"text"`
	Raised time.Time `json:"raised"`
	// Sent is set once Text was delivered.
	Sent bool `json:"sent,omitempty"`
	// Resolved is set when the condition cleared: ResolvedText is to be delivered (after Text,
	// if that was not yet), then the record goes.
	Resolved     bool   `json:"resolved,omitempty"`
	ResolvedText string `json:"resolvedText,omitempty"`
	// Attempts and NextAt are the failed deliveries of the text due next and when to try again.
	Attempts int       `json:"attempts,omitempty"`
	NextAt   time.Time `json:"nextAt,omitzero"`
}

// Pending reports whether a text of a is waiting for delivery.
func (a *StoredAlert) Pending() bool { return !a.Sent || a.Resolved }

func alertKey(sink string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(kindAlert, "a", sink, "\x00"), seq)
}

func alertPrefix(sink string) []byte { return key(kindAlert, "a", sink, "\x00") }

func openAlertKey(sink, kind, target, k string) []byte {
	return key(kindAlert, "o", sink, "\x00", kind, "\x00", target, "\x00", k)
}

func alertSeqKey(sink string) []byte   { return key(kindAlert, "c", sink) }
func alertCountKey(sink string) []byte { return key(kindAlert, "n", sink) }

// RaiseAlert stores a (Seq and Raised are set here) as an open alert of sink, unless an alert
// of the same kind, target and key is open already: then it returns opened false and stores
// nothing. When sink then holds more than limit records, the oldest are removed and returned,
// so the caller can say so. Errors: ErrInvalid (empty sink or kind), ErrClosed, ErrCorrupt.
// Safe for concurrent use.
func (s *Store) RaiseAlert(ctx context.Context, sink string, a StoredAlert, limit int) (opened bool, dropped []StoredAlert, err error) {
	if sink == "" || a.Kind == "" {
		return false, nil, fmt.Errorf("%w: alert without sink or kind", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	_, err = s.write(func(w *writer) error {
		opened, dropped = false, nil
		open := openAlertKey(sink, a.Kind, a.Target, a.Key)
		if _, err := w.get(open); err == nil || !errors.Is(err, ErrNotFound) {
			return err
		}
		seq, err := getCounter(w.txn, alertSeqKey(sink))
		if err != nil {
			return err
		}
		a.Seq, a.Raised = seq+1, w.now
		if err := w.putAlert(sink, &a); err != nil {
			return err
		}
		if err := w.set(alertSeqKey(sink), binary.BigEndian.AppendUint64(nil, a.Seq)); err != nil {
			return err
		}
		if err := w.set(open, binary.BigEndian.AppendUint64(nil, a.Seq)); err != nil {
			return err
		}
		opened = true
		dropped, err = w.trimAlerts(sink, 1, limit)
		return err
	})
	return opened, dropped, err
}

// ResolveAlert marks the open alert of kind, target and key of sink resolved, with text to
// deliver ("resolved: " and the alert's text when empty); it reports whether one was open. Errors: ErrClosed, ErrCorrupt. Safe for concurrent
// use.
func (s *Store) ResolveAlert(ctx context.Context, sink, kind, target, k, text string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var found bool
	_, err := s.write(func(w *writer) error {
		found = false
		open := openAlertKey(sink, kind, target, k)
		v, err := w.get(open)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		a, err := w.alert(sink, binary.BigEndian.Uint64(v))
		if err != nil {
			return err
		}
		found = true
		if text == "" {
			text = "resolved: " + a.Text
		}
		a.Resolved, a.ResolvedText, a.Attempts, a.NextAt = true, text, 0, time.Time{}
		if err := w.putAlert(sink, &a); err != nil {
			return err
		}
		return w.del(open)
	})
	return found, err
}

// Alerts returns the records of sink in the order raised. Errors: ErrClosed, ErrCorrupt. Safe
// for concurrent use.
func (s *Store) Alerts(ctx context.Context, sink string) ([]StoredAlert, error) {
	return listJSON[StoredAlert](ctx, s, alertPrefix(sink), "alert")
}

// AlertDelivered records that the text of alert seq of sink due next was delivered: its Text
// (resolved false: the record stays while open), or its ResolvedText (resolved true: the record
// goes). A record that is gone (trimmed) is left alone. Errors: ErrClosed, ErrCorrupt. Safe for
// concurrent use.
func (s *Store) AlertDelivered(ctx context.Context, sink string, seq uint64, resolved bool) error {
	return s.updateAlert(ctx, sink, seq, func(w *writer, a *StoredAlert) error {
		if resolved {
			return w.removeAlert(sink, a)
		}
		a.Sent, a.Attempts, a.NextAt = true, 0, time.Time{}
		return w.putAlert(sink, a)
	})
}

// AlertFailed records a failed delivery of alert seq of sink: attempts so far and when to try
// again. Errors: ErrClosed, ErrCorrupt. Safe for concurrent use.
func (s *Store) AlertFailed(ctx context.Context, sink string, seq uint64, attempts int, next time.Time) error {
	return s.updateAlert(ctx, sink, seq, func(w *writer, a *StoredAlert) error {
		a.Attempts, a.NextAt = attempts, next
		return w.putAlert(sink, a)
	})
}

// DropAlert removes alert seq of sink, open or not. Errors: ErrClosed, ErrCorrupt. Safe for
// concurrent use.
func (s *Store) DropAlert(ctx context.Context, sink string, seq uint64) error {
	return s.updateAlert(ctx, sink, seq, func(w *writer, a *StoredAlert) error {
		return w.removeAlert(sink, a)
	})
}

// HasDeadLetter reports whether target has a dead letter of id: with seq 0 the resource's
// (SCIM targets), else that of journal record seq (webhooks). Errors: ErrClosed. Safe for
// concurrent use.
func (s *Store) HasDeadLetter(ctx context.Context, target, id string, seq uint64) (bool, error) {
	k := pushKey('l', target, id)
	if seq != 0 {
		k = deadEventKey(target, id, seq)
	}
	var has bool
	err := s.view(ctx, func(txn *badger.Txn) error {
		_, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		has = err == nil
		return err
	})
	return has, err
}

// HasHolds reports whether any deletion or member removal is held. Errors: ErrClosed. Safe for
// concurrent use.
func (s *Store) HasHolds(ctx context.Context) (bool, error) {
	var has bool
	err := s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix, opts.PrefetchValues = []byte{kindHold}, false
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Rewind()
		has = it.Valid()
		return nil
	})
	return has, err
}

func (s *Store) updateAlert(ctx context.Context, sink string, seq uint64, fn func(w *writer, a *StoredAlert) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.write(func(w *writer) error {
		a, err := w.alert(sink, seq)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(w, &a)
	})
	return err
}

func (w *writer) alert(sink string, seq uint64) (StoredAlert, error) {
	var a StoredAlert
	v, err := w.get(alertKey(sink, seq))
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(v, &a); err != nil {
		return a, fmt.Errorf("%w: alert %s/%d: %v", ErrCorrupt, sink, seq, err)
	}
	return a, nil
}

func (w *writer) putAlert(sink string, a *StoredAlert) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return w.set(alertKey(sink, a.Seq), v)
}

// removeAlert deletes a's record, and its open key while it is open.
func (w *writer) removeAlert(sink string, a *StoredAlert) error {
	if err := w.del(alertKey(sink, a.Seq)); err != nil {
		return err
	}
	if !a.Resolved {
		if err := w.del(openAlertKey(sink, a.Kind, a.Target, a.Key)); err != nil {
			return err
		}
	}
	_, err := w.trimAlerts(sink, -1, 0)
	return err
}

// trimAlerts adds delta to sink's record count and, with limit > 0, removes the oldest records
// above limit and returns them. The count is a key of its own, so a raise reads one key, not
// every record.
func (w *writer) trimAlerts(sink string, delta, limit int) ([]StoredAlert, error) {
	n, err := getCounter(w.txn, alertCountKey(sink))
	if err != nil {
		return nil, err
	}
	count := max(int(n)+delta, 0)
	var dropped []StoredAlert
	if limit > 0 && count > limit {
		err = scanJSON(context.Background(), w.txn, alertPrefix(sink), nil, "alert", func(a StoredAlert) error {
			if count <= limit {
				return errStop
			}
			dropped = append(dropped, a)
			count--
			return nil
		})
		if err != nil {
			return nil, err
		}
		for i := range dropped {
			if err := w.del(alertKey(sink, dropped[i].Seq)); err != nil {
				return nil, err
			}
			if !dropped[i].Resolved {
				if err := w.del(openAlertKey(sink, dropped[i].Kind, dropped[i].Target, dropped[i].Key)); err != nil {
					return nil, err
				}
			}
		}
	}
	return dropped, w.set(alertCountKey(sink), binary.BigEndian.AppendUint64(nil, uint64(count)))
}
