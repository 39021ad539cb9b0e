package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/config"
	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
)

var database *dbtest.Database

// asBinary makes the test binary run main() instead of the tests, so that a test
// can start the real entry point in a child process with an environment of its own.
const asBinary = "TENANTGRAPH_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	// The served binary runs os.Executable() (this test binary) as its hash
	// workers, with asBinary already unset.
	if len(os.Args) > 1 && os.Args[1] == auth.WorkerArg {
		os.Args = []string{os.Args[0], auth.WorkerArg}
		main()
		os.Exit(0)
	}
	if os.Getenv(asBinary) == "1" {
		os.Unsetenv(asBinary)
		main()
		os.Exit(0)
	}
	dbtest.Main(m, &database)
}

// binary runs `tenantgraph serve` (main, in a child process) with exactly env.
func binary(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "serve")
	cmd.Env = append([]string{asBinary + "=1"}, env...)
	// As the suite runs (make test's second pass, make test-pgbouncer), unless the test says.
	if v, ok := os.LookupEnv(db.PreparedSetting); ok && !slices.ContainsFunc(env, func(e string) bool {
		return strings.HasPrefix(e, db.PreparedSetting+"=")
	}) {
		cmd.Env = append(cmd.Env, db.PreparedSetting+"="+v)
	}
	cmd.Dir = t.TempDir() // whatever it writes to a relative DATA_DIR stays out of the checkout
	return cmd
}

// refusesToStart runs the binary with env, which must stop it at start with
// status 1, and returns what it wrote on stderr.
func refusesToStart(t *testing.T, env ...string) string {
	t.Helper()
	cmd := binary(t, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
	}
	return stderr.String()
}

// TestProductionByDefaultRefusesToStartWithoutAKey: with APP_ENV unset the
// server is in production and will not start without a JWT key; it says what is
// missing and how to fix it. Development is opt-in.
func TestProductionByDefaultRefusesToStartWithoutAKey(t *testing.T) {
	refused := func(t *testing.T, env ...string) string {
		t.Helper()
		out := refusesToStart(t, env...)
		for _, want := range []string{"tenantgraph: configuration:", "no JWT signing key: APP_ENV is not set, so the server runs in production",
			"JWT_SECRETS", "JWT_SECRET ", "APP_ENV=development"} {
			if !strings.Contains(out, want) {
				t.Errorf("stderr does not say %q:\n%s", want, out)
			}
		}
		return out
	}
	t.Run("empty environment", func(t *testing.T) {
		if out := refused(t); !strings.Contains(out, "DATABASE_URL is required") {
			t.Errorf("stderr does not name DATABASE_URL:\n%s", out)
		}
	})
	t.Run("only a database", func(t *testing.T) {
		dir := t.TempDir()
		out := refused(t, "DATABASE_URL="+database.URL, "HTTP_ADDR=127.0.0.1:0", "DATA_DIR="+dir)
		if strings.Contains(out, "DATABASE_URL") {
			t.Errorf("stderr complains about DATABASE_URL:\n%s", out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the refused server wrote %v into DATA_DIR", entries)
		}
	})
	// The controls: the same database starts with a key, or in development.
	t.Run("production with keys", func(t *testing.T) {
		out := serves(t, "DATABASE_URL="+database.URL, "DATABASE_DIRECT_URL="+database.DirectURL, "HTTP_ADDR=127.0.0.1:0", "MAIL_DRIVER=smtp", "SMTP_HOST=smtp.example.test",
			"JWT_SECRETS=2026-11:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,"+
				"2026-05:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752")
		if !strings.Contains(out, `"env":"production"`) || !strings.Contains(out, `"jwt_kid":"2026-11"`) {
			t.Errorf("serving log: %s", out)
		}
	})
	t.Run("development", func(t *testing.T) {
		dir := t.TempDir()
		out := serves(t, "APP_ENV=development", "DATABASE_URL="+database.URL, "DATABASE_DIRECT_URL="+database.DirectURL, "HTTP_ADDR=127.0.0.1:0", "DATA_DIR="+dir)
		if !strings.Contains(out, "env=development") || !strings.Contains(out, "jwt_kid=default") {
			t.Errorf("serving log: %s", out)
		}
		if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); err != nil {
			t.Errorf("no generated key: %v", err)
		}
	})
}

