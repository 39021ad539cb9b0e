// Package config reads the server's configuration from the environment.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tenantgraph/internal/platform/db"
)

// Config is every setting the server reads. docs/configuration.md lists each variable.
type Config struct {
	Env             string // development | production
	DatabaseURL     string
	DB              db.Options // DATABASE_PREPARED_STATEMENTS, DATABASE_STATEMENT_TIMEOUT, DATABASE_MAX_CONNECTIONS
	HTTPAddr        string
	PprofAddr       string // development only: net/http/pprof on its own address ("" = off)
	MetricsAddr     string // Prometheus metrics at /metrics on its own address ("" = off)
	DataDir         string
	JWTKeys         []JWTKey // access-token keys: the first signs, all verify
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	AppBaseURL      string
	CORSOrigins     []string // CORS_ALLOWED_ORIGINS
	// CORSAnyLocalPort allows http://localhost:<port> and http://127.0.0.1:<port>
	// too: development's default when CORS_ALLOWED_ORIGINS is unset, so that a
	// front end's development server (Vite on 5173, ...) can call `make run`'s API.
	CORSAnyLocalPort bool
	TrustedProxies   []netip.Prefix // whose X-Forwarded-For names the client
	// TrustedDocuments, when TRUSTED_DOCUMENTS names a manifest, are the only
	// documents the server runs (nil: any document).
	TrustedDocuments TrustedDocuments

	MailDriver   string // console | file | smtp
	MailDir      string
	MailFrom     string
	SMTPHost     string
	SMTPPort     int
	SMTPUsername string
	SMTPPassword string

	// Request admission (httpx.AdmitLimits; 0 is no limit): requests per second
	// and requests at once of one client (a signed-in user, else an address),
	// and requests at once of the process.
	ClientRequestsPerSecond  int // CLIENT_REQUESTS_PER_SECOND, default 50
	ClientConcurrentRequests int // CLIENT_CONCURRENT_REQUESTS, default 16
	MaxConcurrentRequests    int // MAX_CONCURRENT_REQUESTS, default 256
	// OrgConcurrentShare is the share of min(MaxConcurrentRequests, the
	// pool's connections) one organization's operations may hold at once
	// (ORG_CONCURRENT_SHARE, default 0.25; 0 is no limit); over it they wait
	// up to OrgConcurrentWait (ORG_CONCURRENT_WAIT, default 1s), then are refused.
	OrgConcurrentShare float64
	OrgConcurrentWait  time.Duration

	// DatabaseDirectURL reaches PostgreSQL itself, never through a pooler in
	// transaction mode: the LISTEN connections use it (DATABASE_DIRECT_URL,
	// default DATABASE_URL). Read it with DirectURL.
	DatabaseDirectURL string
}

// JWTKey is one HMAC key for access tokens and the id the tokens carry in their kid header.
type JWTKey struct {
	ID     string
	Secret []byte
}

// DefaultKeyID is the kid of the key given by JWT_SECRET or generated in development.
const DefaultKeyID = "default"

// MinKeyBytes is the shortest JWT key accepted.
const MinKeyBytes = 32

// What production asks of a JWT key besides its length (see SecretStrength): at least
// MinKeyDistinctBytes different bytes and an estimated MinKeyBits bits of entropy.
// `openssl rand -hex 32` (64 hex digits, about 245 estimated bits) and 32 random bytes
// (about 155) pass; 32 × "a", "abab…", a repeated word or 16 random bytes in hex
// (about 117) do not.
const (
	MinKeyDistinctBytes = 8
	MinKeyBits          = 128
)

var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// DirectURL is the URL for connections that need a session of their own on
// PostgreSQL (LISTEN): DatabaseDirectURL, or DatabaseURL when that is empty.
func (c Config) DirectURL() string {
	if c.DatabaseDirectURL != "" {
		return c.DatabaseDirectURL
	}
	return c.DatabaseURL
}

// Production reports whether the server runs in production mode.
func (c Config) Production() bool { return c.Env == "production" }

