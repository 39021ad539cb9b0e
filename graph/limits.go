package graph

import (
	"context"
	"math"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tenantgraph/internal/platform/page"
)

// Limits bound what one operation may ask for. They are checked after validation and
// before any resolver runs.
type Limits struct {
	Complexity int // connections cost `first` times their selection (pricedSchema)
	Depth      int // nested selection levels, introspection subtrees exempt
	Aliases    int // aliased fields per operation, fragments counted per use
	// CredentialOps caps the root fields of one operation that hash a password
	// or spend a credential (CredentialFields), aliases and fragments included.
	CredentialOps int
	// Mutations caps the root fields of a mutation, aliases and fragments
	// included: each is a transaction of its own.
	Mutations int
	// BulkRows caps the rows the bulk fields (BulkFields) of one mutation
	// write together, over all their aliases: the work of a document is priced
	// as a whole, not per field.
	BulkRows int
}

// BulkFields are the Mutation fields that write one row per element of a list
// argument, with the path of that argument: each element counts against
// Limits.BulkRows.
var BulkFields = map[string][]string{
	"importCustomers": {"input"},
	"createOrder":     {"input", "lines"},
}

// CredentialFields are the Mutation fields that hash a password, verify one or
// spend a credential. One operation may select at most Limits.CredentialOps of
// them: otherwise one request could hash a password a hundred times over, or
// guess a hundred passwords.
var CredentialFields = map[string]bool{
	"login": true, "register": true, "resetPassword": true, "changePassword": true,
	"requestPasswordReset": true, "refreshToken": true,
}

// DefaultLimits are the limits of the public endpoint. A dashboard query of 20
// organizations with 50 members each costs 5 120 (docs/api.md, "Limits and errors").
var DefaultLimits = Limits{Complexity: 10_000, Depth: 10, Aliases: 30, CredentialOps: 1, Mutations: 20, BulkRows: 1_000}

// Error codes the handler adds to gqlgen's own GRAPHQL_PARSE_FAILED,
// GRAPHQL_VALIDATION_FAILED, PERSISTED_QUERY_NOT_FOUND and COMPLEXITY_LIMIT_EXCEEDED.
const (
	CodeDepthLimit = "DEPTH_LIMIT_EXCEEDED"
	CodeAliasLimit = "ALIAS_LIMIT_EXCEEDED"
	// CodeCredentialLimit: more than Limits.CredentialOps credential fields.
	CodeCredentialLimit = "CREDENTIAL_OPERATION_LIMIT"
	// CodeMutationLimit: more than Limits.Mutations root fields in a mutation.
	CodeMutationLimit = "MUTATION_LIMIT_EXCEEDED"
	// CodeBulkLimit: the bulk fields of a mutation write more than Limits.BulkRows rows.
	CodeBulkLimit = "BULK_LIMIT_EXCEEDED"
	// CodeBadRequest: the HTTP request itself is malformed (not a JSON object with a
	// string query, an unsupported content type or method).
	CodeBadRequest = "BAD_REQUEST"
)

// pricedSchema makes list fields cost what they can return: a field whose type is a
// ...Connection and that takes `first` costs first (page.DefaultFirst when absent,
// at most page.MaxFirst, which is all a resolver will return) times the complexity of
// its selection. Every other field keeps gqlgen's default of 1 plus its selection.
type pricedSchema struct {
	graphql.ExecutableSchema
}

func (s pricedSchema) Complexity(ctx context.Context, typeName, field string, childComplexity int, args map[string]any) (int, bool) {
	if def := s.Schema().Types[typeName]; def != nil {
		if f := def.Fields.ForName(field); f != nil && isConnection(f) {
			return saturatingMul(pageSize(args["first"]), childComplexity), true
		}
	}
	return s.ExecutableSchema.Complexity(ctx, typeName, field, childComplexity, args)
}

func isConnection(f *ast.FieldDefinition) bool {
	return strings.HasSuffix(f.Type.Name(), "Connection") && f.Arguments.ForName("first") != nil
}

