package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/notify"

	"github.com/jmoiron/sqlx"
)

// WorkerOptions tune a Worker. Zero fields take the documented defaults.
type WorkerOptions struct {
	PollInterval time.Duration                   // default 1s; how often to look for due messages absent a notification
	BatchSize    int                             // default 10
	MaxAttempts  int                             // default 8; after that status='failed', row and last_error kept
	Backoff      func(attempt int) time.Duration // default DefaultBackoff; attempt counts from 1
	Notes        *notify.Sub                     // if set (the hub's NotifyChannel), also wake on each note: as soon as a message is committed
	SendTimeout  time.Duration                   // default 30s; limit for one Sender.Send call
}

// DefaultBackoff waits 5s * 2^(attempt-1), capped at 1h, with jitter: the result
// lies in [d/2, d] for that nominal delay d.
func DefaultBackoff(attempt int) time.Duration {
	const (
		base    = 5 * time.Second
		ceiling = time.Hour
	)
	if attempt < 1 {
		attempt = 1
	}
	d := ceiling
	if attempt <= 20 {
		d = min(base<<(attempt-1), ceiling)
	}
	return d/2 + rand.N(d/2+1)
}

// Worker delivers the messages of mail_outbox. Several workers, in one process or
// in several replicas, can run against the same database: each row is handled by
// one of them at a time (FOR UPDATE SKIP LOCKED).
type Worker struct {
	db  *sqlx.DB
	s   Sender
	log *slog.Logger
	opt WorkerOptions
}

// NewWorker returns a Worker sending through s.
func NewWorker(d *sqlx.DB, s Sender, log *slog.Logger, opt WorkerOptions) *Worker {
	if log == nil {
		log = slog.Default()
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = time.Second
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 10
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 8
	}
	if opt.Backoff == nil {
		opt.Backoff = DefaultBackoff
	}
	if opt.SendTimeout <= 0 {
		opt.SendTimeout = 30 * time.Second
	}
	return &Worker{db: d, s: s, log: log.With(slog.String("component", "mail.worker")), opt: opt}
}

// Run delivers due messages until ctx is cancelled: at once, then whenever a
// note arrives (with Notes: a notification, or a Missed note once the hub
// listens and after it reconnected) or every PollInterval. On cancellation it
// finishes the send in progress, records it, and returns; the rest of the batch
// stays pending.
func (w *Worker) Run(ctx context.Context) {
	var notes <-chan notify.Note // nil without Notes: never ready
	if w.opt.Notes != nil {
		notes = w.opt.Notes.C()
	}
	tick := time.NewTicker(w.opt.PollInterval)
	defer tick.Stop()
	for {
		// Drain: a full batch means more may be due.
		for ctx.Err() == nil {
			handled, _, err := w.runOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.log.ErrorContext(ctx, "mail outbox batch failed", slog.Any("err", err))
				}
				break
			}
			if handled < w.opt.BatchSize {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-notes:
		case <-tick.C:
		}
	}
}

// RunOnce processes one batch of due messages and returns how many were sent.
// Cancelling ctx stops it after the send in progress; what was sent is recorded
// and the rest stays pending.
func (w *Worker) RunOnce(ctx context.Context) (sent int, err error) {
	_, sent, err = w.runOnce(ctx)
	return sent, err
}

type outboxRow struct {
	ID        int64  `db:"id"`
	Recipient string `db:"recipient"`
	Subject   string `db:"subject"`
	Body      string `db:"body"`
	Attempts  int    `db:"attempts"`
}

const dbTimeout = 30 * time.Second

