// Command gqlgen is `gqlgen generate` (go generate ./graph runs it) plus
// five rewrites of the generated executor, for the work gqlgen does per
// object and per field that most responses never use:
//
//   - A list of objects that cannot wait is marshalled in a plain loop
//     (marshalSequentially, graph/execfast.go) instead of a goroutine per
//     element (graphql.MarshalSliceConcurrently).
//   - An object's deferred group (graphql.NewDeferredGroup, which builds the
//     object's path, a field set and a map) is made only when one of the
//     object's fields is deferred (newDeferredGroup).
//   - A plain field (a struct field of scalar or enum type, no arguments, no
//     directive, no resolver, nothing that can fail or be null where it must
//     not) is marshalled straight from the struct, without the field context,
//     middleware closures and boxing of graphql.ResolveField. Such a field
//     cannot fail, so its context is never read; the server has no field
//     middleware (only root-field ones, which these are not).
//   - A struct field holding a pointer to an object (an edge's node, a
//     member's user) is marshalled with the field's context but without the
//     rest of graphql.ResolveField (closures, boxing, a deferred recover)
//     when it is not nil; nil takes gqlgen's path, which reports it.
//   - An object is written by objectWriter, not graphql.FieldSet's MarshalGQL,
//     which allocates a map, an iterator and a copy of each field per object.
//
// A list's element type cannot wait when no field reachable from it through
// the selection can: no resolver or context-taking method (gqlgen's
// concurrent fields), no field directive (@hasRole batches a role lookup), on
// the type itself, on the types of its fields, their fields, and so on, and
// for an interface or union on every implementation. A list of such elements
// gains nothing from running them at once and pays a goroutine (and its stack
// growth) per element. A list whose elements may wait stays concurrent: in a
// loop each element would wait out a loader's batch window in turn.
//
// gqlgen writes the list marshallers from one template with no per-type
// choice, and its plugins run before it writes, so this step takes the list
// of marshaller names from gqlgen's own model (a plugin's GenerateCode) and
// afterwards rewrites the call in exactly those functions of the generated
// file. TestSequentialListsCannotWait (graph/execfast_test.go) re-derives
// the rule from the generated code itself.
package main

import (
	"bytes"
	"fmt"
	goast "go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"sort"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/vektah/gqlparser/v2/ast"
)

// sequentialFunc is the hand-written replacement for graphql.MarshalSliceConcurrently
// (graph/execfast.go), with the same signature.
const sequentialFunc = "marshalSequentially"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gqlgen:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return fmt.Errorf("load gqlgen.yml: %w", err)
	}
	p := &sequentialLists{}
	if err := api.Generate(cfg, api.AddPlugin(p)); err != nil {
		return err
	}
	return rewrite(cfg.Exec.Filename, p)
}

// sequentialLists is the gqlgen plugin that picks the list marshallers to
// make sequential.
type sequentialLists struct {
	funcs map[string]bool // list marshaller function names
	plain map[string]bool // field function names (_Type_field)
	ptrs  map[string]bool // field function names (_Type_field)
}

func (*sequentialLists) Name() string { return "sequential-lists" }

func (p *sequentialLists) GenerateCode(data *codegen.Data) error {
	objects := map[string]*codegen.Object{}
	for _, o := range data.Objects {
		objects[o.Name] = o
	}
	w := waits{data: data, objects: objects, memo: map[string]bool{}}
	p.funcs = map[string]bool{}
	for _, ref := range data.ReferencedTypes {
		if !ref.IsSlice() || ref.IsScalar() || ref.Definition == nil {
			continue
		}
		switch ref.Definition.Kind {
		case ast.Object, ast.Interface, ast.Union:
			if !w.typeMayWait(ref.Definition.Name) {
				p.funcs[ref.MarshalFunc()] = true
			}
		}
	}
	p.plain, p.ptrs = map[string]bool{}, map[string]bool{}
	for _, o := range data.Objects {
		if o.Root {
			continue
		}
		for _, f := range o.Fields {
			switch {
			case plainField(f):
				p.plain["_"+o.Name+"_"+f.Name] = true
			case pointerField(f):
				p.ptrs["_"+o.Name+"_"+f.Name] = true
			}
		}
	}
	return nil
}

// structField says whether f is a struct field of one value (not a list)
// read as it is: no resolver, no method, no arguments, no directive.
func structField(f *codegen.Field) bool {
	ref := f.TypeReference
	return !f.IsResolver && !f.MethodHasContext && f.IsVariable() && len(f.Directives) == 0 && len(f.Args) == 0 &&
		ref != nil && ref.Definition != nil && !ref.IsSlice() && f.Name != "__typename"
}

