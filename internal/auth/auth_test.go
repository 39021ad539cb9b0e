package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func TestDefaultHashIsArgon2idPHCWithOWASPParameters(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(DefaultArgon2)
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id m=19456,t=2,p=1 in PHC form", enc)
	}
	if ok, err := h.Verify(ctx, enc, "correct horse"); err != nil || !ok {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	if ok, _ := h.Verify(ctx, enc, "correct horsE"); ok {
		t.Fatal("Verify(wrong) = true")
	}
	// A hash made with other parameters still verifies: they travel in the string.
	weak := NewHasher(Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	old, _ := weak.Hash(ctx, "pw-12345678")
	if ok, err := h.Verify(ctx, old, "pw-12345678"); err != nil || !ok {
		t.Fatalf("Verify(hash with other params) = %v, %v", ok, err)
	}
}

func TestAccessTokenRoundTripAndExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	tk, err := NewTokens([]Key{{ID: "k1", Secret: []byte(strings.Repeat("k", 32))}}, 15*time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	u, s := uuid.New(), uuid.New()
	tok, exp, err := tk.Issue(u, s)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Sub(now) > 15*time.Minute || exp.Sub(now) < 14*time.Minute {
		t.Fatalf("expiry %v", exp.Sub(now))
	}
	v, err := tk.Verify(tok)
	if err != nil || v.UserID != u || v.SessionID != s {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	now = now.Add(16 * time.Minute)
	if _, err := tk.Verify(tok); err == nil {
		t.Fatal("expired token accepted")
	}
}

func TestNewTokensRefusesBadKeys(t *testing.T) {
	good := []byte(strings.Repeat("k", 32))
	for name, keys := range map[string][]Key{
		"none":         nil,
		"short secret": {{ID: "a", Secret: []byte(strings.Repeat("k", 31))}},
		"empty id":     {{ID: "", Secret: good}},
		"bad id":       {{ID: "a b", Secret: good}},
		"long id":      {{ID: strings.Repeat("a", 33), Secret: good}},
		"duplicate id": {{ID: "a", Secret: good}, {ID: "a", Secret: []byte(strings.Repeat("j", 32))}},
	} {
		if _, err := NewTokens(keys, time.Minute, time.Now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Rotation: the first key signs and every token names its key in the kid header;
// every listed key verifies; a token naming no key, or a key no longer listed, is refused.
func TestAccessTokensNameTheirKey(t *testing.T) {
	oldKey := Key{ID: "2026-05", Secret: []byte(strings.Repeat("o", 32))}
	newKey := Key{ID: "2026-11", Secret: []byte(strings.Repeat("n", 32))}
	before, _ := NewTokens([]Key{oldKey}, time.Minute, time.Now)
	during, _ := NewTokens([]Key{newKey, oldKey}, time.Minute, time.Now)
	after, _ := NewTokens([]Key{newKey}, time.Minute, time.Now)
	u, s := uuid.New(), uuid.New()
	oldTok, _, err := before.Issue(u, s)
	if err != nil {
		t.Fatal(err)
	}
	newTok, _, err := during.Issue(u, s)
	if err != nil {
		t.Fatal(err)
	}
	kid := func(tok string) any {
		p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Header["kid"]
	}
	if kid(oldTok) != "2026-05" || kid(newTok) != "2026-11" {
		t.Fatalf("kid headers %v and %v", kid(oldTok), kid(newTok))
	}
	for name, c := range map[string]struct {
		tk   *Tokens
		tok  string
		want bool
	}{
		"old token, old key only":    {before, oldTok, true},
		"old token, both keys":       {during, oldTok, true},
		"new token, both keys":       {during, newTok, true},
		"new token, new key only":    {after, newTok, true},
		"old token, old key removed": {after, oldTok, false},
		"new token, before rotation": {before, newTok, false},
	} {
		if _, err := c.tk.Verify(c.tok); (err == nil) != c.want {
			t.Errorf("%s: Verify error = %v, want accepted %v", name, err, c.want)
		}
	}
	// Signed with a listed key but naming another (or none): refused.
	claims := accessClaims{Use: useAccess, Session: s.String(), RegisteredClaims: jwt.RegisteredClaims{
		Issuer: issuer, Subject: u.String(), Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
	for name, header := range map[string]any{"no kid": nil, "unknown kid": "2025-01", "other key's kid": "2026-05", "numeric kid": 7} {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		if header != nil {
			tok.Header["kid"] = header
		}
		signed, err := tok.SignedString(newKey.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := during.Verify(signed); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The control: the same claims with the right kid pass.
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = "2026-11"
	signed, _ := tok.SignedString(newKey.Secret)
	if _, err := during.Verify(signed); err != nil {
		t.Fatalf("right kid refused: %v", err)
	}
}

// BenchmarkHashDefault is the cost of one password hash (register, login, reset)
// with the production parameters. Goal: 20-100 ms on the reference machine: slow
// for an attacker, fast enough for a login. Measured: 41 ms, 19 MiB.
func BenchmarkHashDefault(b *testing.B) {
	h := NewHasher(DefaultArgon2)
	for b.Loop() {
		if _, err := h.Hash(context.Background(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHashingWaitsForASlotThenGivesUp(t *testing.T) {
	ctx := context.Background()
	h := NewHasherLimited(Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1, 50*time.Millisecond)
	enc, err := h.Hash(ctx, "pw-12345678")
	if err != nil {
		t.Fatal(err)
	}
	// Every slot taken (as by a hash that is running): callers give up, they do not queue.
	if err := h.sem.Acquire(ctx, 1); err != nil {
		t.Fatal(err)
	}
	before := h.Computations()
	if _, err := h.Hash(ctx, "pw-12345678"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with no free slot: %v, want ErrBusy", err)
	}
	if _, err := h.Verify(ctx, enc, "pw-12345678"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify with no free slot: %v, want ErrBusy", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.VerifyDummy(gone, "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("VerifyDummy with an ended context: %v, want ErrBusy", err)
	}
	if h.Computations() != before {
		t.Fatal("a refused call computed a hash")
	}
	// The slot comes back: a waiting caller gets it.
	time.AfterFunc(10*time.Millisecond, func() { h.sem.Release(1) })
	if ok, err := h.Verify(ctx, enc, "pw-12345678"); err != nil || !ok {
		t.Fatalf("Verify after the slot was released = %v, %v", ok, err)
	}
	if DefaultHashConcurrency() < 1 {
		t.Fatal("DefaultHashConcurrency below 1")
	}
}
