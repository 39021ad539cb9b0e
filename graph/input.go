package graph

import (
	"context"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/platform/page"
)

// inputBytes refuses, before any resolver runs, an operation whose string input
// holds a NUL character (PostgreSQL text cannot store it) or invalid UTF-8: every
// argument of every field and directive, written inline in the document or passed
// in variables, nested in input objects and lists, fragments included. The error
// is BAD_USER_INPUT with extensions.field naming the argument ("input.email").
//
// encoding/json and gqlparser's block strings replace invalid UTF-8 with U+FFFD
// before we see the values, so the transport (compliant) checks the raw request
// and marks the context (withRawInvalidUTF8): then a string holding U+FFFD is the
// culprit, and when none does (the bad bytes were in an unused variable, say) the
// whole request is refused without a field.
type inputBytes struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = inputBytes{}

func (inputBytes) ExtensionName() string                   { return "InputBytes" }
func (inputBytes) Validate(graphql.ExecutableSchema) error { return nil }

func (inputBytes) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	raw := rawInvalidUTF8(ctx)
	if oc.Doc == nil || oc.Operation == nil {
		return nil
	}
	w := inputWalker{doc: oc.Doc, vars: oc.Variables, replaced: raw, seen: map[string]bool{}}
	w.directives(oc.Operation.Directives)
	w.selections(oc.Operation.SelectionSet)
	if w.err == nil && raw {
		w.err = badInput("", nil, "the request is not valid UTF-8")
	}
	return w.err
}

type inputWalker struct {
	doc      *ast.QueryDocument
	vars     map[string]any
	replaced bool            // U+FFFD stands for invalid bytes in the raw request
	seen     map[string]bool // fragments walked
	err      *gqlerror.Error // the first bad input
}

func (w *inputWalker) selections(set ast.SelectionSet) {
	for _, sel := range set {
		if w.err != nil {
			return
		}
		switch s := sel.(type) {
		case *ast.Field:
			w.arguments(s.Arguments)
			w.directives(s.Directives)
			w.selections(s.SelectionSet)
		case *ast.InlineFragment:
			w.directives(s.Directives)
			w.selections(s.SelectionSet)
		case *ast.FragmentSpread:
			w.directives(s.Directives)
			if w.seen[s.Name] {
				continue
			}
			w.seen[s.Name] = true
			if def := w.doc.Fragments.ForName(s.Name); def != nil {
				w.directives(def.Directives)
				w.selections(def.SelectionSet)
			}
		}
	}
}

func (w *inputWalker) directives(list ast.DirectiveList) {
	for _, d := range list {
		w.arguments(d.Arguments)
	}
}

func (w *inputWalker) arguments(args ast.ArgumentList) {
	for _, a := range args {
		w.value(a.Value, a.Name)
	}
}

func (w *inputWalker) value(v *ast.Value, path string) {
	if v == nil || w.err != nil {
		return
	}
	switch v.Kind {
	case ast.Variable:
		w.goValue(w.vars[v.Raw], path, v.Position)
	case ast.StringValue, ast.BlockValue:
		w.check(v.Raw, path, v.Position)
	case ast.ListValue:
		for _, c := range v.Children {
			w.value(c.Value, path)
		}
	case ast.ObjectValue:
		for _, c := range v.Children {
			w.value(c.Value, path+"."+c.Name)
		}
	}
}

// goValue walks a variable's coerced value: strings, input objects, lists.
func (w *inputWalker) goValue(v any, path string, pos *ast.Position) {
	if w.err != nil {
		return
	}
	switch v := v.(type) {
	case string:
		w.check(v, path, pos)
	case map[string]any:
		for k, c := range v {
			w.check(k, path, pos)
			w.goValue(c, path+"."+k, pos)
		}
	case []any:
		for _, c := range v {
			w.goValue(c, path, pos)
		}
	default:
		// A single value given for a list variable, which gqlparser makes a
		// typed list of one ([]string, []map[string]any).
		if list := reflect.ValueOf(v); list.Kind() == reflect.Slice {
			for i := range list.Len() {
				w.goValue(list.Index(i).Interface(), path, pos)
			}
		}
	}
}

func (w *inputWalker) check(s, path string, pos *ast.Position) {
	if w.err != nil {
		return
	}
	switch {
	case strings.IndexByte(s, 0) >= 0:
		w.err = badInput(path, pos, "%s must not contain a NUL character", path)
	case !utf8.ValidString(s) || w.replaced && strings.ContainsRune(s, utf8.RuneError):
		w.err = badInput(path, pos, "%s is not valid UTF-8", path)
	}
}

