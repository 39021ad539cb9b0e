package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TraceScope is the instrumentation scope of the SQL statement spans.
const TraceScope = "tenantgraph/internal/platform/db"

// sqlSpan starts the span of one statement when ctx carries a recording span
// (a traced request: docs/operations.md, "Tracing"), else returns nil and costs one
// context lookup. The span is named name, or with "" by the statement's first
// word (SELECT, INSERT, WITH, ...), and carries its text, never its arguments:
// they may be personal data. It ends when the driver call returns: a query's
// span covers its first rows, not the reading of the rest.
func sqlSpan(ctx context.Context, name, q string) trace.Span {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return nil
	}
	attrs := []attribute.KeyValue{attribute.String("db.system", "postgresql")}
	if name == "" {
		name = statementName(q)
		attrs = append(attrs, attribute.String("db.statement", q))
	}
	_, span := parent.TracerProvider().Tracer(TraceScope).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return span
}

// endSQLSpan ends span with err's SQLSTATE, never its message (PostgreSQL's
// messages may quote a value: invalid input syntax for type uuid: "...").
func endSQLSpan(span trace.Span, err error) {
	if err != nil {
		var pe *pq.Error
		if errors.As(err, &pe) {
			span.SetAttributes(attribute.String("db.response.status_code", string(pe.Code)))
			span.SetStatus(codes.Error, "SQLSTATE "+string(pe.Code))
		} else {
			span.SetStatus(codes.Error, "driver error")
		}
	}
	span.End()
}

// statementName is q's first word in capitals, past CustomPlan and any other
// leading comment: "SELECT", "INSERT", "WITH".
func statementName(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n(")
		if !strings.HasPrefix(q, "/*") {
			break
		}
		end := strings.Index(q, "*/")
		if end < 0 {
			return "SQL"
		}
		q = q[end+2:]
	}
	end := strings.IndexFunc(q, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
	if end < 0 {
		end = len(q)
	}
	if end == 0 {
		return "SQL"
	}
	return strings.ToUpper(q[:end])
}

// The traced forms of conn's and countedTx's statements: a span around the
// untraced call when the context's span records.

func (c *conn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	span := sqlSpan(ctx, "", q)
	if span == nil {
		return c.query(ctx, q, args)
	}
	rows, err := c.query(ctx, q, args)
	endSQLSpan(span, err)
	return rows, err
}

func (c *conn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	span := sqlSpan(ctx, "", q)
	if span == nil {
		return c.exec(ctx, q, args)
	}
	res, err := c.exec(ctx, q, args)
	endSQLSpan(span, err)
	return res, err
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	span := sqlSpan(ctx, "BEGIN", "")
	if span == nil {
		return c.begin(ctx, opts)
	}
	tx, err := c.begin(ctx, opts)
	endSQLSpan(span, err)
	return tx, err
}

func (t *countedTx) Commit() error {
	span := sqlSpan(t.ctx, "COMMIT", "")
	if span == nil {
		return t.commit()
	}
	err := t.commit()
	endSQLSpan(span, err)
	return err
}

func (t *countedTx) Rollback() error {
	span := sqlSpan(t.ctx, "ROLLBACK", "")
	if span == nil {
		return t.rollback()
	}
	err := t.rollback()
	endSQLSpan(span, err)
	return err
}
