package config

import (
	"os"
	"strings"
	"testing"
)

// TestMain gives the package's tests a mail driver that production accepts, so
// that the tests about other settings can run in production; a test about the
// mail settings sets its own (t.Setenv).
func TestMain(m *testing.M) {
	os.Setenv("MAIL_DRIVER", "smtp")
	os.Setenv("SMTP_HOST", "smtp.example.test")
	os.Exit(m.Run())
}

func TestProductionNeedsARealMailDriver(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("DATA_DIR", t.TempDir())
	clearJWT(t)
	t.Setenv("JWT_SECRET", "3c9b1f0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c")
	t.Setenv("SMTP_HOST", "")
	t.Setenv("MAIL_DIR", "")
	load := func(env, driver string) (Config, error) {
		t.Helper()
		t.Setenv("APP_ENV", env)
		t.Setenv("MAIL_DRIVER", driver)
		return Load()
	}

	// Production, by default or by name, needs MAIL_DRIVER and refuses console.
	for _, env := range []string{"", "production"} {
		_, err := load(env, "")
		if err == nil || !strings.Contains(err.Error(), "MAIL_DRIVER is required in production: set MAIL_DRIVER=smtp") {
			t.Fatalf("APP_ENV=%q without MAIL_DRIVER: Load() error = %v", env, err)
		}
		if hint := strings.Contains(err.Error(), "APP_ENV=development"); hint != (env == "") {
			t.Errorf("APP_ENV=%q: the error hints at APP_ENV=development: %v, want %v: %v", env, hint, env == "", err)
		}
		_, err = load(env, "console")
		if err == nil || !strings.Contains(err.Error(), "MAIL_DRIVER=console is refused in production") {
			t.Fatalf("APP_ENV=%q MAIL_DRIVER=console: Load() error = %v", env, err)
		}
	}
	c, err := load("", "file")
	if err != nil || c.MailDriver != "file" || c.MailDir == "" {
		t.Fatalf("production with the file driver: %+v, %v", c, err)
	}
	t.Setenv("SMTP_HOST", "smtp.example.test")
	if c, err := load("production", "smtp"); err != nil || c.MailDriver != "smtp" {
		t.Fatalf("production with the smtp driver: %+v, %v", c, err)
	}

	// Development prints mail on the console unless told otherwise: the docs'
	// walk-throughs read the links from the log.
	for _, driver := range []string{"", "console"} {
		if c, err := load("development", driver); err != nil || c.MailDriver != "console" {
			t.Fatalf("development with MAIL_DRIVER=%q: %+v, %v", driver, c.MailDriver, err)
		}
	}
	if _, err := load("development", "carrier-pigeon"); err == nil || !strings.Contains(err.Error(), "MAIL_DRIVER must be console, file or smtp") {
		t.Fatalf("an unknown driver: %v", err)
	}
}
