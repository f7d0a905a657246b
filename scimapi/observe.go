package scimapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// RequestObserver is told of every request once it is answered: the matched route pattern
// (e.g. "/scim/v2/Users/:id"; "" when no route matched, so ids and paths never appear), the
// method (one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, else "other": the server answers
// any method token, before authentication, so it must not reach a label as sent), the status
// and the time it took. It runs on the request's goroutine.
type RequestObserver func(route, method string, status int, d time.Duration)

// observe is the outermost middleware: it sees every answer, also recovered panics and limits.
func (s *Server) observe(c *gin.Context) {
	if len(s.observers) == 0 {
		c.Next()
		return
	}
	start := time.Now()
	c.Next()
	d := time.Since(start)
	for _, o := range s.observers {
		o(c.FullPath(), observedMethod(c.Request.Method), c.Writer.Status(), d)
	}
}

// observedMethod maps a request method to a fixed set: a known method, else "other".
func observedMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
