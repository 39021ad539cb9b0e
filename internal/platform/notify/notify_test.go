package notify_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/internal/platform/notify"
)

var database *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, &database) }

// runHub starts a hub on the test database with subs subscribed before it
// runs, and waits until it is Ready.
func runHub(t *testing.T, channels ...string) (*notify.Hub, []*notify.Sub) {
	t.Helper()
	h := notify.New(database.DirectURL, database.DB, slog.New(slog.NewTextHandler(io.Discard, nil)))
	subs := make([]*notify.Sub, len(channels))
	for i, ch := range channels {
		subs[i] = h.Subscribe(ch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the hub never became ready")
	}
	return h, subs
}

func send(t *testing.T, channel, payload string) {
	t.Helper()
	if _, err := database.DB.Exec(`SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		t.Fatal(err)
	}
}

// next returns s's next note, failing after a few seconds.
func next(t *testing.T, s *notify.Sub) notify.Note {
	t.Helper()
	select {
	case n := <-s.C():
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no note")
		return notify.Note{}
	}
}

func wantNone(t *testing.T, s *notify.Sub) {
	t.Helper()
	select {
	case n := <-s.C():
		t.Fatalf("unexpected note %+v", n)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestHubFansOutByChannel: every subscriber first hears that it must load
// (LISTEN took effect), then gets each notification of its channel once, and
// none of another channel's; one subscribing while the hub runs too.
func TestHubFansOutByChannel(t *testing.T) {
	h, subs := runHub(t, "hub_a", "hub_a", "hub_b")
	for i, s := range subs {
		if n := next(t, s); !n.Missed {
			t.Fatalf("sub %d's first note = %+v, want Missed", i, n)
		}
	}
	late := h.Subscribe("hub_b")
	if n := next(t, late); !n.Missed {
		t.Fatalf("a late subscriber's first note = %+v, want Missed", n)
	}
	send(t, "hub_a", "one")
	send(t, "hub_b", "two")
	for i, s := range subs[:2] {
		if n := next(t, s); n.Payload != "one" || n.Missed {
			t.Errorf("sub %d of hub_a got %+v", i, n)
		}
		wantNone(t, s)
	}
	for _, s := range []*notify.Sub{subs[2], late} {
		if n := next(t, s); n.Payload != "two" {
			t.Errorf("a sub of hub_b got %+v", n)
		}
	}
}

// TestHubSubscriberThatFallsBehindHearsSo: a subscriber that does not read
// loses its oldest notes beyond the buffer, and its queue ends with a Missed
// note, never silently.
func TestHubSubscriberThatFallsBehindHearsSo(t *testing.T) {
	_, subs := runHub(t, "hub_slow")
	s := subs[0]
	next(t, s) // the Missed of LISTEN
	for i := range notify.Buffer + 10 {
		send(t, "hub_slow", string(rune('a'+i%26)))
	}
	time.Sleep(500 * time.Millisecond) // let the hub deliver them all
	var last notify.Note
	n := 0
	for drained := false; !drained; {
		select {
		case last = <-s.C():
			n++
		default:
			drained = true
		}
	}
	if n != notify.Buffer || !last.Missed {
		t.Fatalf("%d notes queued, the last %+v: want %d ending with Missed", n, last, notify.Buffer)
	}
}

// TestHubReconnects: when its connection is killed, the hub reconnects,
// tells every subscriber it may have missed notes, and delivers again.
func TestHubReconnects(t *testing.T) {
	_, subs := runHub(t, "hub_reconnect")
	s := subs[0]
	next(t, s)
	res, err := database.DB.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN "hub_reconnect"%'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d LISTEN connections found, want 1", n)
	}
	if n := next(t, s); !n.Missed {
		t.Fatalf("after the reconnection: %+v, want Missed", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		send(t, "hub_reconnect", "again")
		select {
		case n := <-s.C():
			if n.Payload != "again" {
				t.Fatalf("got %+v", n)
			}
			return
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no notification after the reconnection")
			}
		}
	}
}
