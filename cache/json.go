package cache

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// Append-style JSON encoding of the few shapes the hot path writes: resource attributes
// (string, bool, []any, map[string]any), members, journal and audit records. encoding/json
// spends most of a 1000-user Apply in reflection; these produce the same bytes for the common
// types and fall back to encoding/json for everything else. Decoding uses encoding/json.

// appendString appends s as a JSON string, exactly as encoding/json would.
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// appendValue appends v as JSON, with map keys sorted (as encoding/json does).
func appendValue(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case string:
		return appendString(buf, x), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case json.RawMessage:
		if len(x) == 0 {
			return append(buf, "null"...), nil
		}
		return append(buf, x...), nil // callers pass only compact JSON they produced
	case []string:
		buf = append(buf, '[')
		for i, s := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, s)
		}
		return append(buf, ']'), nil
	case []any:
		return appendArray(buf, x)
	case map[string]any:
		return appendObject(buf, x)
	}
	b, err := json.Marshal(v)
	return append(buf, b...), err
}

func appendArray(buf []byte, list []any) ([]byte, error) {
	if list == nil {
		return append(buf, "null"...), nil
	}
	buf = append(buf, '[')
	var err error
	for i, e := range list {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = appendValue(buf, e); err != nil {
			return buf, err
		}
	}
	return append(buf, ']'), nil
}

func appendObject(buf []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(buf, "null"...), nil
	}
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(appendString(buf, k), ':')
		if buf, err = appendValue(buf, m[k]); err != nil {
			return buf, err
		}
	}
	return append(buf, '}'), nil
}

// appendMembers appends members as encoding/json writes []scim.Member.
func appendMembers(buf []byte, members []scim.Member) []byte {
	if members == nil {
		return append(buf, "null"...)
	}
	buf = append(buf, '[')
	for i, m := range members {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"value":`...)
		buf = appendString(buf, m.Value)
		buf = append(buf, `,"type":`...)
		buf = appendString(buf, string(m.Type))
		if m.Display != "" {
			buf = append(buf, `,"display":`...)
			buf = appendString(buf, m.Display)
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = t.AppendFormat(buf, time.RFC3339Nano)
	return append(buf, '"')
}

// appendJournal appends rec as JSON, as encoding/json writes JournalRecord.
func appendJournal(buf []byte, rec *JournalRecord) []byte {
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendUint(buf, rec.Seq, 10)
	buf = append(buf, `,"time":`...)
	buf = appendTime(buf, rec.Time)
	buf = append(buf, `,"op":`...)
	buf = appendString(buf, string(rec.Op))
	buf = append(buf, `,"type":`...)
	buf = appendString(buf, string(rec.Type))
	buf = append(buf, `,"id":`...)
	buf = appendString(buf, rec.ID)
	if rec.Pass != "" {
		buf = append(buf, `,"pass":`...)
		buf = appendString(buf, rec.Pass)
	}
	if len(rec.Changed) > 0 {
		buf = append(buf, `,"changed":`...)
		buf, _ = appendValue(buf, rec.Changed)
	}
	return append(buf, '}')
}

// appendAudit appends rec as JSON, as encoding/json writes AuditRecord.
func appendAudit(buf []byte, rec *AuditRecord) ([]byte, error) {
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendUint(buf, rec.Seq, 10)
	buf = append(buf, `,"time":`...)
	buf = appendTime(buf, rec.Time)
	if rec.Pass != "" {
		buf = append(buf, `,"pass":`...)
		buf = appendString(buf, rec.Pass)
	}
	buf = append(buf, `,"op":`...)
	buf = appendString(buf, string(rec.Op))
	if len(rec.Diff) == 0 {
		return append(buf, '}'), nil
	}
	buf = append(buf, `,"diff":[`...)
	var err error
	for i, c := range rec.Diff {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"path":`...)
		buf = appendString(buf, c.Path)
		if c.Old != nil {
			buf = append(buf, `,"old":`...)
			if buf, err = appendValue(buf, c.Old); err != nil {
				return buf, err
			}
		}
		if c.New != nil {
			buf = append(buf, `,"new":`...)
			if buf, err = appendValue(buf, c.New); err != nil {
				return buf, err
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, "]}"...), nil
}
