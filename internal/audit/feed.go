package audit

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/notify"
	"tenantgraph/internal/tenant"
)

// EventsChannel is where audit_seal announces what it chained:
// "<organization id>:<its newest chain number>".
const EventsChannel = "org_events"

// FeedEvent is one committed, chained event as organizationEvents delivers
// it. Seq is its chain number: the organization's commit order, the cursor.
type FeedEvent struct {
	Seq            int64      `db:"seq"`
	ID             uuid.UUID  `db:"id"`
	OrganizationID uuid.UUID  `db:"organization_id"`
	ActorID        *uuid.UUID `db:"-"`
	Action         string     `db:"action"`
	TargetType     string     `db:"target_type"`
	TargetID       string     `db:"target_id"`
	CreatedAt      time.Time  `db:"created_at"`

	subject, actor shared
}

// shared is a value read once for every subscriber of a process that
// receives the event from the feed.
type shared struct {
	mu     sync.Mutex
	loaded bool
	v      any
}

// get returns what load returns the first time it succeeds.
func (s *shared) get(load func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return s.v, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	s.v, s.loaded = v, true
	return v, nil
}

// Subject returns what load returns the first time it succeeds: the
// subscribers of one process that receive the event from the feed share one
// read of the changed object.
func (e *FeedEvent) Subject(load func() (any, error)) (any, error) { return e.subject.get(load) }

// Actor is Subject's sharing for the event's actor (a user: the fields a
// viewer may not see are decided per viewer when they resolve).
func (e *FeedEvent) Actor(load func() (any, error)) (any, error) { return e.actor.get(load) }

// AdminOnly reports whether only ADMINs and OWNERs receive e: the events about
// invitations, as in the audit log (an invitation's email and role).
func (e *FeedEvent) AdminOnly() bool { return e.TargetType == "invitation" }

const cursorPrefix = "ev1:"

// areaRe is a types entry naming every action of an area ("order.*").
var areaRe = regexp.MustCompile(`^[a-z_]+\.\*$`)

// EventCursor is the opaque cursor of chain number seq.
func EventCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// ParseEventCursor reads an EventCursor (BAD_USER_INPUT on field after when it is none).
func ParseEventCursor(s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && strings.HasPrefix(string(b), cursorPrefix) {
		if n, err := strconv.ParseInt(string(b[len(cursorPrefix):]), 10, 64); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, apperr.Invalid("after", "not a cursor of organizationEvents")
}

const feedColumns = `c.seq, e.id, e.organization_id, e.actor_id, e.action, coalesce(e.target_type, '') AS target_type,
	coalesce(e.target_id, '') AS target_id, e.created_at`

type feedRow struct {
	FeedEvent
	Actor *uuid.UUID `db:"actor_id"`
}

func feedEvents(rows []*feedRow) []*FeedEvent {
	out := make([]*FeedEvent, len(rows))
	for i, r := range rows {
		r.FeedEvent.ActorID = r.Actor
		out[i] = &r.FeedEvent
	}
	return out
}

// Chained returns org's chained events after chain number after, in chain
// order, at most limit.
func (Store) Chained(ctx context.Context, q sqlx.QueryerContext, org uuid.UUID, after int64, limit int) ([]*FeedEvent, error) {
	var rows []*feedRow
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+feedColumns+`
		FROM audit_chain c JOIN audit_events e ON e.organization_id = c.organization_id AND e.id = c.event_id
		WHERE c.organization_id = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3`, org, after, limit)
	return feedEvents(rows), err
}

// ChainedAfter returns, for each organization orgs[i], its chained events
// after chain number afters[i] (at most limit each), in one statement.
func (Store) ChainedAfter(ctx context.Context, q sqlx.QueryerContext, orgs []uuid.UUID, afters []int64, limit int) ([]*FeedEvent, error) {
	var rows []*feedRow
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+feedColumns+`
		FROM unnest($1::uuid[], $2::bigint[]) AS p(org, after)
		CROSS JOIN LATERAL (SELECT * FROM audit_chain c WHERE c.organization_id = p.org AND c.seq > p.after
			ORDER BY c.seq LIMIT $3) c
		JOIN audit_events e ON e.organization_id = c.organization_id AND e.id = c.event_id
		ORDER BY c.organization_id, c.seq`, pq.Array(orgs), pq.Array(afters), limit)
	return feedEvents(rows), err
}

// Heads returns each organization's newest chain number (0: none yet).
func (Store) Heads(ctx context.Context, q sqlx.QueryerContext, orgs []uuid.UUID) (map[uuid.UUID]int64, error) {
	var rows []struct {
		Org  uuid.UUID `db:"org"`
		Head int64     `db:"head"`
	}
	err := sqlx.SelectContext(ctx, q, &rows, `SELECT o AS org, coalesce((SELECT c.seq FROM audit_chain c
		WHERE c.organization_id = o ORDER BY c.seq DESC LIMIT 1), 0) AS head FROM unnest($1::uuid[]) AS o`, pq.Array(orgs))
	out := make(map[uuid.UUID]int64, len(rows))
	for _, r := range rows {
		out[r.Org] = r.Head
	}
	return out, err
}

