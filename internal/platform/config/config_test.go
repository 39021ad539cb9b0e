package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clearJWT unsets the key variables for the test (t.Setenv restores them after it).
func clearJWT(t *testing.T) {
	t.Helper()
	for _, k := range []string{"JWT_SECRETS", "JWT_SECRET"} {
		t.Setenv(k, "")
	}
}

func TestProductionIsTheDefaultAndNeedsAKey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("DATA_DIR", dir)
	t.Setenv("APP_ENV", "")
	clearJWT(t)
	_, err := Load()
	if err == nil {
		t.Fatal("Load() with no APP_ENV and no key succeeded")
	}
	for _, want := range []string{"APP_ENV is not set", "production", "JWT_SECRETS", "JWT_SECRET ", "APP_ENV=development"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !os.IsNotExist(err) {
		t.Fatalf("production wrote a generated secret: %v", err)
	}
	t.Setenv("APP_ENV", "production")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "production needs one") || strings.Contains(err.Error(), "APP_ENV is not set") {
		t.Fatalf("Load() error = %v", err)
	}
	t.Setenv("APP_ENV", "")
	t.Setenv("JWT_SECRET", strings.Repeat("s", 32))
	c, err := Load()
	if err != nil || !c.Production() || c.Env != "production" {
		t.Fatalf("Load() = %+v, %v", c, err)
	}
	t.Setenv("APP_ENV", "staging")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "APP_ENV must be development or production") {
		t.Fatalf("Load() error = %v", err)
	}
}

func TestJWTSecretIsOneKeyOfAtLeast32Bytes(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "production")
	clearJWT(t)
	t.Setenv("JWT_SECRET", "too-short")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "JWT_SECRET must be at least 32 bytes, got 9") {
		t.Fatalf("Load() error = %v", err)
	}
	t.Setenv("JWT_SECRET", strings.Repeat("s", 32))
	c, err := Load()
	if err != nil || len(c.JWTKeys) != 1 || c.JWTKeys[0].ID != DefaultKeyID || string(c.JWTKeys[0].Secret) != strings.Repeat("s", 32) {
		t.Fatalf("Load() = %+v, %v", c.JWTKeys, err)
	}
	t.Setenv("JWT_SECRETS", "a:"+strings.Repeat("t", 32))
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("Load() with both variables: %v", err)
	}
}

func TestJWTSecretsListsKeysFirstSigns(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "production")
	clearJWT(t)
	newer, older := strings.Repeat("n", 32), "o:"+strings.Repeat("o", 40) // a secret may hold ':'
	t.Setenv("JWT_SECRETS", " 2026-11:"+newer+" , 2026.05_b:"+older+",")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.JWTKeys) != 2 || c.JWTKeys[0].ID != "2026-11" || string(c.JWTKeys[0].Secret) != newer ||
		c.JWTKeys[1].ID != "2026.05_b" || string(c.JWTKeys[1].Secret) != older {
		t.Fatalf("JWTKeys = %q", c.JWTKeys)
	}
	secret := strings.Repeat("x", 32)
	for list, want := range map[string]string{
		secret:                                  "entry 1: want <id>:<secret>",
		"a:" + secret + ",b:short":              `key "b" must be at least 32 bytes, got 5`,
		"a:" + secret + ",a:" + secret:          `key id "a" is listed twice`,
		"a b:" + secret:                         "entry 1: the id before ':' must be",
		":" + secret:                            "entry 1: the id before ':' must be",
		strings.Repeat("i", 33) + ":" + secret:  "entry 1: the id before ':' must be",
		" , ,":                                  "JWT_SECRETS lists no key",
		"a:" + secret + ",not-a-pair-" + secret: "entry 2: want <id>:<secret>",
	} {
		t.Setenv("JWT_SECRETS", list)
		_, err := Load()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("JWT_SECRETS=%q: error %v, want %q", list, err, want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("JWT_SECRETS=%q: the error quotes a secret: %v", list, err)
		}
	}
}

func TestDevelopmentSecretIsGeneratedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "development")
	clearJWT(t)
	t.Setenv("DATA_DIR", dir)
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if a.Production() || len(a.JWTKeys) != 1 || a.JWTKeys[0].ID != DefaultKeyID || len(a.JWTKeys[0].Secret) < 32 ||
		string(a.JWTKeys[0].Secret) != string(b.JWTKeys[0].Secret) {
		t.Fatalf("keys %q and %q", a.JWTKeys, b.JWTKeys)
	}
	if st, err := os.Stat(filepath.Join(dir, "jwt-secret")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st, err)
	}
	// Keys given explicitly win in development too.
	t.Setenv("JWT_SECRETS", "mine:"+strings.Repeat("m", 32))
	if c, err := Load(); err != nil || len(c.JWTKeys) != 1 || c.JWTKeys[0].ID != "mine" {
		t.Fatalf("Load() = %q, %v", c.JWTKeys, err)
	}
}

func TestDefaultsAndDurations(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "development")
	clearJWT(t)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("REFRESH_TOKEN_TTL", "7d")
	t.Setenv("ACCESS_TOKEN_TTL", "")
	t.Setenv("MAIL_DRIVER", "")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.AccessTokenTTL != 15*time.Minute || c.RefreshTokenTTL != 7*24*time.Hour || c.MailDriver != "console" {
		t.Fatalf("config = %+v", c)
	}
	t.Setenv("ACCESS_TOKEN_TTL", "soon")
	if _, err := Load(); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "development")
	clearJWT(t)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("TRUSTED_PROXY_CIDRS", "10.0.0.0/8, 192.168.1.7, fd00::/8")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TrustedProxies) != 3 || c.TrustedProxies[1].String() != "192.168.1.7/32" {
		t.Fatalf("TrustedProxies = %v", c.TrustedProxies)
	}
	t.Setenv("TRUSTED_PROXY_CIDRS", "not-an-ip")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXY_CIDRS") {
		t.Fatalf("Load() error = %v", err)
	}
}
