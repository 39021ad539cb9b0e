package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "tenantgraph"

// sharedKinds are the packages under internal/ that are no business area,
// named once (each with what is below it): the platform, the area kit
// (apperr, auth, tenant), and what sits around the areas (the request's
// loaders, the wiring, the test kit). Every other package internal/<x>, and
// what is below it, is business area x: a new area is covered by the rules
// without editing this file.
var sharedKinds = []string{
	"internal/platform",
	"internal/apperr",
	"internal/auth",
	"internal/tenant",
	"internal/loader",
	"internal/app",
	"internal/apitest",
}

// area returns the business area ("internal/<x>") pkg belongs to, or "" when
// pkg belongs to none.
func area(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, "internal/")
	if !ok {
		return ""
	}
	for _, k := range sharedKinds {
		if pkg == k || strings.HasPrefix(pkg, k+"/") {
			return ""
		}
	}
	x, _, _ := strings.Cut(rest, "/")
	return "internal/" + x
}

// importRule: a package for which From holds may not import a package for
// which Deny holds (both relative to the module; the root package is "").
type importRule struct {
	From func(pkg string) bool
	Deny func(pkg, dep string) bool
	Why  string
}

// match reports whether pkg (relative to the module) matches a pattern: "x" is
// x itself, "x/..." what is below x, "..." every package.
func match(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if p == "..." || p == pkg || (strings.HasSuffix(p, "/...") && strings.HasPrefix(pkg, strings.TrimSuffix(p, "...")) && pkg != "") {
			return true
		}
	}
	return false
}

// in holds for a package matching patterns.
func in(patterns ...string) func(string) bool {
	return func(pkg string) bool { return match(pkg, patterns) }
}

// inExcept holds for a package matching patterns that is none of except.
func inExcept(patterns []string, except ...string) func(string) bool {
	return func(pkg string) bool { return match(pkg, patterns) && !slices.Contains(except, pkg) }
}

// denied denies the imports matching patterns.
func denied(patterns ...string) func(string, string) bool {
	return func(_, dep string) bool { return match(dep, patterns) }
}

// importRules are the import arrows (ARCHITECTURE.md, Layout): graph -> area
// services -> area stores -> db.
var importRules = []importRule{
	{From: inExcept([]string{"internal/..."}, "internal/app"), Deny: denied("graph", "graph/..."),
		Why: "only the wiring (internal/app) knows the GraphQL layer"},
	// internal/platform/tracing's request span is HTTP middleware itself (it
	// reads the response's status through httpx.StatusWriter).
	{From: inExcept([]string{"...", "internal/..."}, "internal/app", "internal/platform/tracing"), Deny: denied("internal/platform/httpx"),
		Why: "request metadata reaches services through internal/platform/reqmeta, not the HTTP edge"},
	// migrations is the embedded SQL (no Go code of its own) that
	// internal/platform/db's runner applies.
	{From: in("internal/platform/..."), Deny: func(_, dep string) bool {
		return !match(dep, []string{"internal/platform/...", "internal/apperr", "migrations"})
	}, Why: "platform packages hold no business rules, know no area and import nothing outside the platform but apperr"},
	{From: func(pkg string) bool { return area(pkg) != "" }, Deny: func(pkg, dep string) bool {
		other := area(dep)
		return other != "" && other != area(pkg)
	}, Why: "no business area imports another area's package: shared pieces belong in the area kit (internal/tenant) or the platform"},
	{From: func(pkg string) bool { return area(pkg) != "" }, Deny: denied("internal/loader", "internal/app", "internal/apitest"),
		Why: "areas know nothing of the request's loaders, of the wiring or of the test kit"},
	{From: in(areaKit...), Deny: func(_, dep string) bool {
		return area(dep) != "" || match(dep, []string{"internal/loader", "internal/app", "internal/apitest"})
	}, Why: "the area kit serves every area and knows none, nor the request's loaders, the wiring or the test kit"},
}

