package scimapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// authenticate accepts `Authorization: Bearer <token>` when the token's SHA-256 equals a
// configured hash. Every configured hash is compared, in constant time, whatever matched
// before, so timing says nothing about which or how much matched. Tokens are never logged.
func (s *Server) authenticate(c *gin.Context) {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		s.writeError(c, errorf(http.StatusUnauthorized, "", "a bearer token is required"))
		return
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := -1
	for i := range s.cfg.Tokens {
		if subtle.ConstantTimeCompare(sum[:], s.cfg.Tokens[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		s.writeError(c, errorf(http.StatusUnauthorized, "", "the bearer token is not valid"))
		return
	}
	c.Next()
}
