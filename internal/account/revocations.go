package account

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/auth"
)

// RevocationWatcher keeps a process's auth.RevokedSessions current: it listens
// on RevokedChannel over a connection of its own (not from the pool: LISTEN
// needs a session-level connection, so not a PgBouncer in transaction mode),
// loads the recent revocations from the database once listening, loads them
// again after every reconnection (notifications sent while disconnected are
// lost), and prunes the set every minute.
//
// It is Ready only once a probe it sends through the pool has come back on
// its LISTEN connection: a LISTEN through PgBouncer in transaction mode
// succeeds but never receives anything, and a replica behind one would go on
// accepting the access tokens of sessions ended elsewhere. Past
// ListenProbeTimeout without the probe it logs what is wrong, once.
type RevocationWatcher struct {
	db        *sqlx.DB
	set       *auth.RevokedSessions
	listenURL string
	now       func() time.Time
	log       *slog.Logger
	store     Store
	ready     chan struct{}
}

// NewRevocationWatcher returns a watcher filling set from the database d,
// listening through its own connection to listenURL.
func NewRevocationWatcher(d *sqlx.DB, set *auth.RevokedSessions, listenURL string, now func() time.Time, log *slog.Logger) *RevocationWatcher {
	if log == nil {
		log = slog.Default()
	}
	return &RevocationWatcher{db: d, set: set, listenURL: listenURL, now: now,
		log: log.With(slog.String("component", "account.revocations")), ready: make(chan struct{})}
}

// Ready is closed once the watcher listens and has loaded the revocations that
// were committed before: from then on the set misses none.
func (w *RevocationWatcher) Ready() <-chan struct{} { return w.ready }

// retryInterval is how soon a failed load (or probe) is tried again.
const retryInterval = time.Second

// ListenProbeTimeout is how long the watcher waits for its probe before it
// logs that its LISTEN connection receives nothing.
const ListenProbeTimeout = 10 * time.Second

// probePrefix starts a probe's payload; every replica ignores the others'.
const probePrefix = "probe:"

// Run watches until ctx ends.
func (w *RevocationWatcher) Run(ctx context.Context) {
	l := pq.NewListener(w.listenURL, time.Second, 30*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			w.log.Warn("session revocation listener", slog.String("event", ev.String()), slog.Any("err", err))
		}
	})
	defer l.Close() //nolint:errcheck
	listening := make(chan error, 1)
	// Listen blocks until the connection is up; it fails with net.ErrClosed once closed.
	go func() { listening <- l.Listen(RevokedChannel) }()
	select {
	case <-ctx.Done():
		return
	case err := <-listening:
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				w.log.Error("session revocation listen", slog.Any("err", err))
			}
			return
		}
	}
	// Load after LISTEN took effect: what committed before is in the table,
	// what commits after arrives as a notification.
	stale := true
	probe, probeSent, probed, warned := probePrefix+uuid.NewString(), false, false, false
	probeBy := time.Now().Add(ListenProbeTimeout)
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	for {
		if stale {
			if err := w.load(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				w.log.Error("loading revoked sessions failed; retrying", slog.Any("err", err))
			} else {
				stale = false
			}
		}
		if !probeSent {
			if err := w.store.Notify(ctx, w.db, probe); err != nil {
				if ctx.Err() != nil {
					return
				}
				w.log.Error("probing the session revocation listener failed; retrying", slog.Any("err", err))
			} else {
				probeSent = true
			}
		}
		if !probed && !warned && time.Now().After(probeBy) {
			warned = true
			w.log.Error("the session revocation listener receives no notifications: a NOTIFY sent through DATABASE_URL "+
				"did not reach the LISTEN of DATABASE_DIRECT_URL (default DATABASE_URL); point DATABASE_DIRECT_URL at PostgreSQL "+
				"itself, not at a pooler in transaction mode", slog.Duration("waited", ListenProbeTimeout))
		}
		if !stale && probed {
			select {
			case <-w.ready:
			default:
				close(w.ready)
			}
		}
		select {
		case <-ctx.Done():
			return
		case n := <-l.NotificationChannel():
			if n == nil { // reconnected: notifications may have been lost
				stale = true
				probeSent = probed // a probe sent before may be among them
				continue
			}
			if strings.HasPrefix(n.Extra, probePrefix) { // ours, or another replica's
				probed = probed || n.Extra == probe
				continue
			}
			if !w.add(n.Extra) {
				w.log.Error("bad session revocation payload; reloading", slog.Int("bytes", len(n.Extra)))
				stale = true
			}
		case <-prune.C:
			w.set.Prune(w.now())
		case <-retry.C:
		}
	}
}

// load merges the revocations recent enough to matter into the set. It never
// removes: a notification handled meanwhile stays.
func (w *RevocationWatcher) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := w.now()
	ids, err := w.store.RevokedSessionsSince(ctx, w.db, now.Add(-w.set.Keep()))
	if err != nil {
		return err
	}
	for id, at := range ids {
		w.set.Add(at, id)
	}
	w.set.Prune(now)
	return nil
}

// add records the comma-separated session ids of a notification payload; it
// reports false when the payload does not parse.
func (w *RevocationWatcher) add(payload string) bool {
	parts := strings.Split(payload, ",")
	ids := make([]uuid.UUID, 0, len(parts))
	for _, p := range parts {
		id, err := uuid.Parse(p)
		if err != nil {
			return false
		}
		ids = append(ids, id)
	}
	w.set.Add(w.now(), ids...)
	return true
}
