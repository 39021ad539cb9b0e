package graph

import (
	"context"
	"io"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSequentially is graphql.MarshalSliceConcurrently for a list whose
// elements cannot wait (see graph/gqlgen): the same arguments and result, the
// elements marshalled one after the other on the caller's goroutine. Each
// element still gets a field context of its own holding its index (errors
// and the path read it), but the contexts and indexes of one list are
// allocated together. A panicking element is null with an error in place,
// as with gqlgen's, unless omitPanicHandler.
func marshalSequentially(ctx context.Context, length int, _ int64, omitPanicHandler bool,
	marshalElement func(ctx context.Context, i int) graphql.Marshaler,
) graphql.Array {
	ret := make(graphql.Array, length)
	if length == 0 {
		return ret
	}
	index := make([]int, length)
	fcs := make([]graphql.FieldContext, length)
	for i := range length {
		index[i] = i
		fcs[i].Index = &index[i]
		child := graphql.WithFieldContext(ctx, &fcs[i])
		if omitPanicHandler {
			ret[i] = marshalElement(child, i)
			continue
		}
		ret[i] = marshalRecovered(child, i, marshalElement)
	}
	return ret
}

func marshalRecovered(ctx context.Context, i int, marshalElement func(ctx context.Context, i int) graphql.Marshaler) (m graphql.Marshaler) {
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, graphql.Recover(ctx, r))
			m = graphql.Null
		}
	}()
	return marshalElement(ctx, i)
}

// newDeferredGroup is graphql.NewDeferredGroup (see graph/gqlgen) when one of
// an object's fields is deferred (@defer), and otherwise an empty group: no
// field is added to it (only a deferred one is), and gqlgen's would have
// built the object's path, a field set and a map.
func newDeferredGroup(ctx context.Context, fields []graphql.CollectedField) graphql.DeferredGroup {
	for i := range fields {
		if fields[i].IsDeferred() {
			return graphql.NewDeferredGroup(ctx)
		}
	}
	return graphql.DeferredGroup{}
}

// objectWriter writes an object's fields in order (see graph/gqlgen): what
// graphql.FieldSet's MarshalGQL writes, without the map, iterator and copy
// of each field it allocates per object. As there, the first field of an
// alias wins; a field's alias is a GraphQL name, written without escaping.
type objectWriter struct {
	fields []graphql.CollectedField
	values []graphql.Marshaler
}

func (o *objectWriter) MarshalGQL(w io.Writer) {
	io.WriteString(w, "{") //nolint:errcheck // as graphql.FieldSet: the writer is a buffer
	first := true
	for i := range o.fields {
		alias := o.fields[i].Alias
		if written(o.fields[:i], alias) {
			continue
		}
		if !first {
			io.WriteString(w, ",") //nolint:errcheck
		}
		first = false
		io.WriteString(w, `"`)   //nolint:errcheck
		io.WriteString(w, alias) //nolint:errcheck
		io.WriteString(w, `":`)  //nolint:errcheck
		o.values[i].MarshalGQL(w)
	}
	io.WriteString(w, "}") //nolint:errcheck
}

// written says whether one of fields has alias. Objects have few fields, and
// the alias limit bounds them, so a scan beats a map.
func written(fields []graphql.CollectedField, alias string) bool {
	for i := range fields {
		if fields[i].Alias == alias {
			return true
		}
	}
	return false
}
