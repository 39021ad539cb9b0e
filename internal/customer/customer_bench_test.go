package customer_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	. "tenantgraph/internal/apitest"
)

// The customer benchmarks' data set (issue 9): 100,000 customers in one
// organization and 100,000 more spread over 50 others, generated in SQL so
// that the same words occur in every organization with the same frequencies:
//
//   - name: one of 40 first names and one of 400 surnames (20 prefixes x 20
//     suffixes: "Ashford", "Thornwood"), chosen independently: a surname
//     names 250 customers per 100,000, a full name about 6;
//   - email (9 in 10): first.last<n>@ one of 10 domains;
//   - company (6 in 7): one of 25 words and one of 10 kinds ("Apex Logistics"):
//     a kind names one customer in 12;
//   - tags: 0 to 2 of 6; status and assignee (one of 4 members in 4 of 7, or
//     none) in turn;
//   - in the benchmarked organization, 3 customers in 7 have 3 notes each.
//
// The search terms below were chosen on this data; seedCustomerBench checks
// their match counts so that a change of the generator cannot silently turn a
// rare term into a common one.
const (
	searchRare   = "Ada Thornwood" // a full name: a handful of matches
	searchCommon = "Blackwood"     // a surname: a few hundred
	searchBroad  = "logistics"     // a company kind: thousands
)

var searchTerms = []struct {
	name, term string
	min, max   int // matches expected in the benchmarked organization
}{
	{"rare", searchRare, 1, 20},
	{"common", searchCommon, 150, 500},
	{"broad", searchBroad, 5_000, 20_000},
}

type customerBenchData struct {
	org             uuid.UUID
	email, password string
}

var (
	customerBenchOnce sync.Once
	customerBench     customerBenchData
	customerBenchErr  error
)

// customerBenchOrg seeds the data set once per test process, the first time a
// customer benchmark asks for it (make test runs no benchmark and never pays
// for it), and returns a fresh access token of the organization's OWNER (the
// benchmarks together may outlast one token).
func customerBenchOrg(b *testing.B) (uuid.UUID, string) {
	b.Helper()
	customerBenchOnce.Do(func() {
		start := time.Now()
		customerBench, customerBenchErr = seedCustomerBench(b)
		b.Logf("seeded 200,000 customers in %v", time.Since(start).Round(time.Millisecond))
	})
	if customerBenchErr != nil {
		b.Fatal(customerBenchErr)
	}
	r := MustOK(b, srv.Post(b, "", LoginMutation, map[string]any{"e": customerBench.email, "p": customerBench.password}))
	var out struct{ Login struct{ AccessToken string } }
	r.Decode(b, &out)
	return customerBench.org, out.Login.AccessToken
}

// customerGenerator is the SELECT list of the generated customers, over
// generate_series(1, $3) AS i; {org} and {assignee} are the organization and the
// assignee (expressions of i, $1, $2); $4 is the creator.
const customerGenerator = `
	WITH w AS (SELECT
		'{Ada,Adrian,Alice,Ben,Carla,Chen,Clara,David,Elena,Emil,Eva,Farah,Felix,Grace,Hana,Hugo,Ines,Ivan,Jonas,Julia,
		  Karim,Laura,Leo,Lina,Marco,Maya,Nadia,Nils,Olga,Omar,Paula,Priya,Rafael,Rosa,Sami,Sofia,Tomas,Vera,Yusuf,Zoe}'::text[] AS first,
		'{Ash,Black,Brook,Clay,Dun,Fair,Green,Hart,Hol,Kirk,Lang,Mor,North,Oak,Pen,Ross,Stan,Thorn,Wal,Whit}'::text[] AS pre,
		'{by,croft,dale,field,ford,gate,ham,hurst,ley,low,mont,more,port,shaw,stone,ton,wick,well,wood,worth}'::text[] AS suf,
		'{example.com,mail.test,corp.test,acme.test,inbox.test,post.test,firm.test,biz.test,office.test,web.test}'::text[] AS dom,
		'{Apex,Atlas,Beacon,Birch,Cobalt,Crest,Delta,Ember,Falcon,Granite,Harbor,Indigo,Juniper,Keystone,Lumen,Meridian,
		  Nimbus,Orbit,Pioneer,Quarry,Redwood,Summit,Tidal,Vertex,Zenith}'::text[] AS co,
		'{Labs,Systems,Logistics,Foods,Partners,Media,Energy,Capital,Health,Works}'::text[] AS kind,
		'{vip,partner,churn-risk,newsletter,enterprise,trial}'::text[] AS tag),
	g AS (SELECT i, w.*, first[1 + i % 40] AS f, pre[1 + (i / 40) % 20] || suf[1 + (i / 800) % 20] AS l FROM w, generate_series(1, $3) AS i)
	SELECT {org}, f || ' ' || l,
		CASE WHEN i % 10 <> 0 THEN lower(f || '.' || l) || i || '@' || dom[1 + (i / 7) % 10] END,
		CASE WHEN i % 7 <> 0 THEN co[1 + (i / 3) % 25] || ' ' || kind[1 + (i / 75) % 10] END,
		CASE i % 11 % 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN ARRAY[tag[1 + i % 6]] ELSE ARRAY[tag[1 + i % 3], tag[4 + i % 3]] END,
		(ARRAY['LEAD', 'ACTIVE', 'INACTIVE'])[1 + i % 3],
		{assignee},
		$4::uuid, timestamptz '2026-01-01' + i * interval '1 minute', timestamptz '2026-01-01' + i * interval '1 minute'
	FROM g`

