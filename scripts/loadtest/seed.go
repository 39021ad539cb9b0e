package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	_ "github.com/lib/pq" // the seed's SQL goes straight to PostgreSQL
)

// The data set of issue 8: a viewer in ViewerOrgs organizations of Members
// members each (the viewer included), plus OtherOrgs organizations with an
// owner each that the viewer is not in. Every row is derived from its number
// (ids from md5, times from a fixed base), so two seeds of the same size are
// the same data.
const (
	viewerEmail    = "viewer@load.test"
	seedPassword   = "load-test-password" // every seeded account's, the viewer's included
	seedBase       = "2026-01-01 00:00:00+00"
	seedUserPrefix = "tenantgraph-load-user-"
	seedOrgPrefix  = "tenantgraph-load-org-"
)

// dataset is the size of the seeded data, from the -seed-* flags.
type dataset struct {
	ViewerOrgs int `json:"viewer_orgs"`
	Members    int `json:"members_per_viewer_org"` // the viewer included
	OtherOrgs  int `json:"other_orgs"`
	// Customers of the viewer's first organization (assigned round-robin to
	// its other members), when the server's schema has customers.
	Customers int `json:"customers_in_first_viewer_org"`
	// The write scenarios' (orders.go): clients (clerks), each a member of its
	// own organization and of the hot one, and products of each client's
	// organization.
	OrderClients  int `json:"order_clients"`
	OrderProducts int `json:"order_products_per_org"`
}

// session is the seeded viewer, logged in through the API.
type session struct {
	Token  string   // access token
	Orgs   []string // ids of the viewer's organizations, in seed order
	Seeded bool     // false: the data was there already
	// HasCustomers: the database has the customers area (a binary older than
	// it, in a comparison, has not).
	HasCustomers bool
}

// seed creates the viewer through the API (register: the password hash is the
// server's own argon2id), marks it verified and inserts the rest with SQL in
// one transaction, every other account with the viewer's password hash (the
// viewer's id, generated at registration, is replaced by a derived one). When
// the viewer exists already it seeds nothing and reuses the data. Then it logs
// the viewer in through the API.
func seed(ctx context.Context, o options, t target) (session, error) {
	var s session
	db, err := sql.Open("postgres", t.DatabaseURL)
	if err != nil {
		return s, err
	}
	defer db.Close()
	c := &http.Client{Timeout: requestLimit}
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)`, viewerEmail).Scan(&exists); err != nil {
		return s, fmt.Errorf("looking for the viewer: %w", err)
	}
	if !exists {
		const register = `mutation($i: RegisterInput!) { register(input: $i) { user { id } } }`
		if _, err := gql(ctx, c, t.URL, "", register, map[string]any{"i": map[string]any{"email": viewerEmail, "password": seedPassword, "name": "Load Viewer"}}); err != nil {
			return s, fmt.Errorf("registering the viewer: %w", err)
		}
		if err := seedSQL(ctx, db, o.Dataset); err != nil {
			return s, err
		}
		s.Seeded = true
	}
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('customers') IS NOT NULL`).Scan(&s.HasCustomers); err != nil {
		return s, err
	}
	rows, err := db.QueryContext(ctx, `SELECT m.organization_id FROM organization_members m JOIN users u ON u.id = m.user_id
		JOIN organizations o ON o.id = m.organization_id WHERE u.email = $1 ORDER BY o.slug`, viewerEmail)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return s, err
		}
		s.Orgs = append(s.Orgs, id)
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	if len(s.Orgs) == 0 {
		return s, errors.New("the viewer is in no organization")
	}
	const login = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`
	data, err := gql(ctx, c, t.URL, "", login, map[string]any{"e": viewerEmail, "p": seedPassword})
	if err != nil {
		return s, fmt.Errorf("logging the viewer in: %w", err)
	}
	var out struct {
		Login struct {
			AccessToken string `json:"accessToken"`
		} `json:"login"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Login.AccessToken == "" {
		return s, fmt.Errorf("logging the viewer in: no access token in %s", data)
	}
	s.Token = out.Login.AccessToken
	return s, nil
}

