package handlers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/auth"
	"gin-sse-progress/handlers"
	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

var testSecret = []byte(strings.Repeat("t", auth.MinSecret))

// token signs a token for sub that expires after ttl.
func token(t *testing.T, sub string, ttl time.Duration) string {
	t.Helper()
	s, err := auth.Sign(testSecret, sub, ttl, time.Now())
	require.NoError(t, err)
	return s
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
}

// authServer serves the HTTP surface on reg with -auth-secret.
func authServer(t *testing.T, reg sse.Registry, perSubject int, leeway time.Duration, tick time.Duration) *server {
	t.Helper()
	v, err := auth.NewVerifier(testSecret, leeway)
	require.NoError(t, err)
	r := handlers.New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, handlers.Options{
		Job:                  progressJob(t, tick),
		Retry:                ssetest.Config().Retry,
		Auth:                 v,
		MaxStreamsPerSubject: perSubject,
		AllowOrigins:         []string{"https://app.example"},
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	return &server{Server: srv, r: r}
}

func TestAuth(t *testing.T) {
	for name, newRegistry := range everyRegistry(t) {
		t.Run(name, func(t *testing.T) {
			cfg := ssetest.Config()
			t.Run("every route refuses a missing or bad token", func(t *testing.T) {
				testBadTokens(t, authServer(t, newRegistry(t, cfg), 16, auth.MaxLeeway, time.Hour))
			})
			t.Run("ids belong to their owner", func(t *testing.T) {
				testIDsBelongToTheirOwner(t, authServer(t, newRegistry(t, cfg), 16, auth.MaxLeeway, time.Millisecond))
			})
			t.Run("the session cookie and the token header", func(t *testing.T) {
				testSessionCookie(t, authServer(t, newRegistry(t, cfg), 16, auth.MaxLeeway, time.Millisecond))
			})
			t.Run("a stream ends when its token does", func(t *testing.T) {
				testStreamEndsWithToken(t, authServer(t, newRegistry(t, cfg), 16, 0, time.Hour))
			})
			t.Run("streams per subject", func(t *testing.T) {
				testStreamsPerSubject(t, authServer(t, newRegistry(t, cfg), 2, auth.MaxLeeway, time.Hour))
			})
		})
	}
}

func testBadTokens(t *testing.T, s *server) {
	now := time.Now()
	signed := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		require.NoError(t, err)
		return tok
	}
	exp := now.Add(time.Hour).Unix()
	bad := map[string]string{
		"malformed":             "not.a.jwt",
		"bad signature":         signed(jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), jwt.MapClaims{"sub": "a", "exp": exp}),
		"expired":               token(t, "a", -time.Minute),
		"not signed with HS256": signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "a", "exp": exp}),
		"no sub claim":          signed(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp}),
		"no exp claim":          signed(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "a"}),
	}
	good := token(t, "a", time.Hour)
	for _, route := range []struct{ method, path, body string }{
		{http.MethodGet, "/event/push?id=a", ""},
		{http.MethodPost, "/event/progress", `{"id":"a"}`},
		{http.MethodGet, "/event/remove?id=a", ""},
		{http.MethodPost, "/event/drop?id=a", ""},
	} {
		do := func(path string, header http.Header) reply {
			return s.do(t, route.method, path, strings.NewReader(route.body), header)
		}
		for _, tc := range []struct {
			name   string
			path   string
			header http.Header
		}{
			{"no token", route.path, jsonHeader()},
			{"a token in the query only", route.path + sep(route.path) + "token=" + good + "&access_token=" + good, jsonHeader()},
		} {
			resp := do(tc.path, tc.header)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s", route.path, tc.name)
			assert.Equal(t, `Bearer realm="gin-sse-progress"`, resp.Header.Get("WWW-Authenticate"), "%s %s", route.path, tc.name)
			assert.Contains(t, decode(t, resp)["error"], "a token is needed")
		}
		for why, tok := range bad {
			resp := do(route.path, bearer(tok))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s", route.path, why)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`, "%s %s", route.path, why)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), why, "%s %s", route.path, why)
			assert.Contains(t, decode(t, resp)["error"], why, route.path)
		}
		resp := do(route.path, http.Header{"Authorization": {"Basic dTpw"}, "Content-Type": {"application/json"}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s with Basic", route.path)
	}
	for _, path := range []string{"/healthz", "/", "/app.js"} {
		assert.Equal(t, http.StatusOK, s.do(t, http.MethodGet, path, nil, nil).StatusCode, "%s needs no token", path)
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// openAs opens client id's stream with tok.
func (s *server) openAs(t *testing.T, tok, id, last string) *stream {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + tok}}
	if last != "" {
		h.Set("Last-Event-ID", last)
	}
	return s.open(t, id, "", h)
}

func testIDsBelongToTheirOwner(t *testing.T, s *server) {
	alice, bob := token(t, "alice", time.Hour), token(t, "bob", time.Hour)
	aliceStream := s.openAs(t, alice, "shared", "")

	// To bob, alice's client does not exist: the same answers as for an
	// id nobody has.
	for _, id := range []string{"shared", "nobody"} {
		resp := s.do(t, http.MethodPost, "/event/progress", strings.NewReader(`{"id":"`+id+`"}`), bearer(bob))
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, id)
		assert.Equal(t, http.StatusNotFound, s.do(t, http.MethodGet, "/event/remove?id="+id, nil, bearer(bob)).StatusCode, id)
		assert.Equal(t, http.StatusNotFound, s.do(t, http.MethodPost, "/event/drop?id="+id, nil, bearer(bob)).StatusCode, id)
	}

	// bob's own "shared" is another client: opening it does not replace
	// alice's stream, and the two runs never cross.
	bobStream := s.openAs(t, bob, "shared", "")
	resp := s.do(t, http.MethodPost, "/event/progress", strings.NewReader(`{"id":"shared"}`), bearer(alice))
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, fullRun(), counts(t, "shared", aliceStream.Rest(t)))
	resp = s.do(t, http.MethodPost, "/event/progress", strings.NewReader(`{"id":"shared"}`), bearer(bob))
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	events := bobStream.Rest(t)
	assert.Equal(t, fullRun(), counts(t, "shared", events))
	assert.Equal(t, "1", events[0].ID, "bob's client has its own numbering")

	// A POST stream with a Bearer token, for a client new to its subject.
	post := s.postStream(t, "", `{"id":"mine"}`, streamHeader("Authorization", "Bearer "+bob))
	assert.Equal(t, fullRun(), counts(t, "mine", post.Rest(t)))
}