// runOnce returns how many due rows it handled (sent or failed) and how many it sent.
func (w *Worker) runOnce(ctx context.Context) (handled, sent int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	// The transaction outlives a cancellation of ctx so that sends already made
	// are recorded; a transaction bound to ctx would be rolled back and they
	// would go out again.
	bg := context.WithoutCancel(ctx)
	tx, err := w.db.BeginTxx(bg, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("mail outbox: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit

	var rows []outboxRow
	if err := tx.SelectContext(ctx, &rows, `
		SELECT id, recipient, subject, body, attempts
		FROM mail_outbox
		WHERE status = 'pending' AND next_attempt_at <= now()
		ORDER BY next_attempt_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, w.opt.BatchSize); err != nil {
		return 0, 0, fmt.Errorf("mail outbox: select: %w", err)
	}
	if len(rows) == 0 {
		return 0, 0, nil
	}
	// From the first send on, recording what was sent must not be cut by the
	// requests' statement timeout: a cut would roll the batch back and send it
	// again. The claim above keeps it (SKIP LOCKED and LIMIT: it never waits).
	if err := db.WithoutStatementTimeout(bg, tx); err != nil {
		return 0, 0, fmt.Errorf("mail outbox: %w", err)
	}

	for _, r := range rows {
		if ctx.Err() != nil {
			break
		}
		ok, err := w.deliver(bg, tx, r)
		if err != nil {
			w.log.ErrorContext(ctx, "mail outbox: recording a delivery failed; this batch will be retried and may be sent twice",
				slog.Int64("mail_id", r.ID), slog.Any("err", err))
			return 0, 0, err
		}
		handled++
		if ok {
			sent++
		}
	}
	if err := tx.Commit(); err != nil {
		w.log.ErrorContext(ctx, "mail outbox: commit failed; this batch will be retried and may be sent twice", slog.Any("err", err))
		return 0, 0, fmt.Errorf("mail outbox: commit: %w", err)
	}
	return handled, sent, nil
}

// redacted replaces a body once the message is done with: bodies carry
// single-use links whose tokens are stored only hashed everywhere else.
const redacted = "[body removed after delivery]"

// deliver sends one row and records the outcome in tx. It reports whether the
// message was sent; an error means the outcome could not be recorded.
func (w *Worker) deliver(ctx context.Context, tx *sqlx.Tx, r outboxRow) (bool, error) {
	attempt := r.Attempts + 1
	log := w.log.With(slog.Int64("mail_id", r.ID), slog.String("to", r.Recipient), slog.Int("attempt", attempt))

	sctx, cancel := context.WithTimeout(ctx, w.opt.SendTimeout)
	sendErr := w.s.Send(sctx, Message{To: r.Recipient, Subject: r.Subject, Body: r.Body})
	cancel()

	dctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if sendErr == nil {
		if _, err := tx.ExecContext(dctx, `
			UPDATE mail_outbox
			SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1, body = $2
			WHERE id = $1`, r.ID, redacted); err != nil {
			return false, fmt.Errorf("mail outbox: mark %d sent: %w", r.ID, err)
		}
		log.InfoContext(ctx, "mail sent")
		return true, nil
	}

	msg := truncateError(sendErr.Error(), 1000)
	// An invalid message (say, a row written by hand) will never go out: no point retrying.
	if attempt >= w.opt.MaxAttempts || errors.Is(sendErr, ErrInvalidMessage) {
		if _, err := tx.ExecContext(dctx, `
			UPDATE mail_outbox
			SET status = 'failed', attempts = attempts + 1, last_error = $2, body = $3
			WHERE id = $1`, r.ID, msg, redacted); err != nil {
			return false, fmt.Errorf("mail outbox: mark %d failed: %w", r.ID, err)
		}
		log.ErrorContext(ctx, "mail failed permanently", slog.Any("err", sendErr))
		return false, nil
	}
	delay := max(w.opt.Backoff(attempt), 0)
	if _, err := tx.ExecContext(dctx, `
		UPDATE mail_outbox
		SET attempts = attempts + 1, last_error = $2,
		    next_attempt_at = clock_timestamp() + make_interval(secs => $3)
		WHERE id = $1`, r.ID, msg, delay.Seconds()); err != nil {
		return false, fmt.Errorf("mail outbox: reschedule %d: %w", r.ID, err)
	}
	log.WarnContext(ctx, "mail send failed, will retry", slog.Any("err", sendErr), slog.Duration("retry_in", delay))
	return false, nil
}

// truncateError makes s storable in a text column (valid UTF-8, no NUL) and at most n bytes long.
func truncateError(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