// TestProductionRefusesToStartWithoutRealMail: in production the server does
// not start unless MAIL_DRIVER names a driver that delivers mail; the console
// driver, which logs every link, is refused.
func TestProductionRefusesToStartWithoutRealMail(t *testing.T) {
	env := []string{"DATABASE_URL=" + database.URL, "DATABASE_DIRECT_URL=" + database.DirectURL, "HTTP_ADDR=127.0.0.1:0", "JWT_SECRET=3c9b1f0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"}
	for _, c := range []struct {
		name   string
		driver []string
		says   string
	}{
		{"no driver", nil, "MAIL_DRIVER is required in production"},
		{"console", []string{"MAIL_DRIVER=console"}, "MAIL_DRIVER=console is refused in production"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if out := refusesToStart(t, append(env[:len(env):len(env)], c.driver...)...); !strings.Contains(out, "tenantgraph: configuration:") || !strings.Contains(out, c.says) {
				t.Errorf("stderr does not say %q:\n%s", c.says, out)
			}
		})
	}
	// The control: the same settings with a file driver serve.
	out := serves(t, append(env[:len(env):len(env)], "MAIL_DRIVER=file", "MAIL_DIR="+t.TempDir())...)
	if !strings.Contains(out, `"mail":"file"`) {
		t.Errorf("serving log: %s", out)
	}
}

// TestTrustedDocumentsManifestIsCheckedAtStart: a manifest whose key is not its
// document's hash, or that cannot be read, stops the server at start, saying
// which; a good one serves and the serving line counts its documents.
func TestTrustedDocumentsManifestIsCheckedAtStart(t *testing.T) {
	env := []string{"APP_ENV=development", "DATABASE_URL=" + database.URL, "DATABASE_DIRECT_URL=" + database.DirectURL, "HTTP_ADDR=127.0.0.1:0", "DATA_DIR=" + t.TempDir()}
	dir := t.TempDir()
	manifest := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrong := strings.Repeat("0", 64)
	for _, c := range []struct{ name, path, says string }{
		{"a wrong hash", manifest("wrong.json", `{"sha256:`+wrong+`": "{ __typename }"}`), `key "sha256:` + wrong + `": its document's sha256 is`},
		{"a missing file", filepath.Join(dir, "missing.json"), "TRUSTED_DOCUMENTS: open " + filepath.Join(dir, "missing.json")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if out := refusesToStart(t, append(env[:len(env):len(env)], "TRUSTED_DOCUMENTS="+c.path)...); !strings.Contains(out, "tenantgraph: configuration:") || !strings.Contains(out, c.says) {
				t.Errorf("stderr does not say %q:\n%s", c.says, out)
			}
		})
	}
	good := manifest("good.json", `{"sha256:ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38": "{__typename}"}`)
	if out := serves(t, append(env[:len(env):len(env)], "TRUSTED_DOCUMENTS="+good)...); !strings.Contains(out, "trusted_documents=1") {
		t.Errorf("serving log: %s", out)
	}
}

// serves starts the binary with env, waits for its "serving" log line, stops it
// with SIGTERM and returns that line.
func serves(t *testing.T, env ...string) string {
	t.Helper()
	log, stop := started(t, env...)
	stop()
	return log[len(log)-1]
}

// started starts the binary with env and waits for its "serving" log line; it
// returns the log up to that line, and stop, which sends SIGTERM and waits for
// a clean exit.
func started(t *testing.T, env ...string) (log []string, stop func()) {
	t.Helper()
	cmd := binary(t, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	serving := ""
	timeout := time.After(30 * time.Second)
	for serving == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait() //nolint:errcheck
				t.Fatalf("the server exited without serving:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			if strings.Contains(l, "serving") {
				serving = l
			}
		case <-timeout:
			cmd.Process.Kill() //nolint:errcheck
			t.Fatalf("the server did not start within 30s:\n%s", strings.Join(log, "\n"))
		}
	}
	return log, func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for range lines { // drain until the child closes its output
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
	}
}