// plainField says whether f is a structField whose value marshals without a
// context: of scalar or enum type, not a context marshaller, and not null
// where the schema forbids it.
func plainField(f *codegen.Field) bool {
	if !structField(f) || f.TypeReference.IsContext {
		return false
	}
	ref := f.TypeReference
	if ref.Definition.Kind != ast.Scalar && ref.Definition.Kind != ast.Enum {
		return false
	}
	return !ref.GQL.NonNull || !ref.IsNilable()
}

// pointerField says whether f is a structField holding a pointer to an object.
func pointerField(f *codegen.Field) bool {
	ref := f.TypeReference
	return structField(f) && ref.IsPtr() && !ref.IsPtrToPtr() && ref.Definition.Kind == ast.Object
}

// waits decides, per GraphQL type name, whether marshalling a value of it may wait.
type waits struct {
	data    *codegen.Data
	objects map[string]*codegen.Object
	memo    map[string]bool
}

func (w *waits) typeMayWait(name string) bool {
	if v, ok := w.memo[name]; ok {
		return v
	}
	// A cycle (Order -> Customer -> Order) is assumed not to wait while it is
	// being decided; any field on it that waits still marks every type on it.
	w.memo[name] = false
	v := w.decide(name)
	w.memo[name] = v
	return v
}

func (w *waits) decide(name string) bool {
	def := w.data.Schema.Types[name]
	if def == nil {
		return true
	}
	switch def.Kind {
	case ast.Scalar, ast.Enum:
		return false
	case ast.Interface, ast.Union:
		for _, impl := range w.data.Schema.GetPossibleTypes(def) {
			if w.typeMayWait(impl.Name) {
				return true
			}
		}
		return false
	case ast.Object:
		o := w.objects[name]
		if o == nil {
			return true
		}
		for _, f := range o.Fields {
			if f.IsConcurrent() || len(f.Directives) > 0 {
				return true
			}
			if w.typeMayWait(f.Type.Name()) {
				return true
			}
		}
		return false
	}
	return true
}

// rewrite applies the rewrites to the generated file at path, and
// fails unless it found every function p named.
func rewrite(path string, p *sequentialLists) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return err
	}
	type edit struct {
		from, to int
		text     string
	}
	var edits []edit
	replace := func(n goast.Node, text string) {
		edits = append(edits, edit{fset.Position(n.Pos()).Offset, fset.Position(n.End()).Offset, text})
	}
	found := map[string]bool{}
	for _, d := range file.Decls {
		fn, ok := d.(*goast.FuncDecl)
		if !ok || fn.Recv == nil || fn.Body == nil {
			continue
		}
		name := fn.Name.Name
		if p.plain[name] || p.ptrs[name] {
			body, err := fieldBody(src, fset, fn, p.ptrs[name])
			if err != nil {
				return fmt.Errorf("%s: %s: %w", path, name, err)
			}
			replace(fn.Body, body)
			found[name] = true
			continue
		}
		goast.Inspect(fn.Body, func(n goast.Node) bool {
			if r, ok := n.(*goast.ReturnStmt); ok && len(r.Results) == 1 && isObjectFieldSet(fn) {
				if id, ok := r.Results[0].(*goast.Ident); ok && id.Name == "out" {
					replace(r, "return &objectWriter{fields: fields, values: out.Values}")
				}
				return true
			}
			call, ok := n.(*goast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*goast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*goast.Ident); !ok || x.Name != "graphql" {
				return true
			}
			switch {
			case sel.Sel.Name == "MarshalSliceConcurrently" && p.funcs[name]:
				replace(sel, sequentialFunc)
				found[name] = true
			case sel.Sel.Name == "NewDeferredGroup" && len(call.Args) == 1:
				replace(call, "newDeferredGroup(ctx, fields)")
			}
			return true
		})
	}
	for name := range p.funcs {
		if !found[name] {
			return fmt.Errorf("%s: no MarshalSliceConcurrently in %s", path, name)
		}
	}
	for name := range p.plain {
		if !found[name] {
			return fmt.Errorf("%s: no field function %s", path, name)
		}
	}
	for name := range p.ptrs {
		if !found[name] {
			return fmt.Errorf("%s: no field function %s", path, name)
		}
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].from < edits[j].from })
	var out bytes.Buffer
	last := 0
	for _, e := range edits {
		out.Write(src[last:e.from])
		out.WriteString(e.text)
		last = e.to
	}
	out.Write(src[last:])
	formatted, err := format.Source(out.Bytes())
	if err != nil {
		return err
	}
	return os.WriteFile(path, formatted, 0o644)
}

