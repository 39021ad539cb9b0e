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

// importRules are the import arrows (README and docs/layout.md, Layout): graph -> area services ->
// area stores -> db. A package matching a rule's From may not import any package
// matching its Deny, unless it is one of Except.
var importRules = []struct {
	From, Deny []string
	Except     []string
	Why        string
}{
	{From: []string{"internal/..."}, Deny: []string{"graph", "graph/..."}, Except: []string{"internal/app"},
		Why: "only the wiring (internal/app) knows the GraphQL layer"},
	// internal/platform/tracing's request span is HTTP middleware itself (it
	// reads the response's status through httpx.StatusWriter).
	{From: []string{"...", "internal/..."}, Deny: []string{"internal/platform/httpx"}, Except: []string{"internal/app", "internal/platform/tracing"},
		Why: "request metadata reaches services through internal/platform/reqmeta, not the HTTP edge"},
	{From: []string{"internal/platform/..."}, Deny: []string{"graph", "graph/...", "internal/account", "internal/org", "internal/audit", "internal/auth", "internal/customer", "internal/loader", "internal/app"},
		Why: "platform packages hold no business rules and know no area"},
	{From: []string{"internal/account", "internal/org", "internal/audit", "internal/auth", "internal/customer"}, Deny: []string{"internal/loader", "internal/app", "internal/apitest"},
		Why: "areas know nothing of the request's loaders or of the wiring"},
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

// importViolations checks imports (package -> what it imports, relative to the
// module; the root package is "") against importRules.
func importViolations(imports map[string][]string) []string {
	var out []string
	for pkg, deps := range imports {
		for _, r := range importRules {
			if !match(pkg, r.From) || slices.Contains(r.Except, pkg) {
				continue
			}
			for _, d := range deps {
				if match(d, r.Deny) {
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
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		for _, d := range fields[1:] {
			if d == module || strings.HasPrefix(d, module+"/") {
				imports[pkg] = append(imports[pkg], strings.TrimPrefix(strings.TrimPrefix(d, module), "/"))
			}
		}
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages with module imports", len(imports))
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
}