// Load reads the environment. APP_ENV defaults to production, which needs
// JWT_SECRETS or JWT_SECRET; in development a missing key is generated once and
// kept under DATA_DIR so tokens survive restarts.
func Load() (Config, error) {
	c := Config{
		Env:          get("APP_ENV", "production"),
		DatabaseURL:  os.Getenv("DATABASE_URL"),
		HTTPAddr:     get("HTTP_ADDR", ":8080"),
		PprofAddr:    os.Getenv("PPROF_ADDR"),
		MetricsAddr:  os.Getenv("METRICS_ADDR"),
		DataDir:      get("DATA_DIR", ".data"),
		AppBaseURL:   strings.TrimRight(get("APP_BASE_URL", "http://localhost:8080"), "/"),
		MailDriver:   get("MAIL_DRIVER", ""), // required in production; console in development
		MailDir:      os.Getenv("MAIL_DIR"),
		MailFrom:     get("MAIL_FROM", "tenantgraph <no-reply@localhost>"),
		SMTPHost:     os.Getenv("SMTP_HOST"),
		SMTPUsername: os.Getenv("SMTP_USERNAME"),
		SMTPPassword: os.Getenv("SMTP_PASSWORD"),
	}
	// LISTEN holds a session: behind PgBouncer in transaction mode it must go
	// straight to PostgreSQL (docs/operations.md, "PgBouncer").
	c.DatabaseDirectURL = get("DATABASE_DIRECT_URL", c.DatabaseURL)
	var errs []error
	var err error
	if c.Env != "development" && c.Env != "production" {
		errs = append(errs, fmt.Errorf("APP_ENV must be development or production, got %q", c.Env))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required (`make run` sets one up for you)"))
	}
	if o, err := db.ParsePrepared(os.Getenv(db.PreparedSetting)); err != nil {
		errs = append(errs, err)
	} else {
		c.DB = o
	}
	if c.DB.StatementTimeout, err = db.ParseTimeout(os.Getenv(db.TimeoutSetting)); err != nil {
		errs = append(errs, err)
	}
	if c.DB.MaxConns, err = db.ParseMaxConns(os.Getenv(db.MaxConnsSetting)); err != nil {
		errs = append(errs, err)
	}
	if c.PprofAddr != "" && c.Production() {
		errs = append(errs, errors.New("PPROF_ADDR is for development only (profiles expose the process's internals): unset it in production"))
	}
	if c.AccessTokenTTL, err = duration("ACCESS_TOKEN_TTL", 15*time.Minute); err != nil {
		errs = append(errs, err)
	}
	if c.RefreshTokenTTL, err = duration("REFRESH_TOKEN_TTL", 30*24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	for _, v := range []struct {
		key string
		def int
		to  *int
	}{
		{"CLIENT_REQUESTS_PER_SECOND", 50, &c.ClientRequestsPerSecond},
		{"CLIENT_CONCURRENT_REQUESTS", 16, &c.ClientConcurrentRequests},
		{"MAX_CONCURRENT_REQUESTS", 256, &c.MaxConcurrentRequests},
	} {
		if *v.to, err = count(v.key, v.def); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OrgConcurrentShare, err = share("ORG_CONCURRENT_SHARE", 0.25); err != nil {
		errs = append(errs, err)
	}
	if c.OrgConcurrentWait, err = duration("ORG_CONCURRENT_WAIT", time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.SMTPPort, err = strconv.Atoi(get("SMTP_PORT", "587")); err != nil {
		errs = append(errs, fmt.Errorf("SMTP_PORT: %w", err))
	}
	for _, o := range strings.Split(os.Getenv("CORS_ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	// Production allows only the origins it lists; development, listing none,
	// allows any port of localhost and 127.0.0.1 over http.
	c.CORSAnyLocalPort = c.Env == "development" && len(c.CORSOrigins) == 0
	for _, p := range strings.Split(os.Getenv("TRUSTED_PROXY_CIDRS"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			p += map[bool]string{true: "/32", false: "/128"}[!strings.Contains(p, ":")]
		}
		pre, err := netip.ParsePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXY_CIDRS: %q is not an address or CIDR", p))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pre.Masked())
	}
	if path := strings.TrimSpace(os.Getenv("TRUSTED_DOCUMENTS")); path != "" {
		if c.TrustedDocuments, err = LoadTrustedDocuments(path); err != nil {
			errs = append(errs, err)
		}
	}
	// The console driver logs every mail, links with their tokens included: a
	// production server that defaulted to it would put sign-in and reset links in
	// its logs and deliver nothing. Production names a real driver.
	switch {
	case c.MailDriver == "" && c.Production():
		how := "set MAIL_DRIVER=smtp (with SMTP_HOST) or MAIL_DRIVER=file (with MAIL_DIR)"
		if strings.TrimSpace(os.Getenv("APP_ENV")) == "" {
			how += "; for local work set APP_ENV=development, where MAIL_DRIVER defaults to console"
		}
		errs = append(errs, errors.New("MAIL_DRIVER is required in production: "+how))
	case c.MailDriver == "":
		c.MailDriver = "console"
	case c.MailDriver == "console" && c.Production():
		errs = append(errs, errors.New("MAIL_DRIVER=console is refused in production: it writes every mail, "+
			"sign-in and password-reset links included, to the log and delivers nothing; use smtp or file"))
	}
	switch c.MailDriver {
	case "", "console", "smtp":
	case "file":
		if c.MailDir == "" {
			c.MailDir = filepath.Join(c.DataDir, "mail")
		}
	default:
		errs = append(errs, fmt.Errorf("MAIL_DRIVER must be console, file or smtp, got %q", c.MailDriver))
	}
	if c.MailDriver == "smtp" && c.SMTPHost == "" {
		errs = append(errs, errors.New("MAIL_DRIVER=smtp needs SMTP_HOST"))
	}

	keys, err := jwtKeys(c)
	if err != nil {
		errs = append(errs, err)
	}
	if c.Production() {
		errs = append(errs, weakKeys(keys)...)
	}
	c.JWTKeys = keys
	return c, errors.Join(errs...)
}

// jwtKeys reads JWT_SECRETS ("id:secret,id:secret", the first signs) or
// JWT_SECRET (one key, id DefaultKeyID); development generates one when neither is set.
// Errors never quote a secret.
func jwtKeys(c Config) ([]JWTKey, error) {
	list := strings.TrimSpace(os.Getenv("JWT_SECRETS"))
	single := strings.TrimSpace(os.Getenv("JWT_SECRET"))
	switch {
	case list != "" && single != "":
		return nil, fmt.Errorf("JWT_SECRETS and JWT_SECRET are both set: use one (JWT_SECRET is the single key %q; "+
			"to rotate it, list it in JWT_SECRETS as %s:<secret> after the new key)", DefaultKeyID, DefaultKeyID)
	case list != "":
		return parseKeys(list)
	case single != "":
		if len(single) < MinKeyBytes {
			return nil, fmt.Errorf("JWT_SECRET must be at least %d bytes, got %d", MinKeyBytes, len(single))
		}
		return []JWTKey{{ID: DefaultKeyID, Secret: []byte(single)}}, nil
	case c.Production():
		how := "set JWT_SECRETS (e.g. JWT_SECRETS=\"2026-11:$(openssl rand -hex 32)\") or JWT_SECRET " +
			"(at least 32 random bytes); for local work set APP_ENV=development, which generates a key under DATA_DIR (`make run` does)"
		if strings.TrimSpace(os.Getenv("APP_ENV")) == "" {
			return nil, errors.New("no JWT signing key: APP_ENV is not set, so the server runs in production, which needs one: " + how)
		}
		return nil, errors.New("no JWT signing key: production needs one: " + how)
	}
	s, err := devSecret(c.DataDir)
	if err != nil {
		return nil, err
	}
	return []JWTKey{{ID: DefaultKeyID, Secret: s}}, nil
}

// weakKeys refuses keys that look guessable: too few distinct bytes, or too little
// entropy as SecretStrength estimates it. Errors never quote a secret.
func weakKeys(keys []JWTKey) []error {
	var errs []error
	for _, k := range keys {
		distinct, bits := SecretStrength(k.Secret)
		if distinct >= MinKeyDistinctBytes && bits >= MinKeyBits {
			continue
		}
		name := fmt.Sprintf("JWT_SECRETS: key %q", k.ID)
		if k.ID == DefaultKeyID && os.Getenv("JWT_SECRETS") == "" {
			name = "JWT_SECRET"
		}
		errs = append(errs, fmt.Errorf("%s is too easy to guess (%d distinct bytes, about %.0f bits of entropy; production needs "+
			"%d and %d): use 32 random bytes, e.g. $(openssl rand -hex 32)", name, distinct, bits, MinKeyDistinctBytes, MinKeyBits))
	}
	return errs
}

// SecretStrength estimates how guessable a secret is: the number of distinct bytes
// in it, and its entropy in bits, the Shannon entropy of its byte frequencies times
// its length, where a secret that repeats itself ("abcabcab") counts only its
// shortest repeating unit ("abc"). It can only underrate a random secret and
// overrate a structured one ("abcdefgh…" looks random to it).
func SecretStrength(secret []byte) (distinct int, bits float64) {
	var counts [256]int
	for _, b := range secret {
		if counts[b] == 0 {
			distinct++
		}
		counts[b]++
	}
	unit := secret[:period(secret)]
	counts = [256]int{}
	for _, b := range unit {
		counts[b]++
	}
	n := float64(len(unit))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			bits -= float64(c) * math.Log2(p)
		}
	}
	return distinct, bits
}

// period is the length of s's shortest prefix that s repeats: s[i] == s[i-p] for
// every i >= p (the Knuth-Morris-Pratt failure function).
func period(s []byte) int {
	if len(s) == 0 {
		return 0
	}
	fail := make([]int, len(s))
	for i, k := 1, 0; i < len(s); i++ {
		for k > 0 && s[i] != s[k] {
			k = fail[k-1]
		}
		if s[i] == s[k] {
			k++
		}
		fail[i] = k
	}
	return len(s) - fail[len(s)-1]
}

// parseKeys parses JWT_SECRETS: comma-separated <id>:<secret> entries.
func parseKeys(list string) ([]JWTKey, error) {
	var keys []JWTKey
	var errs []error
	seen := map[string]bool{}
	for i, entry := range strings.Split(list, ",") {
		n := i + 1
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		id, secret, ok := strings.Cut(entry, ":")
		id, secret = strings.TrimSpace(id), strings.TrimSpace(secret)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("JWT_SECRETS entry %d: want <id>:<secret>", n))
		case !keyID.MatchString(id):
			errs = append(errs, fmt.Errorf("JWT_SECRETS entry %d: the id before ':' must be 1-32 characters from A-Z a-z 0-9 . _ -", n))
		case seen[id]:
			errs = append(errs, fmt.Errorf("JWT_SECRETS: key id %q is listed twice", id))
		case len(secret) < MinKeyBytes:
			errs = append(errs, fmt.Errorf("JWT_SECRETS: key %q must be at least %d bytes, got %d", id, MinKeyBytes, len(secret)))
		default:
			seen[id] = true
			keys = append(keys, JWTKey{ID: id, Secret: []byte(secret)})
		}
	}
	if len(keys) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("JWT_SECRETS lists no key"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return keys, nil
}

// devSecret reads DATA_DIR/jwt-secret, creating it with 32 random bytes the first time.
func devSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(buf)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generated JWT key: create %s: %w", dir, err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("generated JWT key: write %s: %w", path, err)
	}
	return []byte(s), nil
}

func get(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// count reads a limit: a whole number from 0 (no limit) to 1,000,000.
func count(key string, def int) (int, error) {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 1_000_000 {
		return 0, fmt.Errorf("%s: want a whole number from 0 (no limit) to 1000000, got %q", key, v)
	}
	return n, nil
}

// share reads a fraction from 0 (no limit) to 1.
func share(key string, def float64) (float64, error) {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("%s: want a fraction from 0 (no limit) to 1, such as 0.25, got %q", key, v)
	}
	return f, nil
}

// duration accepts Go durations plus a day suffix ("30d").
func duration(key string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return def, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: want a positive duration such as 15m or 30d, got %q", key, v)
	}
	return d, nil
}