func generateCustomers(org, assignee string) string {
	return strings.NewReplacer("{org}", org, "{assignee}", assignee).Replace(customerGenerator)
}

func seedCustomerBench(b *testing.B) (customerBenchData, error) {
	owner := srv.RegisterVerified(b, "crm-bench")
	org := srv.CreateOrg(b, owner, "CRM bench")
	members := []uuid.UUID{owner.UserID}
	for i := range 3 {
		members = append(members, srv.AddMember(b, owner, org, "MEMBER", fmt.Sprintf("crm-bench-m%d", i)).UserID)
	}
	cols := `INSERT INTO customers (organization_id, name, email, company, tags, status, assignee_id, created_by, created_at, updated_at) `
	steps := []struct {
		sql  string
		args []any
	}{
		{cols + generateCustomers("$1::uuid", "($2::uuid[])[1 + i % 7]"), []any{org, pq.Array(members), 100_000, owner.UserID}},
		// The other organizations: 50 of 2,000 customers, one owner (the same user).
		{`WITH o AS (
			INSERT INTO organizations (name, slug) SELECT 'CRM bench other ' || n, 'crm-bench-other-' || n || '-' || $2
			FROM generate_series(1, 50) AS n RETURNING id)
		INSERT INTO organization_members (organization_id, user_id, role) SELECT id, $1, 'OWNER' FROM o`,
			[]any{owner.UserID, uuid.NewString()[:8]}},
		{cols + generateCustomers("(SELECT array_agg(organization_id ORDER BY organization_id) FROM organization_members m JOIN organizations o ON o.id = m.organization_id WHERE m.user_id = $4 AND o.id <> $1)[1 + i % 50]", "$2::uuid"),
			[]any{org, nil, 100_000, owner.UserID}},
		{`INSERT INTO customer_notes (organization_id, customer_id, author_id, body, created_at, updated_at)
			SELECT c.organization_id, c.id, ($2::uuid[])[1 + j], 'Call ' || j || ' with ' || c.name || ': follow up on the offer.',
				c.created_at + j * interval '1 day', c.created_at + j * interval '1 day'
			FROM customers c CROSS JOIN generate_series(1, 3) AS j
			WHERE c.organization_id = $1 AND extract(epoch FROM c.created_at)::bigint / 60 % 7 < 3`,
			[]any{org, pq.Array(members)}},
		// What autovacuum would have done by now: statistics for the planner and
		// the visibility map for index-only scans (the counts).
		{`VACUUM ANALYZE customers`, nil},
		{`VACUUM ANALYZE customer_notes`, nil},
	}
	for _, s := range steps {
		if _, err := srv.DB.Exec(s.sql, s.args...); err != nil {
			return customerBenchData{}, fmt.Errorf("seed: %w\n%s", err, s.sql)
		}
	}
	for _, st := range searchTerms {
		var n int
		if err := srv.DB.Get(&n, `SELECT count(*) FROM customers c WHERE organization_id = $1 AND archived_at IS NULL
			AND (c.name || ' ' || coalesce(c.email, '') || ' ' || coalesce(c.company, '')) ILIKE '%' || $2 || '%'`, org, st.term); err != nil {
			return customerBenchData{}, err
		}
		b.Logf("search %q: %d matches in the organization", st.term, n)
		if n < st.min || n > st.max {
			return customerBenchData{}, fmt.Errorf("search %q matches %d customers, want %d to %d", st.term, n, st.min, st.max)
		}
	}
	return customerBenchData{org: org, email: owner.Email, password: owner.Password}, nil
}