// TestShutdownFinishesInFlightRequests: on SIGTERM (ctx cancelled) the server
// stops accepting connections but answers the request it is reading, then returns.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	addr, cancel, done := startServe(t)

	// Wait until it serves.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not come up")
		}
	}
	http.DefaultClient.CloseIdleConnections()

	// A request whose body is still on its way when the shutdown starts.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"query":"{ __typename }"}`
	if _, err := io.WriteString(conn, "POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body[:5]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server has read the headers: the connection is active
	cancel()

	select {
	case err := <-done:
		t.Fatalf("serve returned with a request in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// No new connections once shutting down.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted during shutdown")
	}
	// The in-flight request completes and is answered.
	if _, err := io.WriteString(conn, body[5:]); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"__typename":"Query"`) {
		t.Fatalf("in-flight request: %d %s", res.StatusCode, b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the last request finished")
	}
}

// hashWorkers returns the pids of this process's children running hash-worker.
func hashWorkers(t *testing.T) []int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])) // f[1]: ppid
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && strings.Contains(string(cmdline), auth.WorkerArg) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestServeHashesInWorkerProcesses: the server hashes passwords in a
// `hash-worker` child of its own binary (here the test binary, see TestMain):
// registering and logging in work, a worker runs beside the server, and none is
// left once the server has stopped.
func TestServeHashesInWorkerProcesses(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	addr, cancel, done := startServe(t)
	defer cancel()

	post := func(body string) string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			res, err := http.Post("http://"+addr+"/query", "application/json", strings.NewReader(body))
			if err != nil {
				if time.Now().After(deadline) {
					t.Fatalf("the server does not answer: %v", err)
				}
				continue
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return string(b)
		}
	}
	email := "worker-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@example.com"
	if out := post(`{"query":"mutation($in: RegisterInput!) { register(input: $in) { accessToken } }",` +
		`"variables":{"in":{"email":"` + email + `","password":"correct horse battery","name":"W"}}}`); !strings.Contains(out, `"accessToken":"`) {
		t.Fatalf("register: %s", out)
	}
	login := func(pw string) string {
		return post(`{"query":"mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",` +
			`"variables":{"e":"` + email + `","p":"` + pw + `"}}`)
	}
	if out := login("correct horse battery"); !strings.Contains(out, `"accessToken":"`) {
		t.Fatalf("login with the right password: %s", out)
	}
	if out := login("wrong horse battery"); !strings.Contains(out, `"UNAUTHENTICATED"`) {
		t.Fatalf("login with a wrong password: %s", out)
	}
	pids := hashWorkers(t)
	if len(pids) != 1 {
		t.Fatalf("hash workers beside the server: %v, want 1", pids)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
	if left := hashWorkers(t); len(left) != 0 {
		t.Errorf("hash workers left after the server stopped: %v", left)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pids[0])); err == nil {
		t.Errorf("hash worker %d not reaped", pids[0])
	}
}

// startServe runs serve, in development on the test database, on a free port of
// 127.0.0.1; cancel stops it, and done receives what serve returned.
func startServe(t *testing.T) (addr string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cfg := config.Config{Env: "development", DatabaseURL: database.URL, DatabaseDirectURL: database.DirectURL, JWTKeys: []config.JWTKey{{ID: "k1", Secret: []byte(strings.Repeat("s", 32))}},
		AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, MailDriver: "file", MailDir: t.TempDir(), AppBaseURL: "http://x"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan error, 1)
	go func() { out <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), database.DB, ln, nil) }()
	return ln.Addr().String(), cancel, out
}

