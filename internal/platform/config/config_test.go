package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProductionRequiresAStrongJWTSecret(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "production")
	t.Setenv("JWT_SECRET", "")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "JWT_SECRET is required") {
		t.Fatalf("Load() error = %v", err)
	}
	t.Setenv("JWT_SECRET", "too-short")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("Load() error = %v", err)
	}
	t.Setenv("JWT_SECRET", strings.Repeat("s", 32))
	c, err := Load()
	if err != nil || !c.Production() {
		t.Fatalf("Load() = %+v, %v", c, err)
	}
}

func TestDevelopmentSecretIsGeneratedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "")
	t.Setenv("JWT_SECRET", "")
	t.Setenv("DATA_DIR", dir)
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.JWTSecret) < 32 || string(a.JWTSecret) != string(b.JWTSecret) {
		t.Fatalf("secrets %q and %q", a.JWTSecret, b.JWTSecret)
	}
	if st, err := os.Stat(filepath.Join(dir, "jwt-secret")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st, err)
	}
}

func TestDefaultsAndDurations(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("REFRESH_TOKEN_TTL", "7d")
	t.Setenv("ACCESS_TOKEN_TTL", "")
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