// pageSize is the number of rows a `first` argument can bring back.
func pageSize(v any) int {
	n := page.DefaultFirst
	if first, ok := intArg(v); ok && first != nil {
		n = *first
	}
	return min(max(n, 1), page.MaxFirst)
}

func saturatingMul(a, b int) int {
	if a <= 0 || b <= 0 {
		return max(a*b, 1)
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// shapeLimits refuses operations nested deeper than Depth or using more than Aliases
// aliases, before any resolver runs (gqlgen calls it after validation).
type shapeLimits struct {
	depth, aliases, credentialOps int
	mutations, bulkRows           int  // 0: not checked
	introspection                 bool // false: __schema and __type are refused
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = shapeLimits{}

func (shapeLimits) ExtensionName() string                   { return "ShapeLimits" }
func (shapeLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l shapeLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Doc == nil || oc.Operation == nil {
		return nil
	}
	if err := l.check(oc.Doc, oc.Operation); err != nil {
		return err
	}
	return l.checkWrites(oc.Doc, oc.Operation, oc.Variables)
}

// checkWrites prices a mutation as a whole: its root fields, and the rows its
// bulk fields write, over every alias and fragment. A refused mutation runs
// none of its fields.
func (l shapeLimits) checkWrites(doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any) *gqlerror.Error {
	if op.Operation != ast.Mutation {
		return nil
	}
	fields, rows := Writes(doc, op, vars)
	if l.bulkRows > 0 && rows > l.bulkRows {
		err := gqlerror.Errorf("the mutation writes %d rows through its bulk fields (importCustomers rows, createOrder lines), which exceeds the limit of %d per request: split it", rows, l.bulkRows)
		errcode.Set(err, CodeBulkLimit)
		err.Extensions["limit"], err.Extensions["max"] = "bulkRows", l.bulkRows
		return err
	}
	if l.mutations > 0 && fields > l.mutations {
		err := gqlerror.Errorf("the mutation has %d root fields, which exceeds the limit of %d per request: split it", fields, l.mutations)
		errcode.Set(err, CodeMutationLimit)
		err.Extensions["limit"], err.Extensions["max"] = "mutations", l.mutations
		return err
	}
	return nil
}

// Writes counts the root fields of op and the rows its BulkFields write (the
// length of each one's list argument, with vars), each alias and each use of
// a fragment counted (eachRootField). It runs after validation, which has
// resolved the fields' definitions.
func Writes(doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any) (fields, rows int) {
	eachRootField(doc, op, func(f *ast.Field) {
		if strings.HasPrefix(f.Name, "__") {
			return
		}
		fields = satAdd(fields, 1)
		if path, ok := BulkFields[f.Name]; ok && f.Definition != nil {
			rows = satAdd(rows, listLen(f.ArgumentMap(vars), path))
		}
	})
	return fields, rows
}

// eachRootField calls fn with every root field of op, through inline
// fragments and fragment spreads: each alias, and a fragment's fields each
// time it is spread; a fragment that spreads itself is not followed again.
// What the limits and the organization's share read of an operation.
func eachRootField(doc *ast.QueryDocument, op *ast.OperationDefinition, fn func(*ast.Field)) {
	active := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				fn(s)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				def := doc.Fragments.ForName(s.Name)
				if def == nil || active[s.Name] {
					continue
				}
				active[s.Name] = true
				walk(def.SelectionSet)
				delete(active, s.Name)
			}
		}
	}
	walk(op.SelectionSet)
}

// listLen is the length of the list at path in args (0 when there is none).
func listLen(args map[string]any, path []string) int {
	var v any = args
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = m[k]
	}
	l, _ := v.([]any)
	return len(l)
}

