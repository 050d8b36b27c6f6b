package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"gin-sse-progress/auth"
	"gin-sse-progress/sse"
)

// requester is who made a request, as authenticate found it.
type requester struct {
	auth.Identity
	fromCookie bool
	leeway     time.Duration // how long after Expires its token still passes
}

type requesterKey struct{}

// requesterOf returns who made the request; the zero requester when
// authentication is off.
func requesterOf(c *gin.Context) requester {
	r, _ := c.Request.Context().Value(requesterKey{}).(requester)
	return r
}

// clientKey is the registry's name for client id of the requester: ids
// belong to their owner, so alice's "shared" and bob's "shared" are two
// clients. The subject's length goes first, so that no two (subject, id)
// pairs give one key. Without authentication it is the id itself.
func clientKey(c *gin.Context, id string) string {
	sub := requesterOf(c).Subject
	if sub == "" {
		return id
	}
	return strconv.Itoa(len(sub)) + ":" + sub + ":" + id
}

// idOfKey returns the client id of a registry key that clientKey made, with
// a subject if withAuth.
func idOfKey(key string, withAuth bool) string {
	if !withAuth {
		return key
	}
	n, rest, ok := strings.Cut(key, ":")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l < 0 || l+1 > len(rest) {
		return key // not a key of clientKey's
	}
	return rest[l+1:]
}

// Resume returns the job that goes on with a run that moved to this
// instance from one that went away (sseredis.Options.Resume): job, for the
// client id of the registry's key. withAuth says whether keys name a
// subject (Options.Auth).
func Resume(job func(id string) sse.RunFunc, withAuth bool) func(key string) sse.RunFunc {
	return func(key string) sse.RunFunc { return job(idOfKey(key, withAuth)) }
}

// authenticate lets through a request with a valid token (see
// auth.FromRequest for where it may be) and answers any other with 401.
func authenticate(v *auth.Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, from := auth.FromRequest(c.Request)
		id, err := v.Verify(token)
		if err != nil {
			unauthorized(c, err)
			return
		}
		r := requester{Identity: id, fromCookie: from == auth.Cookie, leeway: v.Leeway()}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requesterKey{}, r))
	}
}

// unauthorized answers 401 with the WWW-Authenticate header of RFC 6750: no
// error code for a request without a token, invalid_token for one whose
// token is refused.
func unauthorized(c *gin.Context, err error) {
	challenge := `Bearer realm="gin-sse-progress"`
	msg := "a token is needed: Authorization: Bearer <token>, a token header, or the session cookie of POST /auth/session"
	if !errors.Is(err, auth.ErrMissing) {
		challenge += `, error="invalid_token", error_description="` + reason(err) + `"`
		msg = "the token is refused: " + reason(err)
	}
	c.Header("WWW-Authenticate", challenge)
	abortJSON(c, http.StatusUnauthorized, msg)
}

// reason says why a token is refused, in a few words.
func reason(err error) string {
	for _, r := range []struct {
		err  error
		text string
	}{
		{auth.ErrMalformed, "malformed"},
		{auth.ErrSignature, "bad signature"},
		{auth.ErrAlgorithm, "not signed with HS256"},
		{auth.ErrExpired, "expired"},
		{auth.ErrNoExpiry, "no exp claim"},
		{auth.ErrNoSubject, "no sub claim"},
	} {
		if errors.Is(err, r.err) {
			return r.text
		}
	}
	return "invalid"
}

// createSession sets the session cookie for the Bearer token of POST
// /auth/session, for the browser's EventSource, which sends cookies and
// nothing else. The cookie expires with the token.
func createSession(v *auth.Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, from := auth.FromRequest(c.Request)
		if from != auth.Bearer {
			token = ""
		}
		id, err := v.Verify(token)
		if err != nil {
			unauthorized(c, err)
			return
		}
		http.SetCookie(c.Writer, auth.SessionCookie(c.Request, token, id.Expires))
		c.JSON(http.StatusOK, gin.H{"subject": id.Subject, "expires": id.Expires.UTC().Format(time.RFC3339)})
	}
}

// session says whether the server wants a token, and who the request's
// token names: GET /auth/session answers {"auth": "off"} without
// -auth-secret; with it, {"auth": "on", "subject": ..., "expires": ...} for
// a valid token (the cookie, say), or 401 as any /event/ route would. The
// page asks it before it opens a stream.
func session(v *auth.Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		if v == nil {
			c.JSON(http.StatusOK, gin.H{"auth": "off"})
			return
		}
		token, _ := auth.FromRequest(c.Request)
		id, err := v.Verify(token)
		if err != nil {
			unauthorized(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"auth": "on", "subject": id.Subject, "expires": id.Expires.UTC().Format(time.RFC3339)})
	}
}

// deleteSession clears the session cookie: DELETE /auth/session.
func deleteSession(c *gin.Context) {
	http.SetCookie(c.Writer, auth.ClearedCookie(c.Request))
	c.Status(http.StatusNoContent)
}

// sameOriginForCookies refuses, with 403, a request that changes state,
// carries only the session cookie, and comes from a page of another origin
// than the server's own or an allowed one: a guard against cross-site
// requests on top of the cookie's SameSite=Strict. Browsers say where a
// request comes from in Sec-Fetch-Site, and in Origin; a client that sends
// neither (curl) is not a browser, and is let through.
func sameOriginForCookies(allowed []string) gin.HandlerFunc {
	allow := make(map[string]bool, len(allowed))
	for _, origin := range allowed {
		allow[origin] = true
	}
	return func(c *gin.Context) {
		if !requesterOf(c).fromCookie {
			return
		}
		origin := c.GetHeader("Origin")
		if allow[origin] {
			return
		}
		switch c.GetHeader("Sec-Fetch-Site") {
		case "same-origin", "none":
			return
		case "":
			scheme := "http"
			if c.Request.TLS != nil {
				scheme = "https"
			}
			if origin == "" || origin == scheme+"://"+c.Request.Host {
				return
			}
		}
		abortJSON(c, http.StatusForbidden, "a request that carries the session cookie must come from this server's page or an -allow-origin one")
	}
}

// subjectLimit counts the open streams of each subject on this instance.
type subjectLimit struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newSubjectLimit(maxStreams int) *subjectLimit {
	return &subjectLimit{max: maxStreams, open: make(map[string]int)}
}

// acquire counts a stream of subject, if it has room: release uncounts it.
// Without authentication (subject "") nothing is counted.
func (l *subjectLimit) acquire(subject string) (release func(), ok bool) {
	if subject == "" || l.max <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[subject] >= l.max {
		return nil, false
	}
	l.open[subject]++
	return sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.open[subject]--; l.open[subject] == 0 {
			delete(l.open, subject)
		}
	}), true
}

// tooManyForSubject answers a stream over the subject's limit: 429.
func tooManyForSubject(c *gin.Context, l *subjectLimit, retry time.Duration) {
	retryAfter(c, retry)
	abortJSON(c, http.StatusTooManyRequests, fmt.Sprintf("this subject has %d streams open, the most it may; close one", l.max))
}