// seedSQL inserts the data set around the registered viewer. Viewer
// organization k (1-based) is "Load Org k" (slug load-viewer-000k): the viewer
// is its OWNER when k is 1, ADMIN when k is 2, MEMBER otherwise; its other
// members are users v-k-1 ... (the first one OWNER where the viewer is not,
// then ADMIN for every third, MEMBER), joined one second apart. Other
// organization i is "Other Org i" with user o-i as its OWNER.
func seedSQL(ctx context.Context, db *sql.DB, d dataset) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		// The registration's tokens go, so that the viewer's id can be derived like the others'.
		{"the viewer's registration tokens", `DELETE FROM refresh_tokens WHERE user_id = (SELECT id FROM users WHERE email = $1)`, []any{viewerEmail}},
		{"the viewer's verification token", `DELETE FROM user_tokens WHERE user_id = (SELECT id FROM users WHERE email = $1)`, []any{viewerEmail}},
		{"verifying the viewer", `UPDATE users SET id = md5($3 || 'viewer')::uuid, email_verified_at = $2::timestamptz, created_at = $2::timestamptz,
			updated_at = $2::timestamptz WHERE email = $1`, []any{viewerEmail, seedBase, seedUserPrefix}},
		{"viewer organizations", `INSERT INTO organizations (id, name, slug, created_at, updated_at)
			SELECT md5($1 || 'v-' || k)::uuid, 'Load Org ' || k, 'load-viewer-' || lpad(k::text, 4, '0'),
			       $2::timestamptz + k * interval '1 minute', $2::timestamptz + k * interval '1 minute'
			FROM generate_series(1, $3::int) k`, []any{seedOrgPrefix, seedBase, d.ViewerOrgs}},
		{"viewer memberships", `INSERT INTO organization_members (organization_id, user_id, role, created_at, updated_at)
			SELECT md5($1 || 'v-' || k)::uuid, u.id, CASE k WHEN 1 THEN 'OWNER' WHEN 2 THEN 'ADMIN' ELSE 'MEMBER' END,
			       $2::timestamptz, $2::timestamptz
			FROM generate_series(1, $3::int) k, users u WHERE u.email = $4`, []any{seedOrgPrefix, seedBase, d.ViewerOrgs, viewerEmail}},
		{"members' accounts", `INSERT INTO users (id, email, name, password_hash, email_verified_at, created_at, updated_at)
			SELECT md5($1 || 'v-' || k || '-' || j)::uuid, 'member-' || k || '-' || j || '@load.test', 'Member ' || k || '-' || j,
			       v.password_hash, $2::timestamptz, $2::timestamptz, $2::timestamptz
			FROM generate_series(1, $3::int) k, generate_series(1, $4::int - 1) j, users v WHERE v.email = $5`,
			[]any{seedUserPrefix, seedBase, d.ViewerOrgs, d.Members, viewerEmail}},
		{"members", `INSERT INTO organization_members (organization_id, user_id, role, created_at, updated_at)
			SELECT md5($1 || 'v-' || k)::uuid, md5($2 || 'v-' || k || '-' || j)::uuid,
			       CASE WHEN j = 1 AND k > 1 THEN 'OWNER' WHEN j % 3 = 0 THEN 'ADMIN' ELSE 'MEMBER' END,
			       $3::timestamptz + j * interval '1 second', $3::timestamptz + j * interval '1 second'
			FROM generate_series(1, $4::int) k, generate_series(1, $5::int - 1) j`,
			[]any{seedOrgPrefix, seedUserPrefix, seedBase, d.ViewerOrgs, d.Members}},
		{"owners' accounts", `INSERT INTO users (id, email, name, password_hash, email_verified_at, created_at, updated_at)
			SELECT md5($1 || 'o-' || i)::uuid, 'owner-' || i || '@load.test', 'Owner ' || i,
			       v.password_hash, $2::timestamptz, $2::timestamptz, $2::timestamptz
			FROM generate_series(1, $3::int) i, users v WHERE v.email = $4`, []any{seedUserPrefix, seedBase, d.OtherOrgs, viewerEmail}},
		{"other organizations", `INSERT INTO organizations (id, name, slug, created_at, updated_at)
			SELECT md5($1 || 'o-' || i)::uuid, 'Other Org ' || i, 'load-other-' || lpad(i::text, 7, '0'),
			       $2::timestamptz + i * interval '1 second', $2::timestamptz + i * interval '1 second'
			FROM generate_series(1, $3::int) i`, []any{seedOrgPrefix, seedBase, d.OtherOrgs}},
		{"owners", `INSERT INTO organization_members (organization_id, user_id, role, created_at, updated_at)
			SELECT md5($1 || 'o-' || i)::uuid, md5($2 || 'o-' || i)::uuid, 'OWNER', $3::timestamptz, $3::timestamptz
			FROM generate_series(1, $4::int) i`, []any{seedOrgPrefix, seedUserPrefix, seedBase, d.OtherOrgs}},
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("seeding %s: %w", st.what, err)
		}
	}
	var hasCustomers bool
	if err := tx.QueryRowContext(ctx, `SELECT to_regclass('customers') IS NOT NULL`).Scan(&hasCustomers); err != nil {
		return err
	}
	if hasCustomers && d.Customers > 0 {
		// Customer n of the first viewer organization: assigned to its member
		// 1 + n % (members - 1) (none when it has no other member), created by
		// the viewer, one second apart.
		if _, err := tx.ExecContext(ctx, `INSERT INTO customers (organization_id, id, name, email, company, tags, status,
				assignee_id, created_by, created_at, updated_at)
			SELECT md5($1 || 'v-1')::uuid, md5($1 || 'c-' || n)::uuid, 'Customer ' || lpad(n::text, 6, '0'),
			       'customer-' || n || '@load.test', 'Company ' || (n % 50), ARRAY['tag-' || (n % 7)],
			       (ARRAY['LEAD', 'ACTIVE', 'INACTIVE'])[1 + n % 3],
			       CASE WHEN $4::int > 1 THEN md5($2 || 'v-1-' || (1 + n % ($4::int - 1)))::uuid END,
			       v.id, $3::timestamptz + n * interval '1 second', $3::timestamptz + n * interval '1 second'
			FROM generate_series(1, $5::int) n, users v WHERE v.email = $6`,
			seedOrgPrefix, seedUserPrefix, seedBase, d.Members, d.Customers, viewerEmail); err != nil {
			return fmt.Errorf("seeding customers: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	tables := "users, organizations, organization_members"
	if hasCustomers {
		tables += ", customers"
	}
	_, err = db.ExecContext(ctx, `ANALYZE `+tables)
	return err
}

// gql sends one GraphQL request (with a bearer token unless token is empty)
// and returns its data; an HTTP error or any GraphQL error is an error.
func gql(ctx context.Context, c *http.Client, base, token, query string, vars map[string]any) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return nil, err
	}
	b, status, err := send(ctx, c, base+"/query", token, body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Data   json.RawMessage   `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &out); err != nil || status != http.StatusOK || len(out.Errors) > 0 {
		return nil, fmt.Errorf("HTTP %d: %.300s", status, b)
	}
	return out.Data, nil
}

// send posts a JSON body with a bearer token (unless token is empty) and reads
// the whole answer.
func send(ctx context.Context, c *http.Client, url, token string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}