// isObjectFieldSet says whether fn is an object's marshaller, which starts
//
//	fields := graphql.CollectFields(...)
//	out := graphql.NewFieldSet(fields)
func isObjectFieldSet(fn *goast.FuncDecl) bool {
	if len(fn.Body.List) < 2 {
		return false
	}
	is := func(st goast.Stmt, name, call string) bool {
		a, ok := st.(*goast.AssignStmt)
		if !ok || len(a.Lhs) != 1 || len(a.Rhs) != 1 {
			return false
		}
		id, ok := a.Lhs[0].(*goast.Ident)
		c, ok2 := a.Rhs[0].(*goast.CallExpr)
		if !ok || !ok2 || id.Name != name {
			return false
		}
		sel, ok := c.Fun.(*goast.SelectorExpr)
		return ok && sel.Sel.Name == call
	}
	return is(fn.Body.List[0], "fields", "CollectFields") && is(fn.Body.List[1], "out", "NewFieldSet")
}

// fieldBody returns the new body of a plain or pointer field's function,
// whose generated body is
//
//	return graphql.ResolveField(ctx, ec.OperationContext, field, <field context>,
//		func(ctx context.Context) (any, error) { return <value>, nil },
//		nil,
//		func(ctx context.Context, selections ast.SelectionSet, v T) graphql.Marshaler {
//			return ec.<marshal>(ctx, selections, v)
//		}, ...)
//
// and becomes "return ec.<marshal>(ctx, field.Selections, <value>)"; for a
// pointer, that with the field's context when the value is not nil, and the
// generated body otherwise.
func fieldBody(src []byte, fset *token.FileSet, fn *goast.FuncDecl, pointer bool) (string, error) {
	text := func(n goast.Node) string {
		return string(src[fset.Position(n.Pos()).Offset:fset.Position(n.End()).Offset])
	}
	if len(fn.Body.List) != 1 {
		return "", fmt.Errorf("not one statement")
	}
	ret, ok := fn.Body.List[0].(*goast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return "", fmt.Errorf("not a return")
	}
	call, ok := ret.Results[0].(*goast.CallExpr)
	if !ok || text(call.Fun) != "graphql.ResolveField" || len(call.Args) < 7 || text(call.Args[5]) != "nil" {
		return "", fmt.Errorf("not graphql.ResolveField without middleware")
	}
	value, ok := call.Args[4].(*goast.FuncLit)
	if !ok || len(value.Body.List) != 1 {
		return "", fmt.Errorf("resolver is not one statement")
	}
	vret, ok := value.Body.List[0].(*goast.ReturnStmt)
	if !ok || len(vret.Results) != 2 || text(vret.Results[1]) != "nil" {
		return "", fmt.Errorf("resolver does not return a value and nil")
	}
	marshal, ok := call.Args[6].(*goast.FuncLit)
	if !ok || len(marshal.Body.List) != 1 {
		return "", fmt.Errorf("marshaller is not one statement")
	}
	mret, ok := marshal.Body.List[0].(*goast.ReturnStmt)
	if !ok || len(mret.Results) != 1 {
		return "", fmt.Errorf("marshaller is not a return")
	}
	mcall, ok := mret.Results[0].(*goast.CallExpr)
	if !ok || len(mcall.Args) != 3 {
		return "", fmt.Errorf("marshaller is not a call of three")
	}
	if !pointer {
		return fmt.Sprintf("{\n\treturn %s(ctx, field.Selections, %s)\n}", text(mcall.Fun), text(vret.Results[0])), nil
	}
	fc, ok := call.Args[3].(*goast.FuncLit)
	if !ok || len(fc.Body.List) != 1 {
		return "", fmt.Errorf("field context is not one statement")
	}
	fret, ok := fc.Body.List[0].(*goast.ReturnStmt)
	if !ok || len(fret.Results) != 1 {
		return "", fmt.Errorf("field context is not a return")
	}
	fcall, ok := fret.Results[0].(*goast.CallExpr)
	if !ok {
		return "", fmt.Errorf("field context is not a call")
	}
	return fmt.Sprintf(`{
	if v := %s; v != nil {
		if fc, err := %s(ctx, field); err == nil {
			fc.Result = v
			return %s(graphql.WithFieldContext(ctx, fc), field.Selections, v)
		}
	}
	%s
}`, text(vret.Results[0]), text(fcall.Fun), text(mcall.Fun), text(ret)), nil
}
