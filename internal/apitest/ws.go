package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WS is a graphql-transport-ws client of the server's /query (the protocol
// of the graphql-ws npm library, written out here so that the tests see every
// message and close code).
type WS struct {
	conn *websocket.Conn
	msgs chan WSMessage
	done chan struct{}

	mu     sync.Mutex
	closed error // why the socket ended (a websocket.CloseError for a close frame)
}

// WSMessage is one message the server sent.
type WSMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Response decodes a next message's payload.
func (m WSMessage) Response(t testing.TB) Response {
	t.Helper()
	var r Response
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		t.Fatalf("next payload %s: %v", m.Payload, err)
	}
	r.Raw = string(m.Payload)
	return r
}

// Errors decodes an error message's payload.
func (m WSMessage) Errors(t testing.TB) []Error {
	t.Helper()
	var errs []Error
	if err := json.Unmarshal(m.Payload, &errs); err != nil {
		t.Fatalf("error payload %s: %v", m.Payload, err)
	}
	return errs
}

// WSOptions shape DialWS.
type WSOptions struct {
	Origin string
	// Init is connection_init's payload; nil sends {"authorization": "Bearer <token>"}.
	Init map[string]any
}

// DialWS opens a socket as token and completes connection_init. It returns
// the socket, or the error that ended it: a refused upgrade, or the close
// frame (websocket.CloseStatus(err) gives its code).
func (s *Server) DialWS(t testing.TB, token string, o WSOptions) (*WS, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	c, resp, err := websocket.Dial(ctx, strings.Replace(s.URL, "http", "ws", 1)+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, &UpgradeError{Status: resp.StatusCode}
		}
		return nil, err
	}
	c.SetReadLimit(8 << 20)
	w := &WS{conn: c, msgs: make(chan WSMessage, 10_000), done: make(chan struct{})}
	go w.read()
	t.Cleanup(w.Close)
	init := o.Init
	if init == nil {
		init = map[string]any{"authorization": "Bearer " + token}
	}
	w.Send(t, WSMessage{Type: "connection_init", Payload: mustJSON(init)})
	m, err := w.Next(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v", m)
	}
	return w, nil
}

// MustDialWS is DialWS that fails the test on an error.
func (s *Server) MustDialWS(t testing.TB, token string) *WS {
	t.Helper()
	w, err := s.DialWS(t, token, WSOptions{})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	return w
}

// UpgradeError is an upgrade the server refused with an HTTP status.
type UpgradeError struct{ Status int }

func (e *UpgradeError) Error() string { return "upgrade refused: " + http.StatusText(e.Status) }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (w *WS) read() {
	defer close(w.done)
	for {
		_, b, err := w.conn.Read(context.Background())
		if err != nil {
			w.mu.Lock()
			w.closed = err
			w.mu.Unlock()
			return
		}
		var m WSMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		if m.Type == "ping" {
			w.write(WSMessage{Type: "pong"})
			continue
		}
		if m.Type == "pong" {
			continue
		}
		w.msgs <- m
	}
}

func (w *WS) write(m WSMessage) error {
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.conn.Write(ctx, websocket.MessageText, b)
}

// Send writes one message.
func (w *WS) Send(t testing.TB, m WSMessage) {
	t.Helper()
	if err := w.write(m); err != nil {
		t.Fatalf("websocket send %s: %v", m.Type, err)
	}
}

// Subscribe starts operation id.
func (w *WS) Subscribe(t testing.TB, id, query string, vars map[string]any) {
	t.Helper()
	w.Send(t, WSMessage{Type: "subscribe", ID: id, Payload: mustJSON(map[string]any{"query": query, "variables": vars})})
}

// Stop sends complete for operation id.
func (w *WS) Stop(t testing.TB, id string) {
	t.Helper()
	w.Send(t, WSMessage{Type: "complete", ID: id})
}

// ErrWSTimeout is Next's error when nothing came in time.
var ErrWSTimeout = errors.New("websocket: no message in time")

// Next returns the next message within timeout; once the socket ended and
// every message was read, the error that ended it.
func (w *WS) Next(timeout time.Duration) (WSMessage, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-w.msgs:
		return m, nil
	case <-t.C:
		return WSMessage{}, ErrWSTimeout
	case <-w.done:
		select {
		case m := <-w.msgs:
			return m, nil
		default:
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		return WSMessage{}, w.closed
	}
}

// Done is closed once the socket has ended.
func (w *WS) Done() <-chan struct{} { return w.done }

// Close closes the socket (normal closure).
func (w *WS) Close() { w.conn.Close(websocket.StatusNormalClosure, "") } //nolint:errcheck

// CloseNow drops the connection without a close handshake (a network cut).
func (w *WS) CloseNow() { w.conn.CloseNow() } //nolint:errcheck
