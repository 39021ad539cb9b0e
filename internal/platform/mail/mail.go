// Package mail sends e-mail through a transactional outbox.
//
// Callers Enqueue a Message inside the transaction that makes the change the
// mail is about (a sign-up, a password reset...), so a rolled-back change sends
// nothing. A Worker picks due rows of mail_outbox, hands them to a Sender
// (console, file or SMTP driver) and records the outcome, retrying with backoff.
// Delivery is at least once: a crash between a send and the commit that records
// it makes the message go out again.
package mail

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// NotifyChannel is the PostgreSQL NOTIFY channel Enqueue signals and the Worker listens on.
const NotifyChannel = "mail_outbox"

// Message is one e-mail. Body is plain UTF-8 text; it typically holds links with tokens.
type Message struct {
	// To is one recipient address, either bare ("alice@example.com") or with a
	// display name ("Alice <alice@example.com>").
	To      string
	Subject string
	Body    string
}

// ErrInvalidMessage is wrapped by the error Validate returns for a message that
// cannot be sent; Enqueue and every Sender check messages with Validate.
var ErrInvalidMessage = errors.New("invalid mail message")

// Validate reports whether m can be sent safely: To is one valid address, and
// To and Subject hold no CR or LF (header injection), all fields are valid UTF-8
// without NUL bytes.
func (m Message) Validate() error {
	_, err := m.recipient()
	return err
}

// recipient validates m and returns its parsed recipient address.
func (m Message) recipient() (*mail.Address, error) {
	for _, f := range []struct{ name, v string }{{"recipient", m.To}, {"subject", m.Subject}, {"body", m.Body}} {
		if !utf8.ValidString(f.v) {
			return nil, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidMessage, f.name)
		}
		if strings.ContainsRune(f.v, 0) {
			return nil, fmt.Errorf("%w: %s contains a NUL byte", ErrInvalidMessage, f.name)
		}
	}
	if strings.ContainsAny(m.To, "\r\n") {
		return nil, fmt.Errorf("%w: recipient contains a line break", ErrInvalidMessage)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, fmt.Errorf("%w: subject contains a line break", ErrInvalidMessage)
	}
	if strings.TrimSpace(m.To) == "" {
		return nil, fmt.Errorf("%w: recipient is empty", ErrInvalidMessage)
	}
	addr, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("%w: recipient %q: %v", ErrInvalidMessage, m.To, err)
	}
	return addr, nil
}

// Enqueue inserts m into mail_outbox through q — pass the caller's *sqlx.Tx so the
// message is sent only if that transaction commits — and signals NotifyChannel in
// the same transaction, so a listening Worker wakes at commit.
func Enqueue(ctx context.Context, q sqlx.ExtContext, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if _, err := q.ExecContext(ctx,
		`INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)`,
		m.To, m.Subject, m.Body); err != nil {
		return fmt.Errorf("enqueue mail: %w", err)
	}
	// An empty payload lets PostgreSQL fold the notifications of one transaction into one.
	if _, err := q.ExecContext(ctx, `SELECT pg_notify('`+NotifyChannel+`', '')`); err != nil {
		return fmt.Errorf("enqueue mail: notify: %w", err)
	}
	return nil
}

// Purge deletes the messages that were sent or failed for good before before,
// and returns how many.
func Purge(ctx context.Context, q sqlx.ExecerContext, before time.Time) (int64, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM mail_outbox WHERE status <> 'pending' AND created_at < $1`, before)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Backlog returns how many messages are pending (neither sent nor given up on)
// and how long the oldest of them has waited (0 when none is). It reads the
// partial index of pending messages, and is meant for the metrics' scrapes.
func Backlog(ctx context.Context, q sqlx.QueryerContext) (pending int64, oldest time.Duration, err error) {
	var age float64
	err = q.QueryRowxContext(ctx, `
		SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
		FROM mail_outbox WHERE status = 'pending'`).Scan(&pending, &age)
	if err != nil {
		return 0, 0, fmt.Errorf("mail backlog: %w", err)
	}
	return pending, time.Duration(age * float64(time.Second)), nil
}
