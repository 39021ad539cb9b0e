package account

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/notify"
)

// RevocationWatcher keeps a process's auth.RevokedSessions current: it
// follows RevokedChannel through the process's notify hub, loads the recent
// revocations from the database once the hub listens, loads them again
// whenever notes may have been missed (a reconnection, a backlog), and prunes
// the set every minute.
//
// It is Ready only once the hub is (its LISTEN connection proved to receive:
// behind PgBouncer in transaction mode it never would, and a replica there
// would go on accepting the access tokens of sessions ended elsewhere) and it
// has loaded what was committed before.
type RevocationWatcher struct {
	db    *sqlx.DB
	set   *auth.RevokedSessions
	hub   *notify.Hub
	sub   *notify.Sub
	now   func() time.Time
	log   *slog.Logger
	store Store
	ready chan struct{}
}

// NewRevocationWatcher returns a watcher filling set from the database d,
// following RevokedChannel through hub.
func NewRevocationWatcher(d *sqlx.DB, set *auth.RevokedSessions, hub *notify.Hub, now func() time.Time, log *slog.Logger) *RevocationWatcher {
	if log == nil {
		log = slog.Default()
	}
	return &RevocationWatcher{db: d, set: set, hub: hub, sub: hub.Subscribe(RevokedChannel), now: now,
		log: log.With(slog.String("component", "account.revocations")), ready: make(chan struct{})}
}

// Ready is closed once the hub listens and the watcher has loaded the
// revocations that were committed before: from then on the set misses none.
func (w *RevocationWatcher) Ready() <-chan struct{} { return w.ready }

// retryInterval is how soon a failed load is tried again.
const retryInterval = time.Second

// probePrefix started the probes of the watchers before the hub (a replica of
// an earlier version may still send them): ignored.
const probePrefix = "probe:"

// Run watches until ctx ends (the hub runs on its own).
func (w *RevocationWatcher) Run(ctx context.Context) {
	// listening: the hub's Missed note came, which it sends once LISTEN is in
	// effect; a load after that misses nothing committed before.
	stale, listening := true, false
	hubReady := w.hub.Ready()
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
		if !stale && listening && hubReady == nil {
			select {
			case <-w.ready:
			default:
				close(w.ready)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-hubReady:
			hubReady = nil
		case n := <-w.sub.C():
			switch {
			case n.Missed:
				stale, listening = true, true
			case strings.HasPrefix(n.Payload, probePrefix):
			case !w.add(n.Payload):
				w.log.Error("bad session revocation payload; reloading", slog.Int("bytes", len(n.Payload)))
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