const customerSearchQuery = `query($o: ID!, $s: String) { customers(orgId: $o, search: $s, first: 20) {
	edges { node { id name email company } } } }`

const customerSearchCountQuery = `query($o: ID!, $s: String) { customers(orgId: $o, search: $s, first: 20) {
	totalCount edges { node { id name email company } } } }`

// BenchmarkCustomerSearch: customers(search: …, first: 20) { id name email
// company } in the organization of 100,000 customers (100,000 more in 50
// others), for a rare term (a full name: 6 matches), a common one (a surname:
// 240) and a broad one (a company kind: 8,614), each without and with
// totalCount. Goals: under 20 ms each; 2 SQL statements (membership, page), 3
// with the count. Measured 2026-11-27: 4.5, 4.0 and 3.4 ms; with the count
// 5.0, 3.5 and 29.7 ms (the broad count was not met: it rechecks every match).
// Before db.CustomPlan the broad search took 37.7 ms (a generic plan).
// 2026-12-06, with the capped count planned for its term (db.CountUpTo): 2.6–3.0,
// 2.5–3.0 and 1.8–1.9 ms; with the count 3.7–4.3, 4.1 and 10.6–11.2 ms.
func BenchmarkCustomerSearch(b *testing.B) {
	org, token := customerBenchOrg(b)
	for _, st := range searchTerms {
		b.Run(st.name, func(b *testing.B) {
			srv.BenchQuery(b, token, customerSearchQuery, map[string]any{"o": org, "s": st.term}, 2)
		})
		b.Run(st.name+"+totalCount", func(b *testing.B) {
			srv.BenchQuery(b, token, customerSearchCountQuery, map[string]any{"o": org, "s": st.term}, 3)
		})
	}
}

// BenchmarkCustomerTotalCount: the first page (ORDER BY name, first: 20) with
// and without totalCount, which counts all 100,000 customers of the
// organization. Goals: under 10 ms without the count, under 20 ms with it.
// Measured 2026-11-27: 2.6 ms and 13.8 ms (38 ms before customers_active_idx).
func BenchmarkCustomerTotalCount(b *testing.B) {
	org, token := customerBenchOrg(b)
	b.Run("page", func(b *testing.B) {
		srv.BenchQuery(b, token, customerSearchQuery, map[string]any{"o": org}, 2)
	})
	b.Run("page+totalCount", func(b *testing.B) {
		srv.BenchQuery(b, token, customerSearchCountQuery, map[string]any{"o": org}, 3)
	})
}

// BenchmarkCustomerPage: the statement-count test's page (customersPageQuery)
// of 50 customers with assignee, createdBy and their first 3 notes each with
// their authors, in the organization of 100,000. Goals: under 25 ms, the same
// 4 statements as for 5 customers. Measured 2026-11-27: 19.7 ms.
func BenchmarkCustomerPage(b *testing.B) {
	org, token := customerBenchOrg(b)
	srv.BenchQuery(b, token, customersPageQuery, map[string]any{"o": org, "n": 50}, 4)
}

