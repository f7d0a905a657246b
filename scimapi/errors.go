package scimapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// SCIM error detail keywords (RFC 7644 §3.12, RFC 9865 §2.3).
const (
	scimInvalidFilter = "invalidFilter"
	scimTooMany       = "tooMany"
	scimInvalidValue  = "invalidValue"
	scimInvalidSyntax = "invalidSyntax"
	scimInvalidCursor = "invalidCursor"
	scimInvalidCount  = "invalidCount"
)

// Error is an error the API answers with its own status and words: the only kind whose detail
// reaches a client.
type Error struct {
	Status   int
	ScimType string // "" or an RFC 7644 §3.12 keyword
	Detail   string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.ScimType, e.Detail) }

func errorf(status int, scimType, format string, args ...any) *Error {
	return &Error{Status: status, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

var errNotFound = func(kind, id string) *Error {
	return errorf(http.StatusNotFound, "", "%s %q not found", kind, id)
}

// writeError is the one place errors become SCIM error responses (RFC 7644 §3.12). *Error and
// *filter.Error speak for themselves; a cancelled request gets a generic 503; anything else is
// a 500 whose text is logged once, with the request id, and never sent.
func (s *Server) writeError(c *gin.Context, err error) {
	var se *Error
	var fe *filter.Error
	switch {
	case errors.As(err, &se):
	case errors.As(err, &fe):
		se = errorf(http.StatusBadRequest, scimInvalidFilter, "invalid filter at position %d: %s", fe.Pos, fe.Msg)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		se = errorf(http.StatusServiceUnavailable, "", "the request was cancelled (request id %s)", requestID(c))
	default:
		s.log.Error("internal error answering a SCIM request", "request_id", requestID(c),
			"method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		se = errorf(http.StatusInternalServerError, "", "internal error (request id %s)", requestID(c))
	}
	if se.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="ldapscim"`)
	}
	buf := make([]byte, 0, 256)
	buf = append(buf, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":`...)
	buf = jsonappend.String(buf, strconv.Itoa(se.Status))
	if se.ScimType != "" {
		buf = append(buf, `,"scimType":`...)
		buf = jsonappend.String(buf, se.ScimType)
	}
	if se.Detail != "" {
		buf = append(buf, `,"detail":`...)
		buf = jsonappend.String(buf, se.Detail)
	}
	buf = append(buf, '}')
	c.Abort()
	c.Data(se.Status, contentType, buf)
}
