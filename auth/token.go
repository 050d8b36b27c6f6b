// Package auth checks who is asking: HS256 JSON Web Tokens, read from the
// places a browser or a client can send them, never from the URL. It is
// plain net/http; the handlers use it from Gin.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecret is the shortest secret a Verifier takes, in bytes: as long as
// the HMAC-SHA256 it keys.
const MinSecret = 32

// MaxLeeway is the most a Verifier lets a token's exp be in the past, for
// clocks that disagree a little.
const MaxLeeway = 5 * time.Second

// Why a token is refused. Each is an ErrInvalid.
var (
	ErrInvalid   = errors.New("auth: invalid token")
	ErrMissing   = errors.New("auth: no token")
	ErrMalformed = fmt.Errorf("%w: malformed", ErrInvalid)
	ErrSignature = fmt.Errorf("%w: bad signature", ErrInvalid)
	ErrAlgorithm = fmt.Errorf("%w: signed with another algorithm than HS256", ErrInvalid)
	ErrExpired   = fmt.Errorf("%w: expired", ErrInvalid)
	ErrNoExpiry  = fmt.Errorf("%w: no exp claim", ErrInvalid)
	ErrNoSubject = fmt.Errorf("%w: no sub claim", ErrInvalid)
)

// Identity is who a valid token names, and until when.
type Identity struct {
	Subject string
	Expires time.Time
}

// Verifier checks tokens signed with HS256 by its secret.
type Verifier struct {
	secret []byte
	leeway time.Duration
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for secret, which must be at least
// MinSecret bytes, that takes a token up to leeway (at most MaxLeeway)
// after its exp.
func NewVerifier(secret []byte, leeway time.Duration) (*Verifier, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("the secret is %d bytes; it must be at least %d", len(secret), MinSecret)
	}
	leeway = min(max(leeway, 0), MaxLeeway)
	return &Verifier{
		secret: secret,
		leeway: leeway,
		// The algorithm is pinned: a token whose header names another
		// one, "none" included, is refused before its signature is
		// looked at.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(leeway),
		),
	}, nil
}

// Leeway is how long after its exp a token still passes.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// Verify checks token and returns the identity it names. Its error is one
// of the Err values of this package.
func (v *Verifier) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrMissing
	}
	var claims jwt.RegisteredClaims
	parsed, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.secret, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Identity{}, ErrMalformed
	case parsed != nil && parsed.Header["alg"] != jwt.SigningMethodHS256.Alg():
		return Identity{}, ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Identity{}, ErrSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return Identity{}, ErrNoExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, ErrExpired
	default:
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if claims.Subject == "" {
		return Identity{}, ErrNoSubject
	}
	return Identity{Subject: claims.Subject, Expires: claims.ExpiresAt.Time}, nil
}

// Sign returns a token for subject that expires after ttl, signed with
// HS256 by secret: what `gin-sse-progress token` prints.
func Sign(secret []byte, subject string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecret {
		return "", fmt.Errorf("the secret is %d bytes; it must be at least %d", len(secret), MinSecret)
	}
	if subject == "" {
		return "", errors.New("the subject is empty")
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString(secret)
}
