package scimapi

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Streaming. A group can have a million members (about 170 MB of JSON; 200,000 measured 34.5 MB), so the API never holds a
// group's members: it renders a group up to "members", then renders its members straight from
// the cache (Store.StreamGroup, one snapshot with the group's version) into a buffer that goes
// to the client every flushAt bytes, then the rest. Memory is O(flushAt) whatever the group's
// size. Responses without a group's members fit in the buffer as before and are written at once.
//
// Errors mid-stream: once bytes have gone out, the status line is out too, and a SCIM error can
// no longer be sent. Appending one would make a body that a client might take for a complete
// answer with fewer members. So the API logs the error once and aborts the connection instead
// (panic(http.ErrAbortHandler): net/http closes it without the terminating chunk, HTTP/2 resets
// the stream), and every client sees a failed transfer, never a short member list. An error
// before anything was sent is an ordinary SCIM error response.

// flushAt is how many bytes the response buffer holds before they go to the client.
const flushAt = 64 << 10

// stream is a response body under way.
type stream struct {
	c    *gin.Context
	buf  []byte
	sent bool // the status line and some of the body are out
}

// streamBufs keeps response buffers between requests: a buffer was the biggest allocation of
// a filtered list (a lookup by userName).
var streamBufs = sync.Pool{New: func() any { return new([]byte) }}

func newStream(c *gin.Context, size int) *stream {
	buf := *streamBufs.Get().(*[]byte)
	if cap(buf) < size {
		buf = make([]byte, 0, max(size, 4096))
	}
	return &stream{c: c, buf: buf[:0]}
}

// release returns the buffer for another response; o is not used again.
func (o *stream) release() {
	if cap(o.buf) <= 2*flushAt {
		buf := o.buf[:0]
		streamBufs.Put(&buf)
	}
	o.buf = nil
}

// flush sends the buffer.
func (o *stream) flush() error {
	if !o.sent {
		o.c.Header("Content-Type", contentType)
		o.c.Status(http.StatusOK)
		o.sent = true
	}
	if len(o.buf) == 0 {
		return nil
	}
	_, err := o.c.Writer.Write(o.buf)
	o.buf = o.buf[:0]
	return err
}

// maybeFlush sends the buffer once it holds flushAt bytes, and flushes the connection too.
func (o *stream) maybeFlush() error {
	if len(o.buf) < flushAt {
		return nil
	}
	if err := o.flush(); err != nil {
		return err
	}
	o.c.Writer.Flush()
	return nil
}

// finish sends what is left; an error there is like any other mid-stream error.
func (s *Server) finish(o *stream) {
	if !o.sent {
		o.c.Data(http.StatusOK, contentType, o.buf) // written (or copied) before it returns
		o.release()
		return
	}
	if err := o.flush(); err != nil {
		s.abort(o, err)
	}
	o.release()
}

// fail answers err: a SCIM error while nothing is out, else an aborted connection.
func (s *Server) fail(o *stream, err error) {
	if !o.sent {
		s.writeError(o.c, err)
		return
	}
	s.abort(o, err)
}

// abort logs err once and drops the connection (see "Errors mid-stream" above).
func (s *Server) abort(o *stream, err error) {
	c := o.c
	lvl := s.log.Error
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || c.Request.Context().Err() != nil {
		lvl = s.log.Debug // the client went away
	}
	lvl("aborting a SCIM response mid-stream", "request_id", requestID(c),
		"method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	c.Abort()
	panic(http.ErrAbortHandler)
}

// errGone says a group vanished between matching and rendering.
var errGone = errors.New("group gone")

// streamGroup renders group id (r: as read before, or nil) with its members streamed from the store, as appendResource
// renders it with r.Members, into o. The group is rendered as StreamGroup reads it, so its
// version matches the members that follow; a group deleted since r was read is rendered as r,
// without members. head, when set, is called with the group first and can stop the rendering
// with an error, before anything of the group is written.
func (s *Server) streamGroup(ctx context.Context, o *stream, id string, r *scim.Resource, p *projection, head func(*scim.Resource) error) error {
	sl := p.want(scim.SchemaGroup, membersAttr)
	f := memberFieldsOf(sl)
	var g *scim.Resource
	n := 0
	found, err := s.store.StreamGroup(ctx, id, func(fresh *scim.Resource) error {
		if head != nil {
			if err := head(fresh); err != nil {
				return err
			}
		}
		g = fresh
		o.buf = s.appendHead(o.buf, g, nil, p)
		return nil
	}, func(m cache.MemberBytes) error {
		if n == 0 {
			o.buf = append(o.buf, `,"members":[`...)
		} else {
			o.buf = append(o.buf, ',')
		}
		n++
		o.buf = s.appendMemberBytes(o.buf, m, f)
		return o.maybeFlush()
	})
	if err != nil {
		return err
	}
	if !found {
		if r == nil {
			return errGone
		}
		g = r
		o.buf = s.appendHead(o.buf, g, nil, p)
	}
	if n > 0 {
		o.buf = append(o.buf, ']')
	}
	o.buf = s.appendTail(o.buf, g, p)
	return nil
}
