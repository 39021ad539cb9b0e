package graph

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/google/uuid"

	"tenantgraph/internal/auth"
)

// @auth hands the viewer it verified to the resolver; @public hands over none,
// and the edge's viewer alone is not enough for me.
func TestMeReadsTheViewerTheDirectiveVerified(t *testing.T) {
	v := auth.Viewer{UserID: uuid.New(), SessionID: uuid.New()}
	ctx := auth.WithViewer(context.Background(), v)
	got, err := Directives().Auth(ctx, nil, func(ctx context.Context) (any, error) { return me(ctx), nil })
	if err != nil || got != v {
		t.Fatalf("@auth handed over %v, %v; want %v", got, err, v)
	}
	for name, call := range map[string]func() (any, error){
		"@public": func() (any, error) {
			return Directives().Public(ctx, nil, func(ctx context.Context) (any, error) { return me(ctx), nil })
		},
		"no directive": func() (any, error) { return me(ctx), nil },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: me returned a viewer", name)
				}
			}()
			call()
		}()
	}
}

// A root field that lost its directive fails closed: its resolver stops at me
// (before any service: these resolvers have none) and the field answers an error,
// even though the request carries a viewer.
func TestMeFailsClosedOnAFieldWithoutItsDirective(t *testing.T) {
	d := Directives()
	d.Auth = d.Public // as if logoutAll had lost @auth
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &Resolver{}, Directives: d}))
	srv.AddTransport(transport.POST{})
	var recovered any
	srv.SetRecoverFunc(func(_ context.Context, p any) error { recovered = p; return errors.New("internal") })

	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"query":"mutation { logoutAll }"}`))
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(auth.WithViewer(req.Context(), auth.Viewer{UserID: uuid.New()}))
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)

	if want := "graph: me(ctx) in Mutation.logoutAll, which no @auth, @verified or @hasRole gates"; recovered != want {
		t.Fatalf("recovered %v, want %q", recovered, want)
	}
	if body := w.Body.String(); !strings.Contains(body, `"errors"`) || strings.Contains(body, `"logoutAll":true`) {
		t.Fatalf("response: %s", body)
	}
}