func badInput(field string, pos *ast.Position, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": string(apperr.BadUserInput)}
	if field != "" {
		err.Extensions["field"] = field
	}
	if pos != nil {
		err.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return err
}

// exactEnums refuses, before any resolver runs, a variable whose enum value
// matches one of the schema's only when case is ignored ("admin" for ADMIN),
// anywhere in the variable: in lists and input objects too. gqlparser's
// coercion of variables compares enum values case-insensitively, which the
// GraphQL spec does not, and gqlgen then finds no such value: the request
// used to fail inside execution as an internal error. The refusal is the one
// an unknown value gets, GRAPHQL_VALIDATION_FAILED.
type exactEnums struct{ schema *ast.Schema }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = (*exactEnums)(nil)

func (*exactEnums) ExtensionName() string { return "ExactEnums" }

func (e *exactEnums) Validate(s graphql.ExecutableSchema) error {
	e.schema = s.Schema()
	return nil
}

func (e *exactEnums) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	for _, d := range oc.Operation.VariableDefinitions {
		if err := e.check(d.Type, oc.Variables[d.Variable], "$"+d.Variable); err != nil {
			err.Locations = []gqlerror.Location{{Line: d.Position.Line, Column: d.Position.Column}}
			return err
		}
	}
	return nil
}

// check walks v, a coerced value of type t, for enum values in the wrong case.
func (e *exactEnums) check(t *ast.Type, v any, path string) *gqlerror.Error {
	if v == nil || t == nil {
		return nil
	}
	if t.Elem != nil {
		// A list from JSON is []any; one gqlparser made of a single value is
		// typed ([]string).
		list := reflect.ValueOf(v)
		if list.Kind() != reflect.Slice {
			return e.check(t.Elem, v, path)
		}
		for i := range list.Len() {
			if err := e.check(t.Elem, list.Index(i).Interface(), path); err != nil {
				return err
			}
		}
		return nil
	}
	def := e.schema.Types[t.NamedType]
	if def == nil {
		return nil
	}
	switch def.Kind {
	case ast.Enum:
		if s, ok := v.(string); ok && def.EnumValues.ForName(s) == nil {
			err := gqlerror.Errorf("Variable %q got invalid value %q; %s is not a valid %s", path, s, s, def.Name)
			err.Extensions = map[string]any{"code": errcode.ValidationFailed}
			return err
		}
	case ast.InputObject:
		m, _ := v.(map[string]any)
		for _, f := range def.Fields {
			if err := e.check(f.Type, m[f.Name], path+"."+f.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

type rawInvalidKey struct{}

// withRawInvalidUTF8 marks ctx: the raw request held invalid UTF-8.
func withRawInvalidUTF8(ctx context.Context) context.Context {
	return context.WithValue(ctx, rawInvalidKey{}, true)
}

func rawInvalidUTF8(ctx context.Context) bool {
	b, _ := ctx.Value(rawInvalidKey{}).(bool)
	return b
}

// utf8Checker follows a byte stream read in pieces and notes whether it is valid
// UTF-8, a rune split between two pieces included.
type utf8Checker struct {
	tail    [utf8.UTFMax]byte // the start of a rune the last piece ended in
	n       int
	invalid bool
}

func (c *utf8Checker) write(p []byte) {
	if c.invalid || len(p) == 0 {
		return
	}
	if c.n > 0 {
		// Complete the pending rune with the first bytes of p.
		var buf [2 * utf8.UTFMax]byte
		k := copy(buf[:], c.tail[:c.n])
		k += copy(buf[k:], p[:min(len(p), utf8.UTFMax-c.n)])
		if !utf8.FullRune(buf[:k]) {
			c.n = copy(c.tail[:], buf[:k])
			return
		}
		r, size := utf8.DecodeRune(buf[:k])
		if r == utf8.RuneError && size <= 1 {
			c.invalid = true
			return
		}
		p = p[size-c.n:]
		c.n = 0
	}
	// Hold back a rune that p cuts short.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		c.invalid = true
		return
	}
	c.n = copy(c.tail[:], p[cut:])
}

// valid reports whether everything written so far, ended here, is valid UTF-8.
func (c *utf8Checker) valid() bool { return !c.invalid && c.n == 0 }

// opt translates an optional input field for a patch: absent leaves the field
// alone, an explicit null clears it.
func opt[T any](o graphql.Omittable[*T]) page.Opt[T] {
	v, set := o.ValueOK()
	return page.Opt[T]{Set: set, Value: v}
}