// TestPprofServesOnItsOwnAddress: PPROF_ADDR serves the profiles on an address
// of its own; the API's address never serves them.
func TestPprofServesOnItsOwnAddress(t *testing.T) {
	addr, stop, err := servePprof("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Fatalf("pprof index: %d %.200s", res.StatusCode, b)
	}
	api, cancel, done := startServe(t)
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res, err := http.Get("http://" + api + "/debug/pprof/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("the API address answers /debug/pprof/ with %d", res.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not come up")
		}
	}
}

// TestMetricsServeOnTheirOwnAddress: with METRICS_ADDR, a production server
// serves the Go runtime's metrics in the Prometheus format at /metrics on that
// address, and its allocation counter grows as it answers; the API's address
// never serves them, and without METRICS_ADDR nothing does.
func TestMetricsServeOnTheirOwnAddress(t *testing.T) {
	env := []string{"DATABASE_URL=" + database.URL, "DATABASE_DIRECT_URL=" + database.DirectURL, "HTTP_ADDR=127.0.0.1:0", "MAIL_DRIVER=file", "MAIL_DIR=" + t.TempDir(),
		"JWT_SECRET=3c9b1f0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"}
	log, stop := started(t, append(env[:len(env):len(env)], "METRICS_ADDR=127.0.0.1:0")...)
	defer func() { stop() }()
	var metricsAddr, apiAddr string
	for _, l := range log {
		var line struct{ Msg, Addr string }
		if json.Unmarshal([]byte(l), &line) == nil {
			switch line.Msg {
			case "metrics":
				metricsAddr = line.Addr
			case "serving":
				apiAddr = line.Addr
			}
		}
	}
	if metricsAddr == "" || apiAddr == "" {
		t.Fatalf("no metrics or serving line with an address in the log:\n%s", strings.Join(log, "\n"))
	}
	metric := func(name string) float64 {
		t.Helper()
		status, body := get(t, "http://"+metricsAddr+"/metrics")
		if status != http.StatusOK {
			t.Fatalf("/metrics: %d %.300s", status, body)
		}
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %q", name, l)
				}
				return n
			}
		}
		t.Fatalf("/metrics has no %s:\n%.2000s", name, body)
		return 0
	}
	mallocs := func() float64 { t.Helper(); return metric("go_memstats_mallocs_total") }
	// GOGC is not set here: serve collects at ServeGCPercent.
	if got := metric("go_gc_gogc_percent"); got != ServeGCPercent {
		t.Errorf("go_gc_gogc_percent = %v, want %d (ServeGCPercent)", got, ServeGCPercent)
	}
	before := mallocs()
	for range 5 {
		if status, body := get(t, "http://"+apiAddr+"/readyz"); status != http.StatusOK {
			t.Fatalf("/readyz: %d %.300s", status, body)
		}
	}
	if after := mallocs(); after <= before {
		t.Errorf("go_memstats_mallocs_total did not grow across requests: %v then %v", before, after)
	}
	// The application's series are on the same registry (see TestMetricsCountRequestsByOperation).
	res, err := http.Post("http://"+apiAddr+"/query", "application/json", strings.NewReader(`{"query":"query Ping { __typename }"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := metric(`tenantgraph_graphql_requests_total{code="OK",operation="Ping",type="query"}`); got != 1 {
		t.Errorf("requests of Ping = %v, want 1", got)
	}
	metric(`go_sql_open_connections{db_name="tenantgraph"}`)
	metric("tenantgraph_mail_outbox_pending")
	if status, _ := get(t, "http://"+apiAddr+"/metrics"); status != http.StatusNotFound {
		t.Errorf("the API address answers /metrics with %d, want 404", status)
	}

	stop()

	// Off unless set: without METRICS_ADDR the same server listens for no metrics.
	log, stop = started(t, env...)
	for _, l := range log {
		if strings.Contains(l, `"msg":"metrics"`) {
			t.Errorf("metrics served without METRICS_ADDR: %s", l)
		}
	}
}

// get fetches url and returns the status and body (status 0 and the error's text when it fails).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
