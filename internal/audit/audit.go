// Package audit is the append-only log of changes to organizations. Events are
// written in the same transaction as the change they record; the table refuses
// UPDATE and DELETE.
package audit

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/httpx"
	"tenantgraph/internal/platform/page"
)

// Event is one audit log entry.
type Event struct {
	Seq            int64           `db:"seq"`
	ID             uuid.UUID       `db:"id"`
	OrganizationID uuid.UUID       `db:"organization_id"`
	ActorID        *uuid.UUID      `db:"actor_id"`
	Action         string          `db:"action"`
	TargetType     *string         `db:"target_type"`
	TargetID       *string         `db:"target_id"`
	Metadata       json.RawMessage `db:"metadata"`
	IP             *string         `db:"ip"`
	UserAgent      *string         `db:"user_agent"`
	CreatedAt      time.Time       `db:"created_at"`
}

// Entry is what a service records.
type Entry struct {
	OrganizationID uuid.UUID
	ActorID        uuid.UUID
	Action         string
	TargetType     string
	TargetID       string
	Metadata       map[string]any
	At             time.Time
}

// Record appends e in the caller's transaction, with the request's IP and user agent.
func Record(ctx context.Context, tx sqlx.ExtContext, e Entry) error {
	meta, err := json.Marshal(e.Metadata)
	if err != nil {
		return err
	}
	if e.Metadata == nil {
		meta = []byte("{}")
	}
	info := httpx.Info(ctx)
	_, err = tx.ExecContext(ctx, `
		INSERT INTO audit_events (organization_id, actor_id, action, target_type, target_id, metadata, ip, user_agent, created_at)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, nullif($7, '')::inet, nullif($8, ''), $9)`,
		e.OrganizationID, e.ActorID, e.Action, e.TargetType, e.TargetID, meta, info.IP, info.UserAgent, e.At)
	return err
}

// Filter narrows a listing.
type Filter struct {
	Action  *string
	ActorID *uuid.UUID
}

// Connection is a page of events, newest first.
type Connection struct {
	Edges      []*Edge
	PageInfo   page.Info
	TotalCount int
}

// Edge is one event with its cursor.
type Edge struct {
	Cursor string
	Node   *Event
}

// Store reads the log.
type Store struct{ DB *sqlx.DB }

// List returns a page of org's events, newest first.
func (s Store) List(ctx context.Context, org uuid.UUID, f Filter, first *int, after *string) (*Connection, error) {
	n, err := page.First(first)
	if err != nil {
		return nil, err
	}
	var cur int64
	has, err := page.Decode(after, &cur)
	if err != nil {
		return nil, err
	}
	if !has {
		cur = 1<<63 - 1
	}
	var rows []struct {
		Event
		Total int `db:"total"`
	}
	err = sqlx.SelectContext(ctx, s.DB, &rows, `
		SELECT * FROM (
			SELECT seq, id, organization_id, actor_id, action, target_type, target_id, metadata,
			       host(ip) AS ip, user_agent, created_at, count(*) OVER () AS total
			FROM audit_events
			WHERE organization_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::uuid IS NULL OR actor_id = $3)
		) e WHERE seq < $4 ORDER BY seq DESC LIMIT $5`,
		org, f.Action, f.ActorID, cur, n+1)
	if err != nil {
		return nil, err
	}
	conn := &Connection{}
	if len(rows) > 0 {
		conn.TotalCount = rows[0].Total
	} else if has {
		// Past the last page: count anyway.
		if err := sqlx.GetContext(ctx, s.DB, &conn.TotalCount, `
			SELECT count(*) FROM audit_events WHERE organization_id = $1
			AND ($2::text IS NULL OR action = $2) AND ($3::uuid IS NULL OR actor_id = $3)`, org, f.Action, f.ActorID); err != nil {
			return nil, err
		}
	}
	rows, conn.PageInfo.HasNextPage = page.Trim(rows, n)
	for i := range rows {
		e := rows[i].Event
		conn.Edges = append(conn.Edges, &Edge{Cursor: page.Encode(e.Seq), Node: &e})
	}
	if len(conn.Edges) > 0 {
		c := conn.Edges[len(conn.Edges)-1].Cursor
		conn.PageInfo.EndCursor = &c
	}
	return conn, nil
}
