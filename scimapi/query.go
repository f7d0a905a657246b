package scimapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// listQuery is a list request's parameters (RFC 7644 §3.4.2, RFC 9865), from the URL query of a
// GET or the SearchRequest body of a POST .search.
type listQuery struct {
	filter     string
	attributes []string
	excluded   []string
	sortBy     string
	descending bool
	startIndex int // 1-based, ≥ 1
	count      int // ≥ 0; the server's page size when the client gave none
	cursor     *string
	head       uint64 // the journal head as the request began: what the hot cache is valid for
}

const schemaSearchRequest = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

// queryFromURL reads a GET's query parameters.
func (s *Server) queryFromURL(v url.Values) (*listQuery, error) {
	q := &listQuery{filter: v.Get("filter"), sortBy: v.Get("sortBy"),
		attributes: splitList(v.Get("attributes")), excluded: splitList(v.Get("excludedAttributes"))}
	if v.Has("cursor") {
		c := v.Get("cursor")
		q.cursor = &c
	}
	if err := q.setOrder(v.Get("sortOrder")); err != nil {
		return nil, err
	}
	return q, s.setPaging(q, v.Get("startIndex"), v.Has("startIndex"), v.Get("count"), v.Has("count"))
}

// searchRequest is the RFC 7644 §3.4.3 body. startIndex and count stay raw so that "10" and
// 10 both work and a wrong form gets a SCIM error naming the field.
type searchRequest struct {
	Schemas            []string        `json:"schemas"`
	Attributes         []string        `json:"attributes"`
	ExcludedAttributes []string        `json:"excludedAttributes"`
	Filter             string          `json:"filter"`
	SortBy             string          `json:"sortBy"`
	SortOrder          string          `json:"sortOrder"`
	StartIndex         json.RawMessage `json:"startIndex"`
	Count              json.RawMessage `json:"count"`
	Cursor             *string         `json:"cursor"`
}

// queryFromBody reads a POST .search body.
func (s *Server) queryFromBody(c *gin.Context) (*listQuery, error) {
	raw, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "", "the request body is larger than %d bytes", s.cfg.MaxRequestBytes)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, scimInvalidSyntax, "the request body could not be read")
	}
	var req searchRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&req); err != nil {
		return nil, errorf(http.StatusBadRequest, scimInvalidSyntax, "the body is not a SearchRequest: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(http.StatusBadRequest, scimInvalidSyntax, "the body has data after the SearchRequest")
	}
	if !containsFold(req.Schemas, schemaSearchRequest) {
		return nil, errorf(http.StatusBadRequest, scimInvalidSyntax, "schemas must contain %q", schemaSearchRequest)
	}
	q := &listQuery{filter: req.Filter, sortBy: req.SortBy, attributes: splitAll(req.Attributes),
		excluded: splitAll(req.ExcludedAttributes), cursor: req.Cursor}
	if err := q.setOrder(req.SortOrder); err != nil {
		return nil, err
	}
	si, hasSI := rawNumber(req.StartIndex)
	n, hasN := rawNumber(req.Count)
	return q, s.setPaging(q, si, hasSI, n, hasN)
}

// jsonProblem describes a JSON decoding error without echoing the body.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + strconv.Quote(te.Field) + " has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	}
	return "invalid JSON"
}

// rawNumber returns a JSON number or string as text; null and absent are "not given".
func rawNumber(raw json.RawMessage) (string, bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "", false
	}
	if uq, err := strconv.Unquote(s); err == nil {
		return uq, true
	}
	return s, true
}

func (q *listQuery) setOrder(order string) error {
	switch strings.ToLower(order) {
	case "", "ascending":
	case "descending":
		q.descending = true
	default:
		return errorf(http.StatusBadRequest, scimInvalidValue, "sortOrder must be \"ascending\" or \"descending\"")
	}
	return nil
}

// setPaging applies RFC 7644 §3.4.2.4: startIndex < 1 means 1, a negative count means 0, and a
// count above max_results is cut to it. Non-integers are errors.
func (s *Server) setPaging(q *listQuery, startIndex string, hasStart bool, count string, hasCount bool) error {
	q.startIndex, q.count = 1, s.cfg.MaxResults
	if hasStart {
		n, err := parseInt(startIndex)
		if err != nil {
			return errorf(http.StatusBadRequest, scimInvalidValue, "startIndex must be an integer")
		}
		q.startIndex = max(n, 1)
	}
	if hasCount {
		n, err := parseInt(count)
		if err != nil {
			scimType := scimInvalidValue
			if q.cursor != nil {
				scimType = scimInvalidCount
			}
			return errorf(http.StatusBadRequest, scimType, "count must be an integer")
		}
		q.count = min(max(n, 0), s.cfg.MaxResults)
	}
	if q.cursor != nil && hasStart {
		return errorf(http.StatusBadRequest, scimInvalidValue, "use startIndex or cursor, not both")
	}
	return nil
}

// parseInt parses a decimal integer; values beyond the int range are clamped, not errors.
func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	var ne *strconv.NumError
	if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		if strings.HasPrefix(strings.TrimSpace(s), "-") {
			return -1, nil
		}
		return int(^uint(0) >> 1), nil
	}
	return n, err
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return splitAll([]string{s})
}

// splitAll splits comma-separated entries and drops empty ones.
func splitAll(list []string) []string {
	var out []string
	for _, s := range list {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
