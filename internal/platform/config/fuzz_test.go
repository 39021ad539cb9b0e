package config

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzLoad: Load never panics on any JWT_SECRETS, JWT_SECRET, ACCESS_TOKEN_TTL and
// TRUSTED_PROXY_CIDRS; what it accepts in production satisfies every rule the
// docs/configuration.md states; its errors never quote a secret.
func FuzzLoad(f *testing.F) {
	good := strong("fuzz")
	f.Add("2026-11:"+good+","+"2026-05:o:"+strong("o"), "", "15m", "10.0.0.0/8, 192.168.1.7, fd00::/8")
	f.Add("", good, "30d", "")
	f.Add("a:"+strings.Repeat("a", 40), "", "0s", "not-an-ip")
	f.Add(" , ,", "", "-1h", "::ffff:10.0.0.1")
	f.Add("a:"+good+",a:"+good, "x", "9999999999d", "10.0.0.1/33,,")
	f.Add("", strings.Repeat("password", 4), "1e9h", "1.2.3.4/0")
	f.Fuzz(func(t *testing.T, secrets, secret, ttl, proxies string) {
		for _, v := range []string{secrets, secret, ttl, proxies} {
			if strings.IndexByte(v, 0) >= 0 {
				t.Skip("an environment variable cannot hold NUL")
			}
		}
		t.Setenv("APP_ENV", "production")
		t.Setenv("DATABASE_URL", "postgres://x")
		t.Setenv("MAIL_DRIVER", "smtp")
		t.Setenv("SMTP_HOST", "smtp.example.com")
		t.Setenv("JWT_SECRETS", secrets)
		t.Setenv("JWT_SECRET", secret)
		t.Setenv("ACCESS_TOKEN_TTL", ttl)
		t.Setenv("TRUSTED_PROXY_CIDRS", proxies)
		c, err := Load()
		if err != nil {
			// Every secret longer than an id could be (so it cannot be quoted as one).
			for _, entry := range append(strings.Split(secrets, ","), ":"+secret) {
				_, s, _ := strings.Cut(entry, ":")
				if s = strings.TrimSpace(s); len(s) > 32 && strings.Contains(err.Error(), s) {
					t.Fatalf("the error quotes a secret: %v", err)
				}
			}
			return
		}
		if len(c.JWTKeys) == 0 {
			t.Fatal("production accepted without a key")
		}
		ids := map[string]bool{}
		for _, k := range c.JWTKeys {
			distinct, bits := SecretStrength(k.Secret)
			if !keyID.MatchString(k.ID) || ids[k.ID] || len(k.Secret) < MinKeyBytes || distinct < MinKeyDistinctBytes || bits < MinKeyBits ||
				strings.TrimSpace(string(k.Secret)) != string(k.Secret) ||
				strings.TrimSpace(secrets) != "" && strings.ContainsRune(string(k.Secret), ',') { // JWT_SECRET may hold commas
				t.Fatalf("accepted key %q (%d distinct, %.0f bits)", k.ID, distinct, bits)
			}
			ids[k.ID] = true
		}
		if c.AccessTokenTTL <= 0 || (strings.TrimSpace(ttl) == "" && c.AccessTokenTTL != 15*time.Minute) {
			t.Fatalf("ACCESS_TOKEN_TTL=%q gave %v", ttl, c.AccessTokenTTL)
		}
		for _, p := range c.TrustedProxies {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("TRUSTED_PROXY_CIDRS=%q gave %v", proxies, p)
			}
			// Every listed address is trusted: an address given without a length is one host.
			if _, err := netip.ParseAddr(p.Addr().String()); err != nil {
				t.Fatalf("prefix %v", p)
			}
		}
	})
}

// FuzzSecretStrength: the estimate never panics, counts at most 256 distinct bytes
// and at most 8 bits a byte, and a secret written twice is no stronger than the
// secret once, counted without looking for repetition.
func FuzzSecretStrength(f *testing.F) {
	f.Add([]byte(strong("x")))
	f.Add([]byte("aaaa"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, s []byte) {
		distinct, bits := SecretStrength(s)
		if distinct > 256 || distinct > len(s) || bits < 0 || bits > 8*float64(len(s))+1e-9 {
			t.Fatalf("%q: %d distinct, %.2f bits", s, distinct, bits)
		}
		twice := append(append([]byte{}, s...), s...)
		if d2, b2 := SecretStrength(twice); d2 != distinct || b2 > plainBits(s)+1e-6 {
			t.Fatalf("%q twice: %.2f bits, once %.2f (%.2f without repetition)", s, b2, bits, plainBits(s))
		}
	})
}

// plainBits is len(s) times the Shannon entropy of s's bytes.
func plainBits(s []byte) float64 {
	var counts [256]int
	for _, b := range s {
		counts[b]++
	}
	bits := 0.0
	for _, c := range counts {
		if c > 0 {
			bits -= float64(c) * math.Log2(float64(c)/float64(len(s)))
		}
	}
	return bits
}
