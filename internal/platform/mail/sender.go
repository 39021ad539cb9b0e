package mail

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Sender delivers one message. The Worker calls it; it is safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// DefaultFrom is the sender address the console and file drivers use when Config.From is empty.
const DefaultFrom = "tenantgraph <no-reply@localhost>"

// Config selects and configures a Sender.
type Config struct {
	Driver string // "console" | "file" | "smtp"
	Dir    string // file driver: folder for .eml files (created if missing)
	From   string // MAIL_FROM, e.g. "tenantgraph <no-reply@localhost>"; required by the smtp driver

	SMTPHost     string
	SMTPPort     int // default 587; 465 means implicit TLS, otherwise STARTTLS is used when offered
	SMTPUsername string
	SMTPPassword string
}

// NewSender returns the driver cfg.Driver names. An unknown driver is an error.
func NewSender(cfg Config, log *slog.Logger) (Sender, error) {
	if log == nil {
		log = slog.Default()
	}
	driver := strings.ToLower(strings.TrimSpace(cfg.Driver))
	from := cfg.From
	if from == "" && driver != "smtp" {
		from = DefaultFrom
	}
	var fromAddr *mail.Address
	if driver == "file" || driver == "smtp" {
		if from == "" {
			return nil, fmt.Errorf("mail: the %s driver needs a From address (MAIL_FROM)", driver)
		}
		a, err := parseFrom(from)
		if err != nil {
			return nil, err
		}
		fromAddr = a
	}
	switch driver {
	case "console":
		return &consoleSender{log: log}, nil
	case "file":
		if cfg.Dir == "" {
			return nil, fmt.Errorf("mail: the file driver needs a directory")
		}
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("mail: create %s: %w", cfg.Dir, err)
		}
		return &fileSender{dir: cfg.Dir, from: fromAddr, log: log}, nil
	case "smtp":
		if cfg.SMTPHost == "" {
			return nil, fmt.Errorf("mail: the smtp driver needs a host")
		}
		port := cfg.SMTPPort
		if port == 0 {
			port = 587
		}
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("mail: invalid SMTP port %d", port)
		}
		return &smtpSender{
			host:        cfg.SMTPHost,
			port:        port,
			username:    cfg.SMTPUsername,
			password:    cfg.SMTPPassword,
			from:        fromAddr,
			log:         log,
			dialTimeout: 10 * time.Second,
			timeout:     60 * time.Second,
		}, nil
	case "":
		return nil, fmt.Errorf("mail: no driver configured (want console, file or smtp)")
	default:
		return nil, fmt.Errorf("mail: unknown driver %q (want console, file or smtp)", cfg.Driver)
	}
}

func parseFrom(from string) (*mail.Address, error) {
	if strings.ContainsAny(from, "\r\n") {
		return nil, fmt.Errorf("mail: From %q contains a line break", from)
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail: From %q: %w", from, err)
	}
	return a, nil
}

// consoleSender logs messages instead of sending them, for development.
type consoleSender struct {
	log *slog.Logger
}

func (s *consoleSender) Send(ctx context.Context, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "mail (console driver, not sent)",
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("body", m.Body))
	return nil
}

// fileSender writes each message as an RFC 5322 .eml file named
// <unixnano>-<random>.eml, for development and tests (read them with ParseFile or ReadDir).
type fileSender struct {
	dir  string
	from *mail.Address
	log  *slog.Logger
}

// Send writes m to a temporary file and renames it, so a reader never sees a partial file.
func (s *fileSender) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	data, err := render(s.from, m, now)
	if err != nil {
		return err
	}
	name := strconv.FormatInt(now.UnixNano(), 10) + "-" + randomHex(6) + ".eml"
	tmp, err := os.CreateTemp(s.dir, ".tmp-*.eml.part")
	if err != nil {
		return fmt.Errorf("mail file: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name()) //nolint:errcheck
		return fmt.Errorf("mail file: %w", err)
	}
	s.log.DebugContext(ctx, "mail written", slog.String("file", filepath.Join(s.dir, name)), slog.String("to", m.To))
	return nil
}
