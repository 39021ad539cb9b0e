// Package notify is the process's one PostgreSQL LISTEN connection: a hub that
// listens on every channel some part of the process subscribed to and fans
// each notification out to that channel's subscribers (the mail worker's
// wake-up, the session revocations, the organization events).
//
// LISTEN needs a session-level connection of its own, straight to PostgreSQL
// (DATABASE_DIRECT_URL; a PgBouncer in transaction mode accepts the LISTEN and
// never delivers anything). The hub proves its connection receives: it is
// Ready only once a probe it sent through the pool came back on it, and past
// ProbeTimeout without it, it logs what is wrong, once.
//
// A subscriber is never left unaware of what it missed: after LISTEN takes
// effect, after every reconnection (notifications sent meanwhile are lost) and
// when it falls more than Buffer notes behind, it gets a Note with Missed set,
// and reloads from the database what it keeps.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Buffer is how many notes a subscriber may fall behind before the oldest is
// dropped for a Missed note.
const Buffer = 64

// ProbeTimeout is how long the hub waits for its probe before it logs that its
// LISTEN connection receives nothing.
const ProbeTimeout = 10 * time.Second

// probeChannel carries the hubs' probes; each hub ignores the others'.
const probeChannel = "tenantgraph_listen_probe"

// Note is what a subscriber receives: a notification's payload, or Missed
// when notifications may have been lost (reload what you keep).
type Note struct {
	Payload string
	Missed  bool
}

// Sub is one subscription to a channel.
type Sub struct {
	ch chan Note
}

// C delivers the subscription's notes.
func (s *Sub) C() <-chan Note { return s.ch }

// deliver queues n without blocking the hub: a full queue gives up its oldest
// note for a Missed one, so the subscriber learns it missed something.
func (s *Sub) deliver(n Note) {
	select {
	case s.ch <- n:
		return
	default:
	}
	select {
	case <-s.ch:
	default:
	}
	select {
	case s.ch <- Note{Missed: true}:
	default:
	}
}

// Hub is the process's LISTEN connection and its subscribers.
type Hub struct {
	url    string
	db     sqlx.ExecerContext
	log    *slog.Logger
	ready  chan struct{}
	mu     sync.Mutex
	subs   map[string][]*Sub
	listen func(channel string) error // once Run has a listener
}

// New returns a hub listening through its own connection to listenURL and
// sending its probe through db (the pool).
func New(listenURL string, db sqlx.ExecerContext, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{url: listenURL, db: db, log: log.With(slog.String("component", "notify")),
		ready: make(chan struct{}), subs: map[string][]*Sub{}}
}

// Ready is closed once the hub listens and its probe came back: from then on
// every notification committed reaches the subscribers (or a Missed note does).
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Subscribe returns a subscription to channel, before or while the hub runs.
func (h *Hub) Subscribe(channel string) *Sub {
	s := &Sub{ch: make(chan Note, Buffer)}
	h.mu.Lock()
	first := len(h.subs[channel]) == 0
	h.subs[channel] = append(h.subs[channel], s)
	listen := h.listen
	h.mu.Unlock()
	if listen != nil { // else Run listens, then tells every subscriber to load
		if first {
			if err := listen(channel); err != nil && !errors.Is(err, pq.ErrChannelAlreadyOpen) {
				h.log.Error("listen", slog.String("channel", channel), slog.Any("err", err))
			}
		}
		// LISTEN is in effect: what was committed before is the subscriber's to load.
		s.deliver(Note{Missed: true})
	}
	return s
}

// fanOut gives n to every subscriber of channel ("" for all of them).
func (h *Hub) fanOut(channel string, n Note) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch, subs := range h.subs {
		if channel == "" || ch == channel {
			for _, s := range subs {
				s.deliver(n)
			}
		}
	}
}

// Run listens until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	l := pq.NewListener(h.url, time.Second, 30*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			h.log.Warn("listener", slog.String("event", ev.String()), slog.Any("err", err))
		}
	})
	defer l.Close() //nolint:errcheck
	listening := make(chan error, 1)
	// Listen blocks until the connection is up; it fails with net.ErrClosed once closed.
	go func() { listening <- l.Listen(probeChannel) }()
	select {
	case <-ctx.Done():
		return
	case err := <-listening:
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				h.log.Error("listen", slog.Any("err", err))
			}
			return
		}
	}
	h.mu.Lock()
	h.listen = l.Listen
	channels := make([]string, 0, len(h.subs))
	for ch := range h.subs {
		channels = append(channels, ch)
	}
	h.mu.Unlock()
	for _, ch := range channels {
		if err := l.Listen(ch); err != nil && !errors.Is(err, pq.ErrChannelAlreadyOpen) {
			h.log.Error("listen", slog.String("channel", ch), slog.Any("err", err))
		}
	}
	// LISTEN took effect: what committed before is the subscribers' to load.
	h.fanOut("", Note{Missed: true})

	probe, probeSent, probed, warned := uuid.NewString(), false, false, false
	probeBy := time.Now().Add(ProbeTimeout)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		if !probeSent {
			if _, err := h.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, probeChannel, probe); err != nil {
				if ctx.Err() != nil {
					return
				}
				h.log.Error("probing the listener failed; retrying", slog.Any("err", err))
			} else {
				probeSent = true
			}
		}
		if !probed && !warned && time.Now().After(probeBy) {
			warned = true
			h.log.Error("the LISTEN connection receives no notifications (session revocations, mail, events): "+
				"a NOTIFY sent through DATABASE_URL did not reach the LISTEN of DATABASE_DIRECT_URL (default DATABASE_URL); "+
				"point DATABASE_DIRECT_URL at PostgreSQL itself, not at a pooler in transaction mode", slog.Duration("waited", ProbeTimeout))
		}
		select {
		case <-ctx.Done():
			return
		case n := <-l.NotificationChannel():
			switch {
			case n == nil: // reconnected: notifications may have been lost
				probeSent = probed // a probe sent before may be among them
				h.fanOut("", Note{Missed: true})
			case n.Channel == probeChannel:
				if n.Extra == probe && !probed {
					probed = true
					close(h.ready)
				}
			default:
				h.fanOut(n.Channel, Note{Payload: n.Extra})
			}
		case <-retry.C:
		}
	}
}