// The typeahead data set (issue 17): one organization of 100,000 customers
// named as a new user's first import would name them, like the load test's
// ("Customer 000001", customer-1@load.test, "Company 1"), so that the first
// keystrokes of a search box, "C" and "Cu", match every one of them. Seeded
// once per test process, the first time a typeahead benchmark asks, with one
// INSERT … SELECT generate_series (about 3 s), into the same database as the
// other customer benchmarks' data set when both run.
//
// A second organization, "new", gets 30,000 such customers after that
// ANALYZE, with autovacuum off for customers in this (throwaway) database: the
// statistics know nothing of it, as for a new user who has just imported their
// customers (the 40 ms at 30,000).
var (
	typeaheadOnce  sync.Once
	typeaheadBench struct {
		customerBenchData
		fresh uuid.UUID
	}
	typeaheadErr error
)

func typeaheadOrg(b *testing.B) (org, fresh uuid.UUID, token string) {
	b.Helper()
	typeaheadOnce.Do(func() {
		start := time.Now()
		owner := srv.RegisterVerified(b, "typeahead-bench")
		org := srv.CreateOrg(b, owner, "Typeahead bench")
		fresh := srv.CreateOrg(b, owner, "Typeahead bench new")
		insert := `
			INSERT INTO customers (organization_id, name, email, company, tags, status, created_by, created_at, updated_at)
			SELECT $1, 'Customer ' || lpad(n::text, 6, '0'), 'customer-' || n || '@load.test', 'Company ' || (n % 50),
				ARRAY['tag-' || (n % 7)], (ARRAY['LEAD', 'ACTIVE', 'INACTIVE'])[1 + n % 3], $2,
				timestamptz '2026-01-01' + n * interval '1 second', timestamptz '2026-01-01' + n * interval '1 second'
			FROM generate_series(1, $3::int) AS n`
		for _, s := range []struct {
			sql  string
			args []any
		}{
			{insert, []any{org, owner.UserID, 100_000}},
			{`VACUUM ANALYZE customers`, nil},
			{`ALTER TABLE customers SET (autovacuum_enabled = off)`, nil},
			{insert, []any{fresh, owner.UserID, 30_000}},
		} {
			if _, err := srv.DB.Exec(s.sql, s.args...); err != nil {
				typeaheadErr = fmt.Errorf("seed: %w", err)
				return
			}
		}
		typeaheadBench.customerBenchData = customerBenchData{org: org, email: owner.Email, password: owner.Password}
		typeaheadBench.fresh = fresh
		b.Logf("seeded 130,000 typeahead customers in %v", time.Since(start).Round(time.Millisecond))
	})
	if typeaheadErr != nil {
		b.Fatal(typeaheadErr)
	}
	r := MustOK(b, srv.Post(b, "", LoginMutation, map[string]any{"e": typeaheadBench.email, "p": typeaheadBench.password}))
	var out struct{ Login struct{ AccessToken string } }
	r.Decode(b, &out)
	return typeaheadBench.org, typeaheadBench.fresh, out.Login.AccessToken
}

// BenchmarkCustomerTypeahead: the first keystrokes of a search box,
// customers(search: "C" / "Cu", first: 20) { id name email company }, in an
// organization of 100,000 customers that all match, without and with
// totalCount; then the same in the "new" organization of 30,000 that the
// statistics do not know. Goals (issue 17): <= 10 ms, <= 15 ms with the
// (capped) count; 2 SQL statements, 3 with the count. Measured 2026-12-06: C
// 2.1–3.1 ms, Cu 2.2–2.8 ms, with the count 8.0–8.5 ms; new organization
// 2.0–2.7 ms, with the count 8.3–10.0 ms. Before the index-only walk and the
// cap: with the count 146–243 ms; new organization 21.5–24.3 ms (it read and
// sorted all 30,000), with the count 135–154 ms.
func BenchmarkCustomerTypeahead(b *testing.B) {
	org, fresh, token := typeaheadOrg(b)
	for _, o := range []struct {
		name string
		id   uuid.UUID
	}{{"", org}, {"new/", fresh}} {
		for _, term := range []string{"C", "Cu"} {
			b.Run(o.name+term, func(b *testing.B) {
				srv.BenchQuery(b, token, customerSearchQuery, map[string]any{"o": o.id, "s": term}, 2)
			})
			b.Run(o.name+term+"+totalCount", func(b *testing.B) {
				srv.BenchQuery(b, token, customerSearchCountQuery, map[string]any{"o": o.id, "s": term}, 3)
			})
		}
	}
}