// FeedLimits bound what a Feed keeps and replays.
type FeedLimits struct {
	// MaxLag is how many events a live subscription may fall behind its
	// organization's newest before it ends with SLOW_CONSUMER (and the cursor
	// to resume from).
	MaxLag int
	// MaxReplay is how far behind the newest event a subscription's after may
	// be (farther: BAD_USER_INPUT; reload, then subscribe without after).
	MaxReplay int
	// MaxTypes is how many types one subscription may name.
	MaxTypes int
}

// DefaultFeedLimits are the documented limits (docs/events.md).
var DefaultFeedLimits = FeedLimits{MaxLag: 1000, MaxReplay: 10_000, MaxTypes: 20}

// feedPage is how many events one read fetches.
const feedPage = 500

// keepRecent is how many of an organization's newest events the feed keeps
// even when every subscription has them: a client reconnecting after a
// deploy resumes from memory.
const keepRecent = 64

// FeedPoll is how often the feed reads its organizations' new links without
// being told (a notification lost with a connection is also reported by the
// hub; this is the floor).
const FeedPoll = time.Second

// Roles reads a user's role in an organization ("" when not a member).
type Roles func(ctx context.Context, org, user uuid.UUID) (tenant.Role, error)

// Feed is the process's view of the organizations' chained events: for each
// organization that has subscriptions here, the newest events, read once per
// seal announcement (EventsChannel) however many subscribe, and handed to
// each subscription in chain order. A subscription behind them (resuming
// after an older cursor) reads the database until it reaches them.
type Feed struct {
	db     *sqlx.DB
	store  Store
	sub    *notify.Sub
	roles  Roles
	limits FeedLimits
	log    *slog.Logger

	mu   sync.Mutex
	orgs map[uuid.UUID]*orgFeed
	kick chan struct{}
}

type orgFeed struct {
	head    int64        // the newest chain number read; -1 until read
	ring    []*FeedEvent // the newest events read, ascending and consecutive; the last is head
	want    bool         // a seal announced links past head
	subs    map[*Subscription]struct{}
	changed chan struct{} // closed (and replaced) when head moves
}

// NewFeed returns the feed of d's chained events, told of new ones through hub.
func NewFeed(d *sqlx.DB, hub *notify.Hub, roles Roles, limits FeedLimits, log *slog.Logger) *Feed {
	if log == nil {
		log = slog.Default()
	}
	return &Feed{db: d, sub: hub.Subscribe(EventsChannel), roles: roles, limits: limits,
		log: log.With(slog.String("component", "audit.feed")), orgs: map[uuid.UUID]*orgFeed{}, kick: make(chan struct{}, 1)}
}

// Run reads new events until ctx ends.
func (f *Feed) Run(ctx context.Context) {
	poll := time.NewTicker(FeedPoll)
	defer poll.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case n := <-f.sub.C():
			all = f.note(n)
		case <-f.kick:
		case <-poll.C:
			all = true
		}
		// Every announcement queued meanwhile is read with this one.
	drain:
		for {
			select {
			case n := <-f.sub.C():
				all = f.note(n) || all
			default:
				break drain
			}
		}
		if err := f.refresh(ctx, all); err != nil && ctx.Err() == nil {
			f.log.Error("reading organization events", slog.Any("err", err))
		}
	}
}

