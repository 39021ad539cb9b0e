package config

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// strong is a key that passes production's checks: 64 hex digits, as from
// `openssl rand -hex 32` (derived from seed, so that tests can compare it).
func strong(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// clearJWT unsets the key variables for the test (t.Setenv restores them after it).
func clearJWT(t *testing.T) {
	t.Helper()
	for _, k := range []string{"JWT_SECRETS", "JWT_SECRET"} {
		t.Setenv(k, "")
	}
}

// devEnv sets a minimal development environment for the test: a database URL,
// no JWT key (one is generated under a temporary DATA_DIR).
func devEnv(t *testing.T) {
	t.Helper()
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("APP_ENV", "development")
	clearJWT(t)
	t.Setenv("DATA_DIR", t.TempDir())
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
	t.Setenv("JWT_SECRET", strong("s"))
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
	t.Setenv("JWT_SECRET", strong("s"))
	c, err := Load()
	if err != nil || len(c.JWTKeys) != 1 || c.JWTKeys[0].ID != DefaultKeyID || string(c.JWTKeys[0].Secret) != strong("s") {
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
	newer, older := strong("n"), "o:"+strong("o") // a secret may hold ':'
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

// TestProductionRefusesGuessableJWTKeys: production refuses a key of 32 bytes or
// more that is still easy to guess, in JWT_SECRET and in JWT_SECRETS, without
// quoting it; development takes it; real random keys pass.
func TestProductionRefusesGuessableJWTKeys(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("DATA_DIR", t.TempDir())
	clearJWT(t)
	for name, secret := range map[string]string{
		"32 × a":                        strings.Repeat("a", 32),
		"abab…":                         strings.Repeat("ab", 32),
		"a repeated word":               strings.Repeat("password", 4),
		"a repeated longer phrase":      strings.Repeat("correct-horse!", 3),
		"a repeated random block":       strings.Repeat(strong("block")[:16], 4),
		"one odd byte out":              strings.Repeat("x", 63) + "y",
		"few distinct bytes, long":      strings.Repeat("0110100110010110", 2) + "1001011001101001" + "0110100110010110",
		"16 random bytes in hex":        strong("sixteen")[:32],
		"a repeated secret with a tail": strings.Repeat("s3cr3t", 6) + "s3",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("APP_ENV", "production")
			t.Setenv("JWT_SECRETS", "")
			t.Setenv("JWT_SECRET", secret)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), "JWT_SECRET is too easy to guess") || !strings.Contains(err.Error(), "openssl rand -hex 32") {
				t.Fatalf("JWT_SECRET: error %v", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error quotes the secret: %v", err)
			}
			t.Setenv("JWT_SECRET", "")
			t.Setenv("JWT_SECRETS", "new:"+strong("new")+",old:"+secret)
			if _, err := Load(); err == nil || !strings.Contains(err.Error(), `JWT_SECRETS: key "old" is too easy to guess`) ||
				strings.Contains(err.Error(), `"new"`) || strings.Contains(err.Error(), secret) {
				t.Fatalf("JWT_SECRETS: error %v", err)
			}
			t.Setenv("APP_ENV", "development")
			if _, err := Load(); err != nil {
				t.Fatalf("development: %v", err)
			}
		})
	}
	// Real random keys pass, however the dice fall.
	t.Setenv("APP_ENV", "production")
	t.Setenv("JWT_SECRETS", "")
	for i := 0; i < 1000; i++ {
		b := make([]byte, 32)
		rand.Read(b)
		for _, secret := range []string{hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), string(b)} {
			if strings.ContainsAny(secret, ",\x00") || strings.TrimSpace(secret) != secret {
				continue // an environment variable cannot carry it as it is
			}
			t.Setenv("JWT_SECRET", secret)
			if _, err := Load(); err != nil {
				distinct, bits := SecretStrength([]byte(secret))
				t.Fatalf("a random key (%d bytes, %d distinct, %.0f bits) refused: %v", len(secret), distinct, bits, err)
			}
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
	devEnv(t)
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

func TestRequestAdmissionLimits(t *testing.T) {
	devEnv(t)
	t.Setenv("MAIL_DRIVER", "")
	for _, k := range []string{"CLIENT_REQUESTS_PER_SECOND", "CLIENT_CONCURRENT_REQUESTS", "MAX_CONCURRENT_REQUESTS"} {
		t.Setenv(k, "")
	}
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientRequestsPerSecond != 50 || c.ClientConcurrentRequests != 16 || c.MaxConcurrentRequests != 256 {
		t.Fatalf("defaults = %d, %d, %d; want 50, 16, 256 (docs/configuration.md)", c.ClientRequestsPerSecond, c.ClientConcurrentRequests, c.MaxConcurrentRequests)
	}
	t.Setenv("CLIENT_REQUESTS_PER_SECOND", "0")
	t.Setenv("MAX_CONCURRENT_REQUESTS", " 1000 ")
	if c, err = Load(); err != nil || c.ClientRequestsPerSecond != 0 || c.MaxConcurrentRequests != 1000 || c.ClientConcurrentRequests != 16 {
		t.Fatalf("Load() = %+v, %v", c, err)
	}
	for _, bad := range []string{"-1", "ten", "1.5", "1000001"} {
		t.Setenv("CLIENT_CONCURRENT_REQUESTS", bad)
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "CLIENT_CONCURRENT_REQUESTS") {
			t.Errorf("CLIENT_CONCURRENT_REQUESTS=%q: err = %v, want one naming the variable", bad, err)
		}
	}
}

// TestStatementTimeout: DATABASE_STATEMENT_TIMEOUT is 5s unless set, 0 is
// none, and anything but 0 or 1ms to 30s is refused, naming the variable.
func TestStatementTimeout(t *testing.T) {
	devEnv(t)
	t.Setenv("MAIL_DRIVER", "")
	t.Setenv("DATABASE_STATEMENT_TIMEOUT", "")
	c, err := Load()
	if err != nil || c.DB.StatementTimeout != 5*time.Second {
		t.Fatalf("default: %v, %v; want 5s (docs/configuration.md)", c.DB.StatementTimeout, err)
	}
	for v, want := range map[string]time.Duration{"0": 0, " 800ms ": 800 * time.Millisecond, "30s": 30 * time.Second, "1ms": time.Millisecond} {
		t.Setenv("DATABASE_STATEMENT_TIMEOUT", v)
		if c, err = Load(); err != nil || c.DB.StatementTimeout != want {
			t.Errorf("DATABASE_STATEMENT_TIMEOUT=%q: %v, %v; want %v", v, c.DB.StatementTimeout, err, want)
		}
	}
	for _, bad := range []string{"5", "-1s", "ten", "31s", "1h", "500us", "0s5"} {
		t.Setenv("DATABASE_STATEMENT_TIMEOUT", bad)
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DATABASE_STATEMENT_TIMEOUT") {
			t.Errorf("DATABASE_STATEMENT_TIMEOUT=%q: err = %v, want one naming the variable", bad, err)
		}
	}
}