func testSessionCookie(t *testing.T, s *server) {
	tok := token(t, "alice", time.Hour)
	for _, header := range []http.Header{nil, {"Cookie": {auth.CookieName + "=" + tok}}, bearer("bad")} {
		resp := s.do(t, http.MethodPost, "/auth/session", nil, header)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a session needs a valid Bearer token")
	}
	assert.Equal(t, http.StatusUnauthorized, s.do(t, http.MethodGet, "/auth/session", nil, nil).StatusCode)
	resp := s.do(t, http.MethodPost, "/auth/session", nil, bearer(tok))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice", decode(t, resp)["subject"])
	cookies := (&http.Response{Header: resp.Header}).Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	assert.Equal(t, auth.CookieName, c.Name)
	assert.Equal(t, tok, c.Value)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, c.SameSite)
	assert.Equal(t, "/", c.Path)
	assert.False(t, c.Secure, "not over TLS")
	assert.WithinDuration(t, time.Now().Add(time.Hour), c.Expires, 2*time.Second, "it expires with the token")

	// The cookie alone opens a stream, as the browser's EventSource does,
	// and starts a run from the server's own page.
	cookie := http.Header{"Cookie": {c.Name + "=" + c.Value}, "Content-Type": {"application/json"}}
	st := s.open(t, "a", "", cookie)
	sameOrigin := cookie.Clone()
	sameOrigin.Set("Origin", s.URL)
	resp = s.do(t, http.MethodPost, "/event/progress", strings.NewReader(`{"id":"a"}`), sameOrigin)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, fullRun(), counts(t, "a", st.Rest(t)))

	// From another site's page, a request that changes state and carries
	// only the cookie is refused; from an allowed origin it is not.
	for _, h := range []http.Header{{"Origin": {"https://evil.example"}}, {"Sec-Fetch-Site": {"cross-site"}}, {"Sec-Fetch-Site": {"same-site"}}} {
		header := cookie.Clone()
		for k, v := range h {
			header[k] = v
		}
		for _, route := range []struct{ method, path, body string }{
			{http.MethodPost, "/event/progress", `{"id":"a"}`},
			{http.MethodGet, "/event/remove?id=a", ""},
			{http.MethodPost, "/event/drop?id=a", ""},
		} {
			resp := s.do(t, route.method, route.path, strings.NewReader(route.body), header)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s %v", route.path, h)
			assert.NotEmpty(t, decode(t, resp)["error"])
		}
	}
	allowed := cookie.Clone()
	allowed.Set("Origin", "https://app.example")
	allowed.Set("Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusOK, s.do(t, http.MethodGet, "/event/remove?id=a", nil, allowed).StatusCode)
	evilBearer := bearer(tok)
	evilBearer.Set("Origin", "https://evil.example")
	assert.Equal(t, http.StatusNotFound, s.do(t, http.MethodGet, "/event/remove?id=a", nil, evilBearer).StatusCode,
		"a Bearer token is no cookie: no browser sends it on its own")

	info := decode(t, s.do(t, http.MethodGet, "/auth/session", nil, cookie))
	assert.Equal(t, map[string]any{"auth": "on", "subject": "alice", "expires": c.Expires.UTC().Format(time.RFC3339)}, info)

	// The token header, as event-source-polyfill sends it.
	s.open(t, "b", "", http.Header{"Token": {tok}})

	resp = s.do(t, http.MethodDelete, "/auth/session", nil, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	cleared := (&http.Response{Header: resp.Header}).Cookies()
	require.Len(t, cleared, 1)
	assert.Equal(t, auth.CookieName, cleared[0].Name)
	assert.Negative(t, cleared[0].MaxAge, "the cookie is deleted")
}

func testStreamEndsWithToken(t *testing.T, s *server) {
	tok := token(t, "alice", time.Second)
	st := s.openAs(t, tok, "a", "")
	began := time.Now()
	assert.Empty(t, st.Rest(t), "the stream ends, without close")
	assert.Less(t, time.Since(began), 3*time.Second, "no later than the token's exp")

	// The reconnect with the expired token is refused; a fresh token
	// resumes.
	resp := s.do(t, http.MethodGet, "/event/push?id=a", nil, bearer(tok))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "expired")
	s.openAs(t, token(t, "alice", time.Hour), "a", "")
}

func testStreamsPerSubject(t *testing.T, s *server) {
	alice := token(t, "alice", time.Hour)
	first := s.openAs(t, alice, "a", "")
	s.openAs(t, alice, "b", "")
	resp := s.do(t, http.MethodGet, "/event/push?id=c", nil, bearer(alice))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.NotEmpty(t, decode(t, resp)["error"])
	resp = s.do(t, http.MethodPost, "/event/progress", strings.NewReader(`{"id":"c"}`), streamHeader("Authorization", "Bearer "+alice))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a POST stream counts too")

	s.openAs(t, token(t, "bob", time.Hour), "a", "") // another subject has room
	first.Drop()
	require.Eventually(t, func() bool {
		resp := s.post(t, "", `{"id":"c"}`, streamHeader("Authorization", "Bearer "+alice))
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond, "a stream that ends frees its place")
}
