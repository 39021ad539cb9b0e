package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"tenantgraph/internal/platform/db"
)

// TestStatementSpans: under a recording span, each statement, BEGIN and
// ROLLBACK is a span of its own, named by its first word past any leading
// comment, with its text and never its arguments: a failed statement reports
// its SQLSTATE, not PostgreSQL's message (which quotes the bad value). Under a
// span that does not record (sampled out), nothing is.
func TestStatementSpans(t *testing.T) {
	prepared, unprepared := openBoth(t)
	for name, d := range map[string]*sqlx.DB{"prepared": prepared, "unprepared": unprepared} {
		t.Run(name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			// A span that does not record (sampled out) starts none.
			never := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
			octx, off := never.Tracer("test").Start(context.Background(), "request")
			if _, err := d.ExecContext(octx, probe, "x"); err != nil {
				t.Fatal(err)
			}
			off.End()
			ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
			tx, err := d.BeginTxx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.GetContext(ctx, &n, db.CustomPlan+probe, "secret@example.test"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE users SET name = 'x' WHERE id = $1`, "not-a-secret-uuid"); err == nil {
				t.Fatal("a malformed uuid passed")
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			parent.End()

			var got []string
			for _, s := range exp.GetSpans() {
				if s.Name == "request" {
					continue
				}
				got = append(got, s.Name)
				if s.Parent.SpanID() != parent.SpanContext().SpanID() {
					t.Errorf("span %s is not the request's child", s.Name)
				}
				for _, a := range s.Attributes {
					if v := a.Value.Emit(); strings.Contains(v, "secret") {
						t.Errorf("span %s attribute %s = %q carries an argument", s.Name, a.Key, v)
					}
				}
				if strings.Contains(s.Status.Description, "secret") {
					t.Errorf("span %s status %q carries an argument", s.Name, s.Status.Description)
				}
				if s.Name == "UPDATE" && (s.Status.Code != codes.Error || s.Status.Description != "SQLSTATE 22P02") {
					t.Errorf("failed UPDATE: status %v %q, want Error SQLSTATE 22P02", s.Status.Code, s.Status.Description)
				}
			}
			if want := "BEGIN SELECT UPDATE ROLLBACK"; strings.Join(got, " ") != want {
				t.Errorf("statement spans %v, want %s", got, want)
			}
		})
	}
}