// areaKit are the shared kinds the areas build on (a subset of sharedKinds).
var areaKit = []string{"internal/apperr", "internal/apperr/...", "internal/auth", "internal/auth/...", "internal/tenant", "internal/tenant/..."}

// importViolations checks imports (package -> what it imports, relative to the
// module; the root package is "") against importRules.
func importViolations(imports map[string][]string) []string {
	var out []string
	for pkg, deps := range imports {
		for _, r := range importRules {
			if !r.From(pkg) {
				continue
			}
			for _, d := range deps {
				if r.Deny(pkg, d) {
					out = append(out, pkg+" imports "+d+": "+r.Why)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestImportArrows: no package imports against the arrows of the layout.
func TestImportArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	areas := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if a := area(pkg); a != "" {
			areas[a] = true
		}
		for _, d := range fields[1:] {
			if d == module || strings.HasPrefix(d, module+"/") {
				imports[pkg] = append(imports[pkg], strings.TrimPrefix(strings.TrimPrefix(d, module), "/"))
			}
		}
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages with module imports", len(imports))
	}
	for _, want := range []string{"internal/account", "internal/audit", "internal/customer", "internal/org"} {
		if !areas[want] {
			t.Errorf("%s is not among the business areas derived from the package list (%v)", want, areas)
		}
	}
	for _, v := range importViolations(imports) {
		t.Error(v)
	}

	// The checker itself must catch what it is for.
	bad := importViolations(map[string][]string{
		"internal/org":           {"internal/platform/httpx", "internal/loader"},
		"internal/platform/db":   {"internal/org"},
		"internal/audit":         {"graph"},
		"internal/app":           {"graph", "internal/platform/httpx"},
		"internal/platform/mail": {"internal/platform/db"},
	})
	if len(bad) != 4 {
		t.Fatalf("the checker found %d violations in a bad graph, want 4: %q", len(bad), bad)
	}

	// A new area, internal/zz, is one without editing the rules: it may not
	// import another area nor be imported by one, nor import the loaders; the
	// platform and the area kit may not import it. The kit, the platform and
	// an area's own subpackages stay allowed to it.
	bad = importViolations(map[string][]string{
		"internal/zz":             {"internal/customer", "internal/loader", "internal/zz/store", "internal/tenant", "internal/apperr", "internal/platform/db"},
		"internal/zz/store":       {"internal/account"},
		"internal/customer":       {"internal/zz", "internal/tenant"},
		"internal/platform/mail":  {"internal/zz", "internal/auth", "internal/apperr", "internal/platform/db"},
		"internal/platform/db":    {"migrations"},
		"internal/tenant":         {"internal/apitest", "internal/platform/db", "internal/zz"},
		"internal/loader":         {"internal/zz", "internal/customer"},
		"internal/platform/trace": {"internal/platform/httpx"},
	})
	want := []string{
		"internal/customer imports internal/zz: no business area imports another area's package: shared pieces belong in the area kit (internal/tenant) or the platform",
		"internal/platform/mail imports internal/auth: platform packages hold no business rules, know no area and import nothing outside the platform but apperr",
		"internal/platform/mail imports internal/zz: platform packages hold no business rules, know no area and import nothing outside the platform but apperr",
		"internal/platform/trace imports internal/platform/httpx: request metadata reaches services through internal/platform/reqmeta, not the HTTP edge",
		"internal/tenant imports internal/apitest: the area kit serves every area and knows none, nor the request's loaders, the wiring or the test kit",
		"internal/tenant imports internal/zz: the area kit serves every area and knows none, nor the request's loaders, the wiring or the test kit",
		"internal/zz imports internal/customer: no business area imports another area's package: shared pieces belong in the area kit (internal/tenant) or the platform",
		"internal/zz imports internal/loader: areas know nothing of the request's loaders, of the wiring or of the test kit",
		"internal/zz/store imports internal/account: no business area imports another area's package: shared pieces belong in the area kit (internal/tenant) or the platform",
	}
	if !slices.Equal(bad, want) {
		t.Errorf("violations in a graph with a new area internal/zz:\n got %q\nwant %q", bad, want)
	}
}
