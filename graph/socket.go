package graph

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/loader"
	"tenantgraph/internal/platform/reqmeta"
)

// SocketLimits bound the subscriptions served over websockets
// (docs/events.md, "Limits"). Counts are per process.
type SocketLimits struct {
	// PerSocket is the subscriptions at once on one socket.
	PerSocket int
	// PerUser is the subscriptions at once of one user, over all their sockets.
	PerUser int
	// Total is the subscriptions at once in the process.
	Total int
	// SocketsPerUser is the signed-in sockets at once of one user: one more
	// is closed with 1013 (try again later).
	SocketsPerUser int
	// Sockets is the websockets at once in the process, signed in or not
	// yet: one more upgrade is refused with HTTP 503 (the app's edge counts them).
	Sockets int
}

// DefaultSocketLimits are the documented limits.
var DefaultSocketLimits = SocketLimits{PerSocket: 10, PerUser: 100, Total: 20_000, SocketsPerUser: 32, Sockets: 20_000}

// The limits' names, in a refusal's extensions.limit.
const (
	LimitSocketSubscriptions = "socket_subscriptions"
	LimitUserSubscriptions   = "user_subscriptions"
	LimitServerSubscriptions = "server_subscriptions"
)

// Close codes of the websocket (graphql-transport-ws keeps 4400-4499).
const (
	// CloseForbidden: connection_init without a valid access token (a
	// graphql-ws client does not retry it).
	CloseForbidden = 4403
	// CloseTryAgainLater: the user has SocketsPerUser sockets already.
	CloseTryAgainLater = 1013
)

// SocketInitTimeout is how long a socket may wait before its connection_init.
const SocketInitTimeout = 10 * time.Second

// SocketOptions serve subscriptions over graphql-transport-ws on the endpoint.
type SocketOptions struct {
	// Verify checks an access token: its viewer and when it expires.
	Verify func(token string) (auth.Viewer, time.Time, error)
	// Revoked ends the sockets of a session once it is revoked.
	Revoked *auth.RevokedSessions
	// Loaders returns fresh loaders: each operation, and each event a
	// subscription resolves, gets its own.
	Loaders func() *loader.Loaders
	Limits  SocketLimits
	// Now is the clock of token expiry (nil: time.Now).
	Now func() time.Time
}

// sockets counts the process's sockets and subscriptions.
type sockets struct {
	o SocketOptions

	mu          sync.Mutex
	total       int
	userSubs    map[uuid.UUID]int
	userSockets map[uuid.UUID]int
	open        map[*socket]context.CancelCauseFunc
}

// socket is one signed-in connection; its operations find it in their context.
type socket struct {
	all     *sockets
	viewer  auth.Viewer
	expires time.Time
	meta    *reqmeta.Meta // the upgrade request's
	ops     atomic.Int64
	subs    int // under all.mu
	stop    func()
}

type socketKey struct{}

func socketFrom(ctx context.Context) *socket {
	s, _ := ctx.Value(socketKey{}).(*socket)
	return s
}

// errSessionEnded and errTokenExpired end a socket's context, and its
// subscriptions with it.
var (
	errSessionEnded = errors.New("the session ended")
	errTokenExpired = errors.New("the access token expired")
)

func newSockets(o SocketOptions) *sockets {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &sockets{o: o, userSubs: map[uuid.UUID]int{}, userSockets: map[uuid.UUID]int{}, open: map[*socket]context.CancelCauseFunc{}}
}

// transport is the graphql-transport-ws (and legacy graphql-ws) transport.
// The HTTP edge checked the request's Origin (app: CORS_ALLOWED_ORIGINS).
func (s *sockets) transport() transport.Websocket {
	return transport.Websocket{
		Implementation: transport.CoderWebsocketImplementation{AcceptOptions: websocket.AcceptOptions{InsecureSkipVerify: true}},
		InitFunc:       s.init,
		InitTimeout:    SocketInitTimeout,
		CloseFunc:      s.closed,
		// A ping every 25 s; a client that answers none for 50 s is gone.
		PingPongInterval:      25 * time.Second,
		KeepAlivePingInterval: 25 * time.Second,
	}
}

// init authenticates connection_init: {"authorization": "Bearer <access token>"}
// (the Bearer prefix is optional). No valid token: close 4403.
func (s *sockets) init(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	tok := strings.TrimSpace(p.Authorization())
	if scheme, rest, ok := strings.Cut(tok, " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(rest)
	}
	forbidden := func(msg string) (context.Context, *transport.InitPayload, error) {
		return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, CloseForbidden), "Forbidden"), nil, errors.New(msg)
	}
	if tok == "" {
		return forbidden("connection_init needs {\"authorization\": \"Bearer <access token>\"}")
	}
	v, exp, err := s.o.Verify(tok)
	if err != nil || s.o.Revoked.Has(v.SessionID) {
		return forbidden("the access token is not valid")
	}
	s.mu.Lock()
	if s.o.Limits.SocketsPerUser > 0 && s.userSockets[v.UserID] >= s.o.Limits.SocketsPerUser {
		s.mu.Unlock()
		return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, CloseTryAgainLater), "too many sockets"), nil,
			fmt.Errorf("too many sockets at once: at most %d per user", s.o.Limits.SocketsPerUser)
	}
	s.userSockets[v.UserID]++
	s.mu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	// expires is on the process's monotonic clock; exp on the token's (Now).
	sock := &socket{all: s, viewer: v, expires: time.Now().Add(exp.Sub(s.o.Now())), meta: reqmeta.From(ctx)}
	sock.stop = s.o.Revoked.Watch(v.SessionID, func() { cancel(errSessionEnded) })
	s.mu.Lock()
	s.open[sock] = cancel
	s.mu.Unlock()
	ctx = context.WithValue(auth.WithViewer(ctx, v), socketKey{}, sock)
	return ctx, nil, nil
}

