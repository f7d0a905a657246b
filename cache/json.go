package cache

import (
	"strconv"
	"time"

	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim"
)

// Append-style JSON encoding of members, journal and audit records, on internal/jsonappend
// (resource attributes): the same bytes encoding/json writes, without its reflection, which
// took most of a 1000-user Apply. Decoding uses encoding/json.

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
		buf = jsonappend.String(buf, m.Value)
		buf = append(buf, `,"type":`...)
		buf = jsonappend.String(buf, string(m.Type))
		if m.Display != "" {
			buf = append(buf, `,"display":`...)
			buf = jsonappend.String(buf, m.Display)
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
	buf = jsonappend.String(buf, string(rec.Op))
	buf = append(buf, `,"type":`...)
	buf = jsonappend.String(buf, string(rec.Type))
	buf = append(buf, `,"id":`...)
	buf = jsonappend.String(buf, rec.ID)
	if rec.Pass != "" {
		buf = append(buf, `,"pass":`...)
		buf = jsonappend.String(buf, rec.Pass)
	}
	if len(rec.Changed) > 0 {
		buf = append(buf, `,"changed":`...)
		buf, _ = jsonappend.Value(buf, rec.Changed)
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
		buf = jsonappend.String(buf, rec.Pass)
	}
	buf = append(buf, `,"op":`...)
	buf = jsonappend.String(buf, string(rec.Op))
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
		buf = jsonappend.String(buf, c.Path)
		if c.Old != nil {
			buf = append(buf, `,"old":`...)
			if buf, err = jsonappend.Value(buf, c.Old); err != nil {
				return buf, err
			}
		}
		if c.New != nil {
			buf = append(buf, `,"new":`...)
			if buf, err = jsonappend.Value(buf, c.New); err != nil {
				return buf, err
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, "]}"...), nil
}
