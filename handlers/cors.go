package handlers

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// cors lets the pages of the allowed origins use the API from the browser,
// cookies included (EventSource's withCredentials, fetch's credentials:
// "include"). With credentials the answer must name the origin: "*" is
// not allowed there, and is never sent.
//
// A request from another origin gets no CORS headers, so the browser keeps
// the answer from its page; a preflight from it is refused with 403. The
// server's own page is same-origin and needs none of this. Same-origin POSTs
// also carry an Origin header, and a proxy may rewrite Host, so requests
// are never refused for their Origin alone: the browser enforces CORS, and
// the JSON Content-Type that POST /event/progress requires makes every
// cross-origin POST go through a preflight first.
func cors(allowed []string) gin.HandlerFunc {
	allow := make(map[string]bool, len(allowed))
	for _, origin := range allowed {
		allow[origin] = true
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" {
			return
		}
		h := c.Writer.Header()
		// The answer depends on the Origin: caches must keep one per origin.
		h.Add("Vary", "Origin")
		preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
		if !allow[origin] {
			if preflight {
				abortJSON(c, http.StatusForbidden, "origin "+strings.ToValidUTF8(origin, "?")+" is not allowed; see -allow-origin")
			}
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			// Content-Type for the JSON POST; Last-Event-ID for a stream
			// that reconnects; Authorization and token for a token
			// (Accept with text/event-stream needs no preflight).
			h.Set("Access-Control-Allow-Headers", "Content-Type, Last-Event-ID, Authorization, Token")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
		}
	}
}
