package graph

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/reqmeta"
)

// ErrorPresenter gives client-safe errors their message and extensions.code, lets
// gqlgen's own parse and validation errors through, and masks everything else as
// INTERNAL_SERVER_ERROR with the request id, logging it in full.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		if e, ok := apperr.As(err); ok {
			switch e.Code { // for the metrics
			case apperr.RateLimited:
				reqmeta.From(ctx).RateLimited(e.Limit)
			case apperr.QuotaExceeded:
				reqmeta.From(ctx).QuotaExceeded(e.Limit)
			}
			out := &gqlerror.Error{Message: e.Message, Path: gqlErr.Path, Locations: gqlErr.Locations,
				Extensions: map[string]any{"code": string(e.Code)}}
			field := e.Field
			if field == "" && e.Code == apperr.BadUserInput {
				field = argPath(gqlErr.Path)
			}
			if field != "" {
				out.Extensions["field"] = field
			}
			for k, v := range e.Extensions {
				out.Extensions[k] = v
			}
			return out
		}
		if gqlErr.Err == nil {
			// gqlgen's own parse, validation and limit errors: safe, and already coded.
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{}
			}
			if _, ok := gqlErr.Extensions["code"]; !ok {
				gqlErr.Extensions["code"] = string(apperr.BadUserInput)
			}
			return gqlErr
		}
		id := reqmeta.RequestID(ctx)
		log.ErrorContext(ctx, "internal error", "request_id", id, "path", gqlErr.Path.String(), "error", err.Error())
		return &gqlerror.Error{
			Message:    "internal server error (request id " + id + ")",
			Path:       gqlErr.Path,
			Locations:  gqlErr.Locations,
			Extensions: map[string]any{"code": string(apperr.Internal), "requestId": id},
		}
	}
}

// argPath names the argument a coercion error is about ("input.email").
func argPath(p ast.Path) string {
	var parts []string
	for _, el := range p {
		if n, ok := el.(ast.PathName); ok {
			parts = append(parts, string(n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ".")
}

// Recover turns a resolver panic into an internal error (masked by the presenter).
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "resolver panic", "request_id", reqmeta.RequestID(ctx), "panic", p)
		return panicError{}
	}
}

type panicError struct{}

func (panicError) Error() string { return "resolver panic" }

// MaxErrors caps the errors of one response: past it, the first MaxErrors-1 are kept
// and the last entry, coded CodeTooManyErrors, says how many more were left out.
const MaxErrors = 50

// CodeTooManyErrors marks the entry that stands for the errors left out.
const CodeTooManyErrors = "TOO_MANY_ERRORS"

// capErrors applies MaxErrors; list itself is not modified.
func capErrors(list gqlerror.List) gqlerror.List {
	if len(list) <= MaxErrors {
		return list
	}
	kept := list[: MaxErrors-1 : MaxErrors-1]
	dropped := len(list) - len(kept)
	return append(kept, &gqlerror.Error{
		Message:    fmt.Sprintf("%d more errors were left out (a response reports at most %d)", dropped, MaxErrors),
		Extensions: map[string]any{"code": CodeTooManyErrors, "dropped": dropped},
	})
}
