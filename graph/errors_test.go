package graph

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// manyErrors is an executor whose every operation answers n errors.
type manyErrors struct {
	graphql.GraphExecutor
	n int
}

func (m manyErrors) DispatchOperation(ctx context.Context, _ *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	errs := make(gqlerror.List, m.n)
	for i := range errs {
		errs[i] = gqlerror.Errorf("error %d", i)
	}
	return graphql.OneShot(&graphql.Response{Errors: errs}), ctx
}

// An executed operation's errors are capped too, not only a refused one's.
func TestExecutedResponseErrorsAreCapped(t *testing.T) {
	for n, want := range map[int]int{0: 0, MaxErrors: MaxErrors, MaxErrors + 1: MaxErrors, 500: MaxErrors} {
		e := &shapingExecutor{GraphExecutor: manyErrors{n: n}}
		h, ctx := e.DispatchOperation(context.Background(), nil)
		resp := h(ctx)
		if len(resp.Errors) != want {
			t.Fatalf("%d errors: got %d", n, len(resp.Errors))
		}
		if n > MaxErrors {
			last := resp.Errors[want-1]
			if last.Extensions["code"] != CodeTooManyErrors || last.Extensions["dropped"] != n-(MaxErrors-1) ||
				resp.Errors[want-2].Message != "error 48" {
				t.Fatalf("%d errors: last two %v %v", n, resp.Errors[want-2], last)
			}
		}
	}
}
