package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"time"
)

// smtpSender sends each message over its own SMTP session.
type smtpSender struct {
	host               string
	port               int
	username, password string
	from               *mail.Address
	log                *slog.Logger
	dialTimeout        time.Duration
	timeout            time.Duration // whole session, when ctx has no earlier deadline
	tlsConfig          *tls.Config   // nil: verify the server's certificate for host against the system roots
}

func (s *smtpSender) tlsConf() *tls.Config {
	if s.tlsConfig != nil {
		return s.tlsConfig.Clone()
	}
	return &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
}

// Send dials the server, upgrades to TLS when offered (STARTTLS) or on port 465
// (implicit TLS), authenticates with PLAIN when a username is set, and transfers m.
func (s *smtpSender) Send(ctx context.Context, m Message) (err error) {
	to, err := m.recipient()
	if err != nil {
		return err
	}
	data, err := render(s.from, m, time.Now())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The connection deadline may fire just before ctx notices its own.
			cerr := ctx.Err()
			if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
				cerr = context.DeadlineExceeded
			}
			if cerr != nil && !errors.Is(err, cerr) {
				err = fmt.Errorf("%w: %v", cerr, err)
			}
			err = fmt.Errorf("smtp %s: %w", net.JoinHostPort(s.host, strconv.Itoa(s.port)), err)
		}
	}()

	d := net.Dialer{Timeout: s.dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(s.host, strconv.Itoa(s.port)))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(s.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := raw.SetDeadline(deadline); err != nil {
		raw.Close()
		return err
	}
	// Cancelling ctx aborts whatever read or write is in progress.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) }) //nolint:errcheck
	defer stop()

	conn := raw
	if s.port == 465 {
		conn = tls.Client(raw, s.tlsConf())
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()

	if _, isTLS := conn.(*tls.Conn); !isTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConf()); err != nil {
				return fmt.Errorf("starttls: %w", err)
			}
		}
	}
	if s.username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("a username is configured but the server offers no AUTH")
		}
		// PlainAuth refuses to send the password over a connection that is neither TLS nor to localhost.
		if err := c.Auth(smtp.PlainAuth("", s.username, s.password, s.host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil { // reads the server's verdict on the message
		return fmt.Errorf("DATA: %w", err)
	}
	// The server has accepted the message: a failing QUIT must not make it be sent again.
	if err := c.Quit(); err != nil {
		s.log.DebugContext(ctx, "smtp QUIT failed after the message was accepted", slog.Any("err", err))
	}
	return nil
}
