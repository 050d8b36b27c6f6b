package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var secret = []byte(strings.Repeat("s", MinSecret))

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestVerify(t *testing.T) {
	v, err := NewVerifier(secret, MaxLeeway)
	require.NoError(t, err)
	now := time.Now()
	good, err := Sign(secret, "alice", time.Hour, now)
	require.NoError(t, err)

	id, err := v.Verify(good)
	require.NoError(t, err)
	assert.Equal(t, "alice", id.Subject)
	assert.WithinDuration(t, now.Add(time.Hour), id.Expires, time.Second)

	exp := now.Add(time.Hour).Unix()
	// bob's claims under alice's signature.
	bob, err := Sign(secret, "bob", time.Hour, now)
	require.NoError(t, err)
	forged := bob[:strings.LastIndex(bob, ".")] + good[strings.LastIndex(good, "."):]
	for name, tc := range map[string]struct {
		token string
		want  error
	}{
		"empty":               {"", ErrMissing},
		"not a JWT":           {"abc", ErrMalformed},
		"three bad parts":     {"a.b.c", ErrMalformed},
		"another secret":      {sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), jwt.MapClaims{"sub": "a", "exp": exp}), ErrSignature},
		"another's signature": {forged, ErrSignature},
		"alg none":            {sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "a", "exp": exp}), ErrAlgorithm},
		"alg HS512":           {sign(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "a", "exp": exp}), ErrAlgorithm},
		"no exp":              {sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a"}), ErrNoExpiry},
		"expired":             {sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": now.Add(-time.Minute).Unix()}), ErrExpired},
		"no sub":              {sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}), ErrNoSubject},
		"empty sub":           {sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "", "exp": exp}), ErrNoSubject},
		"a sub that is a num": {sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": 7, "exp": exp}), ErrInvalid},
	} {
		_, err := v.Verify(tc.token)
		assert.ErrorIs(t, err, tc.want, name)
		if !errors.Is(tc.want, ErrMissing) {
			assert.ErrorIs(t, err, ErrInvalid, name)
		}
	}

	// Within the leeway, a token that has just expired still passes.
	recent := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": now.Add(-2 * time.Second).Unix()})
	_, err = v.Verify(recent)
	assert.NoError(t, err)
	assert.Equal(t, MaxLeeway, v.Leeway())
	strict, err := NewVerifier(secret, 0)
	require.NoError(t, err)
	_, err = strict.Verify(recent)
	assert.ErrorIs(t, err, ErrExpired, "no leeway")
	lax, err := NewVerifier(secret, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, MaxLeeway, lax.Leeway(), "the leeway is capped")
}

func TestSecretLength(t *testing.T) {
	_, err := NewVerifier(secret[:MinSecret-1], 0)
	assert.Error(t, err)
	_, err = Sign(secret[:MinSecret-1], "a", time.Hour, time.Now())
	assert.Error(t, err)
	_, err = Sign(secret, "", time.Hour, time.Now())
	assert.Error(t, err)
}

func TestFromRequest(t *testing.T) {
	req := func(query string, header http.Header, cookie string) *http.Request {
		r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/event/push?id=1"+query, nil)
		for k, v := range header {
			r.Header[k] = v
		}
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
		}
		return r
	}
	for name, tc := range map[string]struct {
		r     *http.Request
		token string
		from  Source
	}{
		"bearer first":        {req("", http.Header{"Authorization": {"Bearer b"}, "Token": {"h"}}, "c"), "b", Bearer},
		"bearer, any case":    {req("", http.Header{"Authorization": {"bearer b"}}, ""), "b", Bearer},
		"another scheme":      {req("", http.Header{"Authorization": {"Basic dTpw"}}, ""), "not a bearer token", Bearer},
		"the token header":    {req("", http.Header{"Token": {"h"}}, "c"), "h", Header},
		"the cookie":          {req("", nil, "c"), "c", Cookie},
		"nothing":             {req("", nil, ""), "", None},
		"never the query":     {req("&token=q&access_token=q&authorization=q", nil, ""), "", None},
		"the query loses too": {req("&token=q", http.Header{"Token": {"h"}}, ""), "h", Header},
	} {
		token, from := FromRequest(tc.r)
		assert.Equal(t, tc.token, token, name)
		assert.Equal(t, tc.from, from, name)
	}
}

func TestSessionCookie(t *testing.T) {
	r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/auth/session", nil)
	exp := time.Now().Add(time.Hour)
	c := SessionCookie(r, "tok", exp)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, c.SameSite)
	assert.Equal(t, "/", c.Path)
	assert.False(t, c.Secure, "plain HTTP")
	assert.Equal(t, exp, c.Expires)
	assert.Negative(t, ClearedCookie(r).MaxAge)

	r = httptest.NewRequestWithContext(t.Context(), http.MethodPost, "https://example.com/auth/session", nil)
	assert.True(t, SessionCookie(r, "tok", exp).Secure, "over TLS")
}
