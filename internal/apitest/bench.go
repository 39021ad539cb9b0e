package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime/metrics"
	"testing"
)

// LeanClient sends one query (with its variables) over one kept-alive
// connection and discards the answer after checking it: the allocation figures
// count the server's work, not the decoding of its answers.
type LeanClient struct {
	t      testing.TB
	url    string
	token  string
	body   []byte
	client *http.Client
}

// NewLeanClient makes a LeanClient for query on s, as token.
func (s *Server) NewLeanClient(t testing.TB, token, query string, vars map[string]any) *LeanClient {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	c := &LeanClient{t: t, url: s.URL, token: token, body: body, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

// Send sends the query once, failing the test unless it is answered without errors.
func (c *LeanClient) Send() {
	req, _ := http.NewRequest(http.MethodPost, c.url+"/query", bytes.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var out bytes.Buffer
	if _, err := io.Copy(&out, res.Body); err != nil {
		c.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || bytes.Contains(out.Bytes(), []byte(`"errors"`)) {
		c.t.Fatalf("status %d: %.300s", res.StatusCode, out.String())
	}
}

// HeapAllocs is the process's count of heap objects allocated so far.
func HeapAllocs() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// BenchQuery runs query (with vars) b.N times through a lean client after
// checking its statement count once, and reports the allocations and
// statements per request as the benchmark's metrics (allocs/req, sql/req).
// Other benchmarks must not run meanwhile: HeapAllocs counts the whole process.
func (s *Server) BenchQuery(b *testing.B, token, query string, vars map[string]any, statements int64) {
	b.Helper()
	r, stmts := s.PostCounted(b, token, query, vars)
	if len(r.Errors) > 0 || stmts != statements {
		b.Fatalf("errors %s, %d statements, want %d", r.Raw, stmts, statements)
	}
	c := s.NewLeanClient(b, token, query, vars)
	for range 20 {
		c.Send()
	}
	before := HeapAllocs()
	n := 0
	for b.Loop() {
		c.Send()
		n++
	}
	b.ReportMetric(float64(HeapAllocs()-before)/float64(n), "allocs/req")
	b.ReportMetric(float64(stmts), "sql/req")
}