// note marks the organization a seal announced; it reports whether every
// organization must be read (a missed notification).
func (f *Feed) note(n notify.Note) bool {
	if n.Missed {
		return true
	}
	orgText, seqText, _ := strings.Cut(n.Payload, ":")
	org, err1 := uuid.Parse(orgText)
	seq, err2 := strconv.ParseInt(seqText, 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if of := f.orgs[org]; of != nil && seq > of.head {
		of.want = true
	}
	return false
}

// refresh reads the heads of new organizations and the new events of the
// announced ones (all: of every organization).
func (f *Feed) refresh(ctx context.Context, all bool) error {
	f.mu.Lock()
	var fresh, orgs []uuid.UUID
	var afters []int64
	for id, of := range f.orgs {
		switch {
		case of.head < 0:
			fresh = append(fresh, id)
		case all || of.want:
			of.want = false
			orgs = append(orgs, id)
			afters = append(afters, of.head)
		}
	}
	f.mu.Unlock()
	if len(fresh) > 0 {
		heads, err := f.store.Heads(ctx, f.db, fresh)
		if err != nil {
			return err
		}
		f.mu.Lock()
		for id, h := range heads {
			if of := f.orgs[id]; of != nil && of.head < 0 {
				of.head = h
				of.moved()
			}
		}
		f.mu.Unlock()
	}
	for len(orgs) > 0 {
		evs, err := f.store.ChainedAfter(ctx, f.db, orgs, afters, feedPage)
		if err != nil {
			f.mu.Lock()
			for _, id := range orgs {
				if of := f.orgs[id]; of != nil {
					of.want = true
				}
			}
			f.mu.Unlock()
			return err
		}
		count := map[uuid.UUID]int{}
		f.mu.Lock()
		for _, e := range evs {
			count[e.OrganizationID]++
			if of := f.orgs[e.OrganizationID]; of != nil && e.Seq == of.head+1 {
				of.ring = append(of.ring, e)
				of.head = e.Seq
			}
		}
		// A full page may have more behind it.
		orgs, afters = orgs[:0], afters[:0]
		for id, n := range count {
			of := f.orgs[id]
			if of == nil {
				continue
			}
			f.trim(of)
			of.moved()
			if n == feedPage {
				orgs = append(orgs, id)
				afters = append(afters, of.head)
			}
		}
		f.mu.Unlock()
	}
	return nil
}

// trim drops the events every subscription in the ring has passed, keeping
// the newest keepRecent, and never more than MaxLag (a subscription left
// behind then ends as a slow consumer). f.mu is held.
func (f *Feed) trim(of *orgFeed) {
	if len(of.ring) == 0 {
		return
	}
	low := of.head
	first := of.ring[0].Seq
	for s := range of.subs {
		if s.cursor >= first-1 && s.cursor < low {
			low = s.cursor
		}
	}
	drop := int(low - first + 1)                   // passed by every subscription reading the ring
	drop = min(drop, len(of.ring)-keepRecent)      // keep the newest few
	drop = max(drop, len(of.ring)-f.limits.MaxLag) // never more than MaxLag
	if drop > 0 {
		of.ring = append(of.ring[:0:0], of.ring[drop:]...)
	}
}

// moved wakes the subscriptions waiting for of's head. f.mu is held.
func (of *orgFeed) moved() {
	close(of.changed)
	of.changed = make(chan struct{})
}

// Subscription is one subscriber's position in an organization's events.
type Subscription struct {
	f     *Feed
	of    *orgFeed
	org   uuid.UUID
	user  uuid.UUID
	role  tenant.Role
	types []string

	cursor    int64 // the last event handed out or passed over (under f.mu)
	delivered int64 // the last event handed out
	start     int64 // the newest event when it began: up to it, a replay
	suspended bool  // replaying a time the user was not a member
	end       error // returned by the next Next
}

// SubscribeRequest is who subscribes to which organization's events, from where.
type SubscribeRequest struct {
	Org, User uuid.UUID
	// Role is the user's role when subscribing (the caller checked membership).
	Role tenant.Role
	// After, when set, is the chain number after which to begin (replayed from
	// the database); nil begins with the next event.
	After *int64
	// Types, when not empty, keeps only the events whose action is one of
	// them, or begins with one that ends in ".*" ("order.*").
	Types []string
}

// Subscribe begins a subscription; Close it when done.
func (f *Feed) Subscribe(ctx context.Context, r SubscribeRequest) (*Subscription, error) {
	if len(r.Types) > f.limits.MaxTypes {
		return nil, apperr.Invalid("types", "at most %d types", f.limits.MaxTypes)
	}
	for i, t := range r.Types {
		if !actionRe.MatchString(t) && !areaRe.MatchString(t) {
			return nil, apperr.Invalid(fmt.Sprintf("types[%d]", i), "a type is an action such as order.created, or an area such as order.*")
		}
	}
	s := &Subscription{f: f, org: r.Org, user: r.User, role: r.Role, types: r.Types}
	f.mu.Lock()
	of := f.orgs[r.Org]
	if of == nil {
		of = &orgFeed{head: -1, subs: map[*Subscription]struct{}{}, changed: make(chan struct{})}
		f.orgs[r.Org] = of
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	s.of = of
	s.cursor = -1
	of.subs[s] = struct{}{}
	for of.head < 0 {
		ch := of.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	s.start = of.head
	f.mu.Unlock()

	cursor := s.start
	if r.After != nil {
		cursor = *r.After
		if cursor > s.start {
			// Another replica may have read further already: the database knows.
			heads, err := f.store.Heads(ctx, f.db, []uuid.UUID{r.Org})
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("organization events: %w", err)
			}
			if cursor > heads[r.Org] {
				s.Close()
				return nil, apperr.Invalid("after", "this cursor is not one of the organization's events")
			}
			s.start = cursor
		}
		if s.start-cursor > int64(f.limits.MaxReplay) {
			s.Close()
			return nil, apperr.Invalid("after", "more than %d events happened after this cursor: reload, then subscribe without after", f.limits.MaxReplay)
		}
	}
	f.mu.Lock()
	s.cursor, s.delivered = cursor, cursor
	f.mu.Unlock()
	return s, nil
}

// Close ends the subscription.
func (s *Subscription) Close() {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(s.of.subs, s)
	if len(s.of.subs) == 0 && f.orgs[s.org] == s.of {
		delete(f.orgs, s.org)
	}
}

// Cursor is the chain number of the last event Next returned (or where the
// subscription began).
func (s *Subscription) Cursor() int64 { return s.delivered }

// Next returns the next events the subscriber may see, in chain order, once
// there is at least one; or the error that ends the subscription: NOT_FOUND
// once the user is no longer a member (no event after their removal is
// returned), SLOW_CONSUMER once it fell MaxLag events behind, ctx's error.
func (s *Subscription) Next(ctx context.Context) ([]*FeedEvent, error) {
	f := s.f
	for {
		if s.end != nil {
			return nil, s.end
		}
		f.mu.Lock()
		of := s.of
		if s.cursor >= of.head {
			ch := of.changed
			f.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var batch []*FeedEvent
		if len(of.ring) > 0 && s.cursor >= of.ring[0].Seq-1 {
			batch = append(batch, of.ring[s.cursor-of.ring[0].Seq+1:]...)
			f.mu.Unlock()
		} else {
			f.mu.Unlock()
			if s.cursor >= s.start {
				return nil, &apperr.Error{Code: apperr.SlowConsumer,
					Message:    fmt.Sprintf("this subscription fell more than %d events behind: subscribe again with after: lastCursor", f.limits.MaxLag),
					Extensions: map[string]any{"lastCursor": EventCursor(s.delivered)}}
			}
			var err error
			if batch, err = f.store.Chained(ctx, f.db, s.org, s.cursor, feedPage); err != nil {
				return nil, fmt.Errorf("replay organization events: %w", err)
			}
			if len(batch) == 0 {
				return nil, fmt.Errorf("replay organization events: none after %d of %d", s.cursor, s.start)
			}
		}
		out, err := s.admit(ctx, batch)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			s.delivered = out[len(out)-1].Seq
			return out, nil
		}
	}
}

// admit passes the events of batch in order and keeps those the subscriber
// may see; it moves the cursor past each. Reaching the user's own removal
// ends the subscription there: live, with NOT_FOUND after what came before;
// replaying, the events until they joined again are skipped.
func (s *Subscription) admit(ctx context.Context, batch []*FeedEvent) ([]*FeedEvent, error) {
	out := batch[:0:0]
	for _, e := range batch {
		if e.TargetType == "member" && e.TargetID == s.user.String() {
			switch e.Action {
			case "member.removed", "member.left":
				if e.Seq > s.start {
					s.end = apperr.New(apperr.NotFound, "organization not found")
					s.advance(e.Seq - 1)
					return out, nil
				}
				s.suspended = true
			default: // joined (invitation.accepted), role changed, ownership
				role, err := s.f.roles(ctx, s.org, s.user)
				if err != nil {
					return nil, fmt.Errorf("organization events: role: %w", err)
				}
				s.suspended = false
				s.role = role
			}
		}
		s.advance(e.Seq)
		if s.suspended || (e.AdminOnly() && !s.role.AtLeast(tenant.RoleAdmin)) || !s.wants(e.Action) {
			continue
		}
		out = append(out, e)
	}
	if s.cursor >= s.start && s.suspended {
		s.end = apperr.New(apperr.NotFound, "organization not found")
	}
	return out, nil
}

func (s *Subscription) advance(seq int64) {
	s.f.mu.Lock()
	s.cursor = seq
	s.f.mu.Unlock()
}

func (s *Subscription) wants(action string) bool {
	if len(s.types) == 0 {
		return true
	}
	for _, t := range s.types {
		if t == action || (strings.HasSuffix(t, ".*") && strings.HasPrefix(action, t[:len(t)-1])) {
			return true
		}
	}
	return false
}

// Subject is an event's changed object, whichever area's it is.
type Subject any

// Cursor is the event's cursor (EventCursor).
func (e *FeedEvent) Cursor() string { return EventCursor(e.Seq) }

// OccurredAt is when the event's transaction recorded it.
func (e *FeedEvent) OccurredAt() time.Time { return e.CreatedAt }

// EventsCursor is the cursor of org's newest chained event.
func (s *Service) EventsCursor(ctx context.Context, org uuid.UUID) (string, error) {
	heads, err := s.store.Heads(ctx, s.db, []uuid.UUID{org})
	if err != nil {
		return "", fmt.Errorf("events cursor: %w", err)
	}
	return EventCursor(heads[org]), nil
}
