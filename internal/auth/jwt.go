package auth

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
)

const (
	issuer   = "tenantgraph"
	audience = "tenantgraph-api"
	// useAccess is the token-use claim of access tokens; no other token is accepted as one.
	useAccess = "access"
	// Leeway is the clock skew tolerated when verifying an access token's times.
	Leeway = 30 * time.Second
)

// accessClaims carry identity only (user and session), never roles.
type accessClaims struct {
	Use     string `json:"use"`
	Session string `json:"sid"`
	jwt.RegisteredClaims
}

// MinKeyBytes is the shortest HMAC key accepted.
const MinKeyBytes = 32

// Key is one HMAC key with the id that access tokens name in their `kid` header.
type Key struct {
	ID     string
	Secret []byte
}

var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// Tokens issues and verifies access tokens (HS256). The first key signs; every
// key verifies the tokens that name it. A token without a known kid is refused.
type Tokens struct {
	signing Key
	keys    map[string][]byte
	ttl     time.Duration
	now     func() time.Time
	// verified holds the tokens verified lately, each with its viewer and
	// expiry: a client sends the same token with every request, and parsing
	// and checking it again was 3-5% of a dashboard request's CPU. Only
	// tokens that verified get in, so a bad one costs its parse every time.
	verified *lru.Cache[string, verifiedToken]
}

// NewTokens returns a token issuer. keys[0] signs; all keys verify. Each key needs
// an id of 1-32 characters from [A-Za-z0-9._-], unique, and at least MinKeyBytes bytes.
func NewTokens(keys []Key, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(keys) == 0 {
		return nil, errors.New("JWT keys: none given")
	}
	verified, err := lru.New[string, verifiedToken](VerifiedTokens)
	if err != nil {
		return nil, err
	}
	t := &Tokens{signing: keys[0], keys: make(map[string][]byte, len(keys)), ttl: ttl, now: now, verified: verified}
	for _, k := range keys {
		if !keyID.MatchString(k.ID) {
			return nil, fmt.Errorf("JWT key id %q: want 1-32 characters from A-Z a-z 0-9 . _ -", k.ID)
		}
		if len(k.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("JWT key %q must be at least %d bytes, got %d", k.ID, MinKeyBytes, len(k.Secret))
		}
		if _, dup := t.keys[k.ID]; dup {
			return nil, fmt.Errorf("JWT key id %q is listed twice", k.ID)
		}
		t.keys[k.ID] = k.Secret
	}
	return t, nil
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
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = t.signing.ID
	s, err := tok.SignedString(t.signing.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// key finds the verification key named by the token's kid header.
func (t *Tokens) key(tok *jwt.Token) (any, error) {
	kid, ok := tok.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errors.New("no kid header")
	}
	secret, ok := t.keys[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return secret, nil
}

// Verify checks an access token and returns its viewer.
func (t *Tokens) Verify(token string) (Viewer, error) {
	v, _, err := t.VerifyUntil(token)
	return v, err
}

// VerifiedTokens is how many verified access tokens a process remembers.
const VerifiedTokens = 4096

type verifiedToken struct {
	viewer Viewer
	until  time.Time // its expiry plus Leeway
}

// VerifyUntil checks an access token and returns its viewer and when it
// expires (a websocket's subscriptions end then). A token verified before is
// only checked for its expiry: its signature, issuer, audience, use and
// not-before held then and still do (the keys are the process's).
func (t *Tokens) VerifyUntil(token string) (Viewer, time.Time, error) {
	if v, ok := t.verified.Get(token); ok {
		if !t.now().After(v.until) {
			return v.viewer, v.until, nil
		}
		t.verified.Remove(token)
	}
	var c accessClaims
	_, err := jwt.ParseWithClaims(token, &c, t.key,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(Leeway),
	)
	if err != nil {
		return Viewer{}, time.Time{}, fmt.Errorf("access token: %w", err)
	}
	if c.Use != useAccess {
		return Viewer{}, time.Time{}, errors.New("access token: wrong token use")
	}
	uid, err := uuid.Parse(c.Subject)
	if err != nil {
		return Viewer{}, time.Time{}, fmt.Errorf("access token: subject: %w", err)
	}
	sid, err := uuid.Parse(c.Session)
	if err != nil {
		return Viewer{}, time.Time{}, fmt.Errorf("access token: session: %w", err)
	}
	v := verifiedToken{viewer: Viewer{UserID: uid, SessionID: sid}, until: c.ExpiresAt.Time.Add(Leeway)}
	t.verified.Add(token, v)
	return v.viewer, v.until, nil
}
