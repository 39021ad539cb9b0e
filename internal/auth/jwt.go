package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	issuer   = "tenantgraph"
	audience = "tenantgraph-api"
	// useAccess is the token-use claim of access tokens; no other token is accepted as one.
	useAccess = "access"
)

// accessClaims carry identity only (user and session), never roles.
type accessClaims struct {
	Use     string `json:"use"`
	Session string `json:"sid"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies access tokens (HS256).
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens returns a token issuer; secret must be at least 32 bytes.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, errors.New("JWT secret must be at least 32 bytes")
	}
	return &Tokens{secret: secret, ttl: ttl, now: now}, nil
}

// Issue returns an access token for user in session, and its expiry.
func (t *Tokens) Issue(user, session uuid.UUID) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl).Truncate(time.Second)
	c := accessClaims{
		Use:     useAccess,
		Session: session.String(),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   user.String(),
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        uuid.NewString(),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// Verify checks an access token and returns its viewer.
func (t *Tokens) Verify(token string) (Viewer, error) {
	var c accessClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		return Viewer{}, fmt.Errorf("access token: %w", err)
	}
	if c.Use != useAccess {
		return Viewer{}, errors.New("access token: wrong token use")
	}
	uid, err := uuid.Parse(c.Subject)
	if err != nil {
		return Viewer{}, fmt.Errorf("access token: subject: %w", err)
	}
	sid, err := uuid.Parse(c.Session)
	if err != nil {
		return Viewer{}, fmt.Errorf("access token: session: %w", err)
	}
	return Viewer{UserID: uid, SessionID: sid}, nil
}
