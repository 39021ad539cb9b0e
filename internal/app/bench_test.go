package app_test

import (
	"testing"
)

// BenchmarkDashboardQuery measures the organizations dashboard query (20
// organizations of 10 members, with role, owner, count and the first members
// page) end to end through HTTP and PostgreSQL. Goal: under 10 ms per request on
// the reference machine (2 cores), 4 SQL statements.
func BenchmarkDashboardQuery(b *testing.B) {
	viewer := srv.RegisterVerified(b, "bench")
	seedOrgsB(b, viewer.AccessToken, viewer.UserID.String(), 20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, stmts := srv.PostCounted(b, viewer.AccessToken, dashboardQuery, nil)
		if len(r.Errors) > 0 || stmts != 4 {
			b.Fatalf("errors %s, %d statements", r.Raw, stmts)
		}
	}
}

// BenchmarkMe measures the smallest authenticated request: JWT check, one user lookup.
func BenchmarkMe(b *testing.B) {
	u := srv.Register(b, "benchme")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := srv.Post(b, u.AccessToken, `{ me { id email } }`, nil); len(r.Errors) > 0 {
			b.Fatal(r.Raw)
		}
	}
}