func (l shapeLimits) check(doc *ast.QueryDocument, op *ast.OperationDefinition) *gqlerror.Error {
	m := Measure(doc, op)
	if m.Introspects && !l.introspection {
		// Refused here rather than by the executor, whose error would be an internal one.
		err := gqlerror.Errorf("introspection is disabled")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	// Before depth and aliases: 150 aliases of resetPassword are told what matters.
	if n := CredentialOps(doc, op); n > l.credentialOps {
		err := gqlerror.Errorf("operation selects %d credential operations (login, register, resetPassword, changePassword, requestPasswordReset, refreshToken), which exceeds the limit of %d: send one per request", n, l.credentialOps)
		errcode.Set(err, CodeCredentialLimit)
		return err
	}
	if m.Depth > l.depth {
		err := gqlerror.Errorf("operation has depth %d, which exceeds the limit of %d", m.Depth, l.depth)
		errcode.Set(err, CodeDepthLimit)
		return err
	}
	if m.Aliases > l.aliases {
		err := gqlerror.Errorf("operation uses %d aliases, which exceeds the limit of %d", m.Aliases, l.aliases)
		errcode.Set(err, CodeAliasLimit)
		return err
	}
	return nil
}

// CredentialOps counts the root fields of op named in CredentialFields, each alias
// and each use of a fragment counted. Like Measure it needs no validation; a
// fragment that spreads itself is not followed again; each fragment is counted once.
func CredentialOps(doc *ast.QueryDocument, op *ast.OperationDefinition) int {
	active := map[string]bool{}
	memo := map[string]int{}
	var count func(ast.SelectionSet) int
	count = func(set ast.SelectionSet) int {
		n := 0
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if CredentialFields[s.Name] {
					n = satAdd(n, 1)
				}
			case *ast.InlineFragment:
				n = satAdd(n, count(s.SelectionSet))
			case *ast.FragmentSpread:
				if k, ok := memo[s.Name]; ok {
					n = satAdd(n, k)
					continue
				}
				def := doc.Fragments.ForName(s.Name)
				if def == nil || active[s.Name] {
					continue
				}
				active[s.Name] = true
				k := count(def.SelectionSet)
				delete(active, s.Name)
				memo[s.Name] = k
				n = satAdd(n, k)
			}
		}
		return n
	}
	return count(op.SelectionSet)
}

// Shape is the size of an operation as the limits see it.
type Shape struct {
	// Depth is the deepest field nesting: `{ me { id } }` has depth 2. Fragments count
	// as if inlined; the subtrees of __schema and __type are not counted.
	Depth int
	// Aliases counts fields written with an alias (`a: me`); a fragment's aliases count
	// every time it is used.
	Aliases int
	// Introspects: the operation selects __schema or __type.
	Introspects bool
}

// Measure computes the Shape of op. It needs no validation: fragments are looked up
// by name in doc, an unknown one counts as empty, and a fragment that spreads itself
// (directly or not) is not followed again. Each fragment is measured once.
func Measure(doc *ast.QueryDocument, op *ast.OperationDefinition) Shape {
	m := measurer{doc: doc, memo: map[string]Shape{}, active: map[string]bool{}}
	return m.selections(op.SelectionSet)
}

type measurer struct {
	doc    *ast.QueryDocument
	memo   map[string]Shape // shape of each fragment's selection set
	active map[string]bool  // fragments being measured (cycle guard)
}

func (m *measurer) selections(set ast.SelectionSet) Shape {
	var out Shape
	add := func(s Shape, extraDepth int) {
		out.Depth = max(out.Depth, satAdd(s.Depth, extraDepth))
		out.Aliases = satAdd(out.Aliases, s.Aliases)
		out.Introspects = out.Introspects || s.Introspects
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				out.Aliases = satAdd(out.Aliases, 1)
			}
			if s.Name == "__schema" || s.Name == "__type" {
				add(Shape{Introspects: true}, 1) // only the field itself counts
				continue
			}
			add(m.selections(s.SelectionSet), 1)
		case *ast.InlineFragment:
			add(m.selections(s.SelectionSet), 0)
		case *ast.FragmentSpread:
			add(m.fragment(s.Name), 0)
		}
	}
	return out
}

func (m *measurer) fragment(name string) Shape {
	if s, ok := m.memo[name]; ok {
		return s
	}
	def := m.doc.Fragments.ForName(name)
	if def == nil || m.active[name] {
		return Shape{}
	}
	m.active[name] = true
	s := m.selections(def.SelectionSet)
	delete(m.active, name)
	m.memo[name] = s
	return s
}

func satAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}