// TestOrganizationShare: ORG_CONCURRENT_SHARE is 0.25 and ORG_CONCURRENT_WAIT
// 1s unless set, 0 turns the share off, and a share outside 0 to 1 is
// refused, naming the variable.
func TestOrganizationShare(t *testing.T) {
	devEnv(t)
	t.Setenv("MAIL_DRIVER", "")
	t.Setenv("ORG_CONCURRENT_SHARE", "")
	t.Setenv("ORG_CONCURRENT_WAIT", "")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.OrgConcurrentShare != 0.25 || c.OrgConcurrentWait != time.Second {
		t.Fatalf("defaults = %v, %v; want 0.25, 1s (docs/configuration.md)", c.OrgConcurrentShare, c.OrgConcurrentWait)
	}
	t.Setenv("ORG_CONCURRENT_SHARE", "0")
	t.Setenv("ORG_CONCURRENT_WAIT", "250ms")
	if c, err = Load(); err != nil || c.OrgConcurrentShare != 0 || c.OrgConcurrentWait != 250*time.Millisecond {
		t.Fatalf("Load() = %+v, %v", c, err)
	}
	for _, bad := range []string{"-0.1", "1.5", "a quarter", "NaN"} {
		t.Setenv("ORG_CONCURRENT_SHARE", bad)
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "ORG_CONCURRENT_SHARE") {
			t.Errorf("ORG_CONCURRENT_SHARE=%q: err = %v, want one naming the variable", bad, err)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	devEnv(t)
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

// TestPprofIsForDevelopmentOnly: PPROF_ADDR is off by default, taken in
// development and refused in production.
func TestPprofIsForDevelopmentOnly(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("DATA_DIR", t.TempDir())
	clearJWT(t)
	t.Setenv("APP_ENV", "development")
	t.Setenv("PPROF_ADDR", "")
	if c, err := Load(); err != nil || c.PprofAddr != "" {
		t.Fatalf("default: %q, %v", c.PprofAddr, err)
	}
	t.Setenv("PPROF_ADDR", "127.0.0.1:6060")
	if c, err := Load(); err != nil || c.PprofAddr != "127.0.0.1:6060" {
		t.Fatalf("development: %q, %v", c.PprofAddr, err)
	}
	t.Setenv("APP_ENV", "production")
	t.Setenv("JWT_SECRET", strong("pprof"))
	t.Setenv("MAIL_DRIVER", "smtp")
	t.Setenv("SMTP_HOST", "smtp.example.test")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "PPROF_ADDR") {
		t.Fatalf("production with PPROF_ADDR: %v", err)
	}
}

// TestMetricsAddrIsOffUnlessSet: METRICS_ADDR is off by default and, unlike
// PPROF_ADDR, taken in production too.
func TestMetricsAddrIsOffUnlessSet(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("DATA_DIR", t.TempDir())
	clearJWT(t)
	t.Setenv("APP_ENV", "production")
	t.Setenv("JWT_SECRET", strong("metrics"))
	t.Setenv("MAIL_DRIVER", "smtp")
	t.Setenv("SMTP_HOST", "smtp.example.test")
	t.Setenv("METRICS_ADDR", "")
	if c, err := Load(); err != nil || c.MetricsAddr != "" {
		t.Fatalf("default: %q, %v", c.MetricsAddr, err)
	}
	t.Setenv("METRICS_ADDR", "127.0.0.1:9090")
	if c, err := Load(); err != nil || c.MetricsAddr != "127.0.0.1:9090" {
		t.Fatalf("production: %q, %v", c.MetricsAddr, err)
	}
}

// TestDirectURLDefaultsToDatabaseURL: the LISTEN connections go to
// DATABASE_DIRECT_URL when it is set (behind PgBouncer), to DATABASE_URL otherwise.
func TestDirectURLDefaultsToDatabaseURL(t *testing.T) {
	t.Setenv("APP_ENV", "development")
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("DATABASE_URL", "postgres://pgbouncer:6432/app")
	t.Setenv("DATABASE_DIRECT_URL", "")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.DirectURL() != "postgres://pgbouncer:6432/app" {
		t.Errorf("DirectURL() = %q, want DATABASE_URL", c.DirectURL())
	}
	t.Setenv("DATABASE_DIRECT_URL", "postgres://postgres:5432/app")
	if c, err = Load(); err != nil {
		t.Fatal(err)
	}
	if c.DirectURL() != "postgres://postgres:5432/app" || c.DatabaseURL != "postgres://pgbouncer:6432/app" {
		t.Errorf("DirectURL() = %q, DatabaseURL = %q", c.DirectURL(), c.DatabaseURL)
	}
	if got := (Config{DatabaseURL: "postgres://a"}).DirectURL(); got != "postgres://a" {
		t.Errorf("zero DatabaseDirectURL: DirectURL() = %q", got)
	}
}

// TestCORSDefaults: development without CORS_ALLOWED_ORIGINS allows any local
// port (the front end's development server); a list replaces that default;
// production allows only what it lists, nothing by default.
func TestCORSDefaults(t *testing.T) {
	for _, tc := range []struct {
		env, origins string
		want         []string
		anyLocal     bool
	}{
		{"development", "", nil, true},
		{"development", " ", nil, true},
		{"development", "https://app.example.com", []string{"https://app.example.com"}, false},
		{"production", "", nil, false},
		{"production", "https://a.example.com, https://b.example.com", []string{"https://a.example.com", "https://b.example.com"}, false},
	} {
		devEnv(t)
		t.Setenv("APP_ENV", tc.env)
		t.Setenv("JWT_SECRET", strong("cors"))
		t.Setenv("MAIL_DRIVER", "file")
		t.Setenv("CORS_ALLOWED_ORIGINS", tc.origins)
		c, err := Load()
		if err != nil {
			t.Fatalf("%s, %q: %v", tc.env, tc.origins, err)
		}
		if strings.Join(c.CORSOrigins, " ") != strings.Join(tc.want, " ") || c.CORSAnyLocalPort != tc.anyLocal {
			t.Errorf("%s, CORS_ALLOWED_ORIGINS=%q: origins %q, any local port %v; want %q, %v",
				tc.env, tc.origins, c.CORSOrigins, c.CORSAnyLocalPort, tc.want, tc.anyLocal)
		}
	}
}

// TestDatabaseMaxConnections: the pool has 20 connections unless
// DATABASE_MAX_CONNECTIONS says 1 to 1000; anything else is refused, naming
// the variable.
func TestDatabaseMaxConnections(t *testing.T) {
	devEnv(t)
	t.Setenv("MAIL_DRIVER", "")
	t.Setenv("DATABASE_MAX_CONNECTIONS", "")
	if c, err := Load(); err != nil || c.DB.MaxConns != 20 {
		t.Fatalf("default: %v, %v; want 20 (docs/configuration.md)", c.DB.MaxConns, err)
	}
	t.Setenv("DATABASE_MAX_CONNECTIONS", " 5 ")
	if c, err := Load(); err != nil || c.DB.MaxConns != 5 {
		t.Fatalf("DATABASE_MAX_CONNECTIONS=5: %v, %v", c.DB.MaxConns, err)
	}
	for _, bad := range []string{"0", "-1", "1001", "many"} {
		t.Setenv("DATABASE_MAX_CONNECTIONS", bad)
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DATABASE_MAX_CONNECTIONS") {
			t.Errorf("DATABASE_MAX_CONNECTIONS=%q: err = %v, want one naming the variable", bad, err)
		}
	}
}
