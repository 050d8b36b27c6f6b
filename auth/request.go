package auth

import (
	"net/http"
	"strings"
	"time"
)

// CookieName is the session cookie that POST /auth/session sets, for the
// browser's EventSource, which sends cookies and no other credential.
const CookieName = "sse_session"

// Source says where a request's token came from.
type Source int

// Where a token may come from, in the order FromRequest looks.
const (
	None   Source = iota
	Bearer        // Authorization: Bearer <token>: fetch, fetch-event-source, curl
	Header        // token: <token>: event-source-polyfill's headers option
	Cookie        // the session cookie: the browser's own EventSource
)

// FromRequest returns the token of r and where it came from: the
// Authorization header's Bearer token, else a token header, else the
// session cookie. The URL is never looked at: a token there would end up
// in access logs and proxies' logs, so a request whose only token is in
// its query is one with no token. An Authorization header of another
// scheme gives a token that Verify finds malformed.
func FromRequest(r *http.Request) (string, Source) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "not a bearer token", Bearer
		}
		return strings.TrimSpace(token), Bearer
	}
	if token := r.Header.Get("token"); token != "" {
		return token, Header
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value, Cookie
	}
	return "", None
}

// SessionCookie returns the cookie that carries token until it expires:
// HttpOnly, so that no script reads it; SameSite=Strict, so that no other
// site's page sends it; Secure when the request came over TLS.
func SessionCookie(r *http.Request, token string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name:     CookieName,
		Value:    token,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
}

// ClearedCookie returns a cookie that deletes the session cookie.
func ClearedCookie(r *http.Request) *http.Cookie {
	c := SessionCookie(r, "", time.Unix(0, 0))
	c.MaxAge = -1
	return c
}
