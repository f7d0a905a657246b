// Package scimapi is ldapscim's SCIM 2.0 HTTP API (RFC 7643/7644, RFC 9865 cursors), read-only
// and served with gin from the cache: list and get Users and Groups with filters, projection,
// sorting and paging, POST .search, the discovery endpoints, bearer-token auth, ETags, request
// limits and one SCIM error writer. Write methods answer 501. Nothing here talks to LDAP or
// touches Badger: the API reads through the small Store interface below.
package scimapi

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Store is what the API reads; *cache.Store implements it. Every method is safe for
// concurrent use and returns cache's errors (ErrClosed, ErrCorrupt, ctx.Err()); unknown ids are
// skipped, never errors.
type Store interface {
	// IDs returns every id of typ in id order and the journal head it reflects.
	IDs(ctx context.Context, typ scim.ResourceType) ([]string, uint64, error)
	// Journal returns the journal records after afterSeq (limit <= 0: all).
	Journal(ctx context.Context, afterSeq uint64, limit int) ([]cache.JournalRecord, error)
	// JournalHead returns the last journal sequence number.
	JournalHead(ctx context.Context) (uint64, error)
	// GetMany returns the existing resources of typ among ids, in order; without members
	// unless withMembers.
	GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error)
	// Lookup returns the ids whose secondary index idx holds value, sorted.
	Lookup(ctx context.Context, idx cache.Index, value string) ([]string, error)
	// GroupsOfMany returns the groups of each member id (direct membership), by group id.
	GroupsOfMany(ctx context.Context, memberIDs []string) (map[string][]cache.Ref, error)
	// TransitiveGroupsOfMany returns, for each member id, every group reached through nested
	// groups too (cycle-safe), by group id.
	TransitiveGroupsOfMany(ctx context.Context, memberIDs []string) (map[string][]cache.Ref, error)
	// ModifiedSince calls fn with every id of typ modified after t.
	ModifiedSince(ctx context.Context, typ scim.ResourceType, t time.Time, fn func(id string) error) error
	// StreamGroup reads group gid (without members) and then streams its members, in id
	// order, from one snapshot; found is false when there is no such group. The API renders
	// big groups with it in constant memory (stream.go).
	StreamGroup(ctx context.Context, gid string, head func(*scim.Resource) error, member func(cache.MemberBytes) error) (found bool, err error)
	// Member returns member memberID of group gid with one key read; ok false when it is not
	// a direct member.
	Member(ctx context.Context, gid, memberID string) (m scim.Member, ok bool, err error)
}

// Server is the SCIM API. Create it with New; it is an http.Handler.
type Server struct {
	cfg   Config
	base  string // cfg.BaseURL without a trailing slash
	store Store
	log   *slog.Logger
	ids   *idSnapshots
	hot   *hotCache
	gin   *gin.Engine

	userLoc, groupLoc []byte // locPrefix of users and groups (render.go)

	observers []RequestObserver // observe.go

	inFlight chan struct{} // a slot per request being served (limits)
}

// Options are the optional parts of a Server.
type Options struct {
	// Log receives the server's messages; nil discards them.
	Log *slog.Logger
	// RequestObservers are told of every request once it is answered, in this order
	// (observe.go; metrics).
	RequestObservers []RequestObserver
}

// New builds the API over store. cfg must have passed Validate and ResolveTokens.
func New(cfg Config, store Store, opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, base: cfg.baseURL(), store: store, log: log.With("component", "scimapi"),
		ids: newIDSnapshots(store), hot: newHotCache(hotBytes), inFlight: make(chan struct{}, max(cfg.MaxConcurrentRequests, 1))}
	s.userLoc, s.groupLoc = s.locPrefix(scim.UserType), s.locPrefix(scim.GroupType)
	s.observers = slices.Clone(opts.RequestObservers)
	gin.SetMode(gin.ReleaseMode)
	s.gin = gin.New()
	s.gin.HandleMethodNotAllowed = false
	s.routes(s.gin)
	return s
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := canonicalPath(r.URL.Path); p != r.URL.Path {
		r.URL.Path, r.URL.RawPath = p, ""
	}
	s.gin.ServeHTTP(w, r)
}

const contentType = "application/scim+json"

// requestIDs number requests from a random start: unique within the process and not
// guessable across restarts, without a crypto/rand read per request.
var requestIDs = func() *atomic.Uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := new(atomic.Uint64)
	n.Store(binary.BigEndian.Uint64(b[:]))
	return n
}()

// withRequestID gives every request an id for the logs and for 5xx details, in the
// X-Request-Id response header (where requestID reads it back: no per-request map).
func withRequestID(c *gin.Context) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], requestIDs.Add(1))
	c.Writer.Header()["X-Request-Id"] = []string{hex.EncodeToString(b[:])}
}

func requestID(c *gin.Context) string { return c.Writer.Header().Get("X-Request-Id") }

// recovery turns a panic into a logged 500 instead of a dropped connection.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler { //nolint:errorlint // a sentinel value, never wrapped
				panic(p) // a stream aborted on purpose (stream.go): net/http drops the connection
			}
			s.writeError(c, fmt.Errorf("panic: %v", p))
		}
	}()
	c.Next()
}

// limits answers 503 beyond max_concurrent_requests requests at once, 414 for a request target
// longer than max_url_bytes and 413 for a body larger than max_request_bytes, and caps the body
// reader so a lying Content-Length cannot get past.
func (s *Server) limits(c *gin.Context) {
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	default:
		c.Header("Retry-After", "1")
		s.writeError(c, errorf(http.StatusServiceUnavailable, "", "more than %d requests at once; retry later", cap(s.inFlight)))
		return
	}
	if len(c.Request.RequestURI) > s.cfg.MaxURLBytes {
		s.writeError(c, errorf(http.StatusRequestURITooLong, "", "the request URL is longer than %d bytes; use POST .search", s.cfg.MaxURLBytes))
		return
	}
	if c.Request.ContentLength > s.cfg.MaxRequestBytes {
		s.writeError(c, errorf(http.StatusRequestEntityTooLarge, "", "the request body is larger than %d bytes", s.cfg.MaxRequestBytes))
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxRequestBytes)
	}
	c.Next()
}

// groupRef is one of a user's groups: direct, or (with [scim] groups = "transitive") reached
// through nested groups.
type groupRef struct {
	cache.Ref
	indirect bool
}

func (g groupRef) kind() string {
	if g.indirect {
		return "indirect"
	}
	return "direct"
}

// userGroups returns the groups each user's "groups" attribute lists, by group id.
func (s *Server) userGroups(ctx context.Context, ids []string) (map[string][]groupRef, error) {
	direct, err := s.store.GroupsOfMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]groupRef, len(direct))
	if s.cfg.Groups != GroupsTransitive {
		for id, refs := range direct {
			for _, g := range refs {
				out[id] = append(out[id], groupRef{Ref: g})
			}
		}
		return out, nil
	}
	all, err := s.store.TransitiveGroupsOfMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	for id, refs := range all {
		isDirect := map[string]bool{}
		for _, g := range direct[id] {
			isDirect[g.ID] = true
		}
		for _, g := range refs {
			out[id] = append(out[id], groupRef{Ref: g, indirect: !isDirect[g.ID]})
		}
	}
	return out, nil
}