// counts returns the signed-in sockets and the subscriptions open now.
func (s *sockets) counts() (socks, subs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open), s.total
}

// errShutdown ends the sockets of a server shutting down.
var errShutdown = errors.New("the server is shutting down")

// closeAll closes every signed-in socket (code 1000): http.Server.Shutdown
// does not wait for the connections it handed over to websockets.
func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.open {
		cancel(errShutdown)
	}
}

// closed releases what init took.
func (s *sockets) closed(ctx context.Context, _ int) {
	sock := socketFrom(ctx)
	if sock == nil {
		return
	}
	sock.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, sock)
	if s.userSockets[sock.viewer.UserID]--; s.userSockets[sock.viewer.UserID] <= 0 {
		delete(s.userSockets, sock.viewer.UserID)
	}
}

// operation scopes one operation of a socket: its own request metadata and
// loaders. Only subscriptions run there (queries and mutations go over HTTP,
// where admission and the request limits apply); a subscription sent over
// HTTP is refused.
func (s *sockets) operation(ctx context.Context, op *ast.OperationDefinition) (context.Context, error) {
	sock := socketFrom(ctx)
	sub := op != nil && op.Operation == ast.Subscription
	switch {
	case sock == nil && sub:
		return ctx, apperr.New(apperr.BadUserInput, "subscriptions are served over a websocket (graphql-transport-ws) on this endpoint")
	case sock == nil:
		return ctx, nil
	case !sub:
		return ctx, apperr.New(apperr.BadUserInput, "only subscriptions run over the websocket: send queries and mutations over HTTP")
	}
	n := sock.ops.Add(1)
	meta := &reqmeta.Meta{ID: sock.meta.ID + "." + strconv.FormatInt(n, 10), IP: sock.meta.IP, UserAgent: sock.meta.UserAgent}
	return loader.With(reqmeta.With(ctx, meta), s.o.Loaders()), nil
}

// response empties the operation's loaders before each event of a socket's
// subscription: an event resolves with what is current, not with what an
// earlier event read. A subscription resolves its events one at a time, and
// emptying the loaders is cheaper than making new ones (BenchmarkEventDelivery:
// 70 allocations fewer per delivery).
func (s *sockets) response(ctx context.Context) context.Context {
	if socketFrom(ctx) == nil {
		return ctx
	}
	if l := loader.FromOK(ctx); l != nil {
		l.ClearAll()
	}
	return ctx
}

// acquire takes one subscription of the socket in ctx against the limits;
// release gives it back. No socket: nothing is counted.
func (s *sockets) acquire(ctx context.Context) (release func(), err error) {
	sock := socketFrom(ctx)
	if sock == nil {
		return func() {}, nil
	}
	l := s.o.Limits
	user := sock.viewer.UserID
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case l.Total > 0 && s.total >= l.Total:
		return nil, apperr.Limited(LimitServerSubscriptions, "the server has its maximum of subscriptions: retry shortly")
	case l.PerUser > 0 && s.userSubs[user] >= l.PerUser:
		return nil, apperr.Limited(LimitUserSubscriptions, "too many subscriptions at once: at most %d per user", l.PerUser)
	case l.PerSocket > 0 && sock.subs >= l.PerSocket:
		return nil, apperr.Limited(LimitSocketSubscriptions, "too many subscriptions at once: at most %d per connection", l.PerSocket)
	}
	s.total++
	s.userSubs[user]++
	sock.subs++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.total--
			sock.subs--
			if s.userSubs[user]--; s.userSubs[user] <= 0 {
				delete(s.userSubs, user)
			}
		})
	}, nil
}

// ended is a subscription's start failing with err: when the client or the
// socket stopped it meanwhile (err is then the cancellation), there is no one
// to tell, and it ends without an error instead of an internal one.
func ended[T any](ctx context.Context, err error) (<-chan T, error) {
	if ctx.Err() != nil {
		ch := make(chan T)
		close(ch)
		return ch, nil
	}
	return nil, err
}

// stream hands next's events to gqlgen, one at a time, until next fails, the
// operation ends (the client's complete, the socket's close, the session's
// revocation) or the access token expires. An error that ends it is sent as
// the operation's error message (graphql-transport-ws "error"): NOT_FOUND,
// SLOW_CONSUMER, UNAUTHENTICATED (token expired).
func stream[T any](ctx context.Context, present graphql.ErrorPresenterFunc, release func(),
	next func(ctx context.Context) ([]T, error), done func()) <-chan T {
	ch := make(chan T)
	until := ctx
	cancel := context.CancelFunc(func() {})
	if sock := socketFrom(ctx); sock != nil {
		until, cancel = context.WithDeadlineCause(ctx, sock.expires, errTokenExpired)
	}
	go func() {
		defer close(ch)
		defer release()
		defer done()
		defer cancel()
		fail := func(err error) {
			if ctx.Err() != nil { // stopped by the client or the socket: nothing to say
				return
			}
			if errors.Is(context.Cause(until), errTokenExpired) {
				err = apperr.New(apperr.Unauthenticated, "the access token expired: connect again with a new one")
			}
			transport.AddSubscriptionError(ctx, present(ctx, err))
		}
		for {
			items, err := next(until)
			if err != nil {
				fail(err)
				return
			}
			for _, it := range items {
				select {
				case ch <- it:
				case <-until.Done():
					fail(until.Err())
					return
				}
			}
		}
	}()
	return ch
}
