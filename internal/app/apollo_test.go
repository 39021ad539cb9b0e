package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

// nodeModules installs a Node project of the repository (test/<name>) with
// npm ci from its lockfile, once per lockfile: a marker in node_modules
// holds the lockfile's hash. No node or npm: the test is skipped, except under
// CI=true, where it fails.
var npmMu sync.Mutex

func nodeModules(t *testing.T, name string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed (Node.js 18 or later): %v", tool, err)
			}
			t.Skipf("SKIPPED: %s not found (Node.js 18 or later runs this test)", tool)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "test", name)
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	marker := filepath.Join(dir, "node_modules", ".tenantgraph-lock-"+hex.EncodeToString(sum[:8]))
	npmMu.Lock()
	defer npmMu.Unlock()
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in test/%s: %v\n%s", name, err, out)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestApolloClientSubscription: Apollo Client 4 with GraphQLWsLink (Node,
// test/apollo/subscribe.mjs) reads the organization's eventsCursor, subscribes
// after it, and finds the order that another client created in its normalized
// cache on order.created, then PAID on order.paid: the cache updates itself
// from the events' subjects. About 1 s, plus npm ci (a few seconds) the first
// time after the lockfile changes.
func TestApolloClientSubscription(t *testing.T) {
	t.Parallel()
	dir := nodeModules(t, "apollo")
	owner := srv.RegisterVerified(t, "apollo")
	org := srv.CreateOrg(t, owner, "Apollo")
	var p struct{ CreateProduct struct{ ID uuid.UUID } }
	MustOK(t, srv.Post(t, owner.AccessToken, `mutation($o: ID!) { createProduct(orgId: $o, input: {sku: "A", name: "A", price: "250", trackInventory: false}) { id } }`,
		map[string]any{"o": org})).Decode(t, &p)
	customer := createCustomer(t, srv, owner.AccessToken, org, "Apollo buyer")

	cmd := exec.Command("node", "subscribe.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "API_URL="+srv.URL+"/query", "TOKEN="+owner.AccessToken,
		"ORG="+org.String(), "CUSTOMER="+customer.String(), "PRODUCT="+p.CreateProduct.ID.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node subscribe.mjs: %v\n%s", err, out.String())
	}
	t.Logf("%s(%s)", out.String(), time.Since(start).Round(time.Millisecond))
}
