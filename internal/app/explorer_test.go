package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/app"
	"tenantgraph/internal/platform/explorer"
)

// needExplorerFiles fails a test on a binary built without `make explorer-assets`.
func needExplorerFiles(t *testing.T) {
	t.Helper()
	if m := explorer.Missing(); len(m) > 0 {
		t.Fatalf("this test binary has no explorer files %v: run make explorer-assets (make test does)", m)
	}
}

// TestExplorerIsSelfContained: the page at / and everything it loads come from the
// server itself (so the explorer works offline), under a Content-Security-Policy that
// allows only the server's own origin; production serves none of it.
func TestExplorerIsSelfContained(t *testing.T) {
	t.Parallel()
	needExplorerFiles(t)
	get := func(t *testing.T, url string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}

	res, html := get(t, srv.URL+"/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s: %.300s", res.StatusCode, res.Header.Get("Content-Type"), html)
	}
	// The page's CSP is explorer.CSP plus a nonce for styles, new on every load, that
	// the page hands to its mount script.
	nonce := regexp.MustCompile(`data-style-nonce="([A-Za-z0-9_-]{22})"`).FindStringSubmatch(html)
	if nonce == nil {
		t.Fatalf("the page has no data-style-nonce:\n%s", html)
	}
	if got := res.Header.Get("Content-Security-Policy"); got != explorer.PageCSP(nonce[1]) || !strings.Contains(got, "style-src 'self' 'nonce-"+nonce[1]+"';") {
		t.Fatalf("Content-Security-Policy of / = %q, want %q", got, explorer.PageCSP(nonce[1]))
	}
	if _, again := get(t, srv.URL+"/"); strings.Contains(again, nonce[1]) {
		t.Errorf("two loads of the page got the same style nonce %s", nonce[1])
	}
	for _, directive := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'"} {
		if !strings.Contains(explorer.CSP, directive) {
			t.Errorf("the CSP lacks %q", directive)
		}
	}
	if strings.Contains(explorer.CSP, "unsafe-") || strings.Contains(explorer.CSP, "http") {
		t.Errorf("the CSP allows inline code or another origin: %s", explorer.CSP)
	}
	if regexp.MustCompile(`<script[^>]*>[^<]`).MatchString(html) || strings.Contains(html, " style=") {
		t.Errorf("the page has an inline script or style, which its CSP refuses:\n%s", html)
	}
	var files []string // what the page loads from the server
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		ref := m[1]
		if ref == "data:," { // the empty favicon, which spares a request for /favicon.ico
			continue
		}
		files = append(files, ref)
		if !strings.HasPrefix(ref, explorer.Prefix) {
			t.Errorf("the page references %q, not a path of the server's under %s", ref, explorer.Prefix)
			continue
		}
		res, body := get(t, srv.URL+ref)
		if res.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s = %d, %d bytes", ref, res.StatusCode, len(body))
		}
		if got := res.Header.Get("Content-Security-Policy"); got != explorer.CSP {
			t.Errorf("Content-Security-Policy of %s = %q", ref, got)
		}
		want := "text/javascript"
		if strings.HasSuffix(ref, ".css") {
			want = "text/css"
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("Content-Type of %s = %q, want %s", ref, ct, want)
		}
		// A script that loads another script or stylesheet from elsewhere would
		// break offline (and be refused by the CSP anyway).
		if u := regexp.MustCompile(`https?://(unpkg\.com|cdn\.jsdelivr\.net|esm\.sh|cdnjs\.cloudflare\.com|fonts\.googleapis\.com)`).FindString(body); u != "" {
			t.Errorf("%s mentions %s", ref, u)
		}
	}
	if len(files) != 7 {
		t.Errorf("the page loads %d files, want its 5 scripts and 2 stylesheets:\n%s", len(files), html)
	}
	for _, path := range []string{explorer.Prefix, explorer.Prefix + "README.md", explorer.Prefix + ".pins", explorer.Prefix + "../app.go"} {
		if res, _ := get(t, srv.URL+path); res.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
	}

	// Production: no explorer, no files.
	cfg := srv.Config
	cfg.Env = "production"
	a, err := app.New(app.Options{Config: cfg, DB: srv.DB, Log: slog.New(slog.DiscardHandler), Argon2: apitest.FastArgon2})
	if err != nil {
		t.Fatal(err)
	}
	prod := httptest.NewServer(a.Handler)
	defer prod.Close()
	for _, path := range append(files, "/") {
		if res, _ := get(t, prod.URL+path); res.StatusCode != 404 {
			t.Errorf("production: GET %s = %d, want 404", path, res.StatusCode)
		}
	}
}

// chromium finds Debian's chromium (or a Chrome) for the browser test. Without one the
// test is skipped, loudly; under CI=true it fails, since .ci/run must run it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "NO BROWSER TEST: no chromium on PATH, so the explorer at / was NOT tested in a browser. " +
		"Install it (apt-get install chromium; make test does as root)."
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " CI=true requires it.")
	}
	t.Skip(msg)
	return ""
}

// TestExplorerInBrowser drives headless Chromium, in a window 1,400 px wide, through the
// explorer as a new user would: the page loads (from this server only, breaking no CSP
// rule) with a first tab whose comment lines fit the editor's width, runs
// { __typename }, registers with the first tab's Register, verifies the email with the
// emailed link's token in VerifyEmail, logs in with its Login, pastes the token into
// the headers editor as its comment says, runs `me`, and after a reload still has the
// header. On failure it saves a screenshot and prints its path.
func TestExplorerInBrowser(t *testing.T) {
	// Not parallel: Go runs it before the package's parallel tests start, so Chromium's
	// few seconds of CPU do not slow the tests that measure time (the rate limits).
	bin := chromium(t)
	needExplorerFiles(t)
	email, password := apitest.UniqueEmail("explorer"), "correct horse battery"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.WindowSize(1400, 900))
	if os.Geteuid() == 0 {
		// Chromium refuses to start as root with its sandbox on. The sandbox guards
		// the machine against a renderer compromised by hostile web content; this
		// browser only ever loads our own page from a test server on 127.0.0.1.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	started := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Logf("%s started in %v", bin, time.Since(started).Round(time.Millisecond))

	var mu sync.Mutex
	var requests, logs []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		}
	}); err != nil {
		t.Fatal(err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			line := fmt.Sprintf("%s: %s", m.Type, m.Text)
			if len(line) > 400 {
				line = line[:400] + "…"
			}
			logs = append(logs, line)
			mu.Unlock()
		}
	}()
	defer func() {
		if !t.Failed() {
			return
		}
		mu.Lock()
		t.Logf("browser console:\n%s", strings.Join(logs, "\n"))
		mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
		if err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		// The test's temporary directory, removed when it ends unless go test runs
		// with -artifacts (GOTESTFLAGS='-run TestExplorerInBrowser -artifacts -outputdir /tmp/x').
		path := filepath.Join(t.ArtifactDir(), "explorer.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		t.Logf("screenshot of the page at the failure: %s", path)
	}()

	// run runs one step with a deadline of its own and fails the test with what it was doing.
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := chromedp.Run(sctx, a); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, js string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	// The editors are CodeMirror 5 instances: the element .CodeMirror holds the editor.
	const (
		queryEditor   = `.graphiql-query-editor .CodeMirror`
		headersEditor = `.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror`
		resultPane    = `.result-window .CodeMirror`
	)
	editor := func(sel string) string { return fmt.Sprintf("document.querySelector(%q).CodeMirror", sel) }
	set := func(sel, text string) {
		t.Helper()
		js, _ := json.Marshal(text)
		eval("setting "+sel, fmt.Sprintf("%s.setValue(%s), ''", editor(sel), js))
	}
	// setQuery puts text in the query editor and waits until GraphiQL has taken it
	// in, as the active tab's title (its operation's name) shows: GraphiQL reads the
	// editor a moment after each change, and runs what it last read.
	setQuery := func(text, title string) {
		t.Helper()
		set(queryEditor, text)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		js := `document.querySelector('.graphiql-tab-active .graphiql-tab-button').textContent`
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](fmt.Sprintf("%s === %q", js, title),
			chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("waiting for the tab's title to become %q: %v; it is %q", title, err, eval("reading the tab title", js))
		}
	}
	// execute clears the result pane, runs the query editor's operation (with
	// several, the one named op, picked from the menu the run button opens) and
	// waits for a result that contains want; it returns the result.
	execute := func(op, want string) string {
		t.Helper()
		set(resultPane, "")
		run("clicking run", chromedp.Click(chromedp.CSS(`.graphiql-execute-button`)))
		if op != "" {
			run("picking "+op+" in the run menu", chromedp.Click(chromedp.Search(
				fmt.Sprintf(`//*[@role="menuitem"][normalize-space(.)=%q]`, op))))
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		js := fmt.Sprintf("%s.getValue()", editor(resultPane))
		got, err := chromedp.Run(sctx, chromedp.Poll[string](fmt.Sprintf("%s.includes(%q) && %s", js, want, js),
			chromedp.WithPollingInterval(50*time.Millisecond)))
		if err != nil {
			t.Fatalf("waiting for a result with %q: %v; the result pane has: %s", want, err,
				eval("reading the result", js))
		}
		return got
	}
	// open loads the page and waits for GraphiQL to have mounted its editors.
	open := func() {
		t.Helper()
		run("opening /", chromedp.Navigate(srv.URL+"/"))
		run("waiting for the editor", chromedp.WaitVisible(chromedp.CSS(queryEditor)))
		run("waiting for the headers editor", chromedp.WaitVisible(chromedp.CSS(headersEditor)))
	}

	// Count what the CSP refuses: a script added through the DevTools protocol runs
	// before the page's own, and the CSP does not apply to it.
	run("watching for CSP violations", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			// Kept in session storage: the count covers both loads of the page.
			Source: `window.__cspViolations = JSON.parse(sessionStorage.getItem('cspViolations') || '[]');
				document.addEventListener('securitypolicyviolation', function (e) {
					window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
					sessionStorage.setItem('cspViolations', JSON.stringify(window.__cspViolations));
				});`,
		})
		return err
	}))
	opened := time.Now()
	open()
	t.Logf("explorer mounted in %v", time.Since(opened).Round(time.Millisecond))

	// The default tab teaches how to sign up and sign in, and where development
	// prints the verification link.
	welcome := eval("reading the default tab", editor(queryEditor)+".getValue()")
	for _, want := range []string{"mutation Register", "register(input:", "mutation VerifyEmail", "mutation Login", "login(email:",
		`msg="mail (console driver, not sent)"`, "verify-email?token=", `{"Authorization": "Bearer <accessToken>"}`} {
		if !strings.Contains(welcome, want) {
			t.Fatalf("the default tab lacks %q:\n%s", want, welcome)
		}
	}
	// Its comment lines fit the editor: no sideways scrolling to read them.
	if wide := eval("measuring the comment lines", fmt.Sprintf(`(() => {
		const cm = %s, width = cm.getScrollInfo().clientWidth, wide = [];
		for (let i = 0; i < cm.lineCount(); i++) {
			const text = cm.getLine(i);
			if (!text.startsWith('#')) continue;
			const right = cm.charCoords({line: i, ch: text.length}, 'local').right;
			if (right > width) wide.push('line ' + (i + 1) + ' is ' + Math.round(right) + ' px wide: ' + text);
		}
		return wide.length ? 'the editor is ' + width + ' px wide; ' + wide.join('; ') : '';
	})()`, editor(queryEditor))); wide != "" {
		t.Errorf("in a window 1,400 px wide, comment lines of the first tab overflow the editor: %s", wide)
	}

	setQuery("{ __typename }", "<untitled>")
	if got := execute("", `"__typename": "Query"`); !strings.Contains(got, `"data"`) {
		t.Fatalf("result of { __typename }: %s", got)
	}

	// Sign up, verify and sign in with the default tab's mutations, filled in as its
	// comment says, the token taken from the emailed link.
	fill := strings.NewReplacer(`"Your Name"`, `"Explorer"`, `"you@example.com"`, fmt.Sprintf("%q", email),
		`"your password"`, fmt.Sprintf("%q", password))
	filled := fill.Replace(welcome)
	setQuery(filled, "Register")
	execute("Register", fmt.Sprintf(`"email": %q`, email))
	token := apitest.LinkToken(t, srv.WaitMail(t, email, "Verify"), "verify-email")
	filled = strings.Replace(filled, `"the token from the link"`, fmt.Sprintf("%q", token), 1)
	set(queryEditor, filled)
	execute("VerifyEmail", `"emailVerified": true`)
	var res struct {
		Data struct{ Login struct{ AccessToken string } }
	}
	if err := json.Unmarshal([]byte(execute("Login", `"accessToken"`)), &res); err != nil || res.Data.Login.AccessToken == "" {
		t.Fatalf("the login result has no accessToken (%v)", err)
	}
	set(headersEditor, fmt.Sprintf(`{"Authorization": "Bearer %s"}`, res.Data.Login.AccessToken))
	me := "query Me { me { email } }"
	setQuery(me, "Me")
	execute("", fmt.Sprintf(`"email": %q`, email))

	// The header outlives a reload (shouldPersistHeaders), and still signs the query in.
	// GraphiQL saves its tabs to local storage (graphiql:tabState, in graphiql 4.1.2)
	// half a second after a change: wait until the active tab is saved as it is.
	{
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		js := fmt.Sprintf(`(() => {
			const s = JSON.parse(localStorage.getItem('graphiql:tabState') || '{}');
			const tab = (s.tabs || [])[s.activeTabIndex];
			return !!tab && tab.query === %q && (tab.headers || '').includes(%q);
		})()`, me, res.Data.Login.AccessToken)
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			t.Fatalf("GraphiQL never saved the tab with the token: %v; local storage: %s", err,
				eval("reading local storage", "JSON.stringify(localStorage)"))
		}
	}
	open()
	if h := eval("reading the headers", editor(headersEditor)+".getValue()"); !strings.Contains(h, res.Data.Login.AccessToken) {
		t.Fatalf("after a reload, the headers editor has %q, not the pasted token", h)
	}
	setQuery(me, "Me")
	execute("", fmt.Sprintf(`"email": %q`, email))

	// A subscription runs over the websocket, signed in with the same header: the
	// event of a change made elsewhere (here, over HTTP from the test) shows in
	// the result pane, and so does the next one, live.
	access := res.Data.Login.AccessToken
	var created struct{ CreateOrganization struct{ ID string } }
	apitest.MustOK(t, srv.Post(t, access, `mutation { createOrganization(input: {name: "Explorer live"}) { id } }`, nil)).Decode(t, &created)
	orgID := created.CreateOrganization.ID
	var cur struct{ Organization struct{ EventsCursor string } }
	apitest.MustOK(t, srv.Post(t, access, `query($o: ID!) { organization(orgId: $o) { eventsCursor } }`, map[string]any{"o": orgID})).Decode(t, &cur)
	customer := func(name string) {
		t.Helper()
		apitest.MustOK(t, srv.Post(t, access, `mutation($o: ID!, $n: String!) { createCustomer(orgId: $o, input: {name: $n}) { id } }`,
			map[string]any{"o": orgID, "n": name}))
	}
	customer("Seen in the explorer")
	setQuery(fmt.Sprintf(`subscription Live { organizationEvents(orgId: %q, after: %q) { action subject { ... on Customer { name } } } }`,
		orgID, cur.Organization.EventsCursor), "Live")
	execute("", `"name": "Seen in the explorer"`)
	customer("Seen live")
	{
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		js := fmt.Sprintf("%s.getValue()", editor(resultPane))
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](fmt.Sprintf("%s.includes(%q)", js, `"name": "Seen live"`),
			chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			t.Fatalf("the live event never showed: %v; the result pane has: %s", err, eval("reading the result", js))
		}
	}

	if v := eval("reading CSP violations", "JSON.stringify(window.__cspViolations)"); v != "[]" {
		t.Errorf("the Content-Security-Policy refused: %s", v)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range requests {
		if !strings.HasPrefix(r, srv.URL+"/") && !strings.HasPrefix(r, "data:") {
			t.Errorf("the page requested %s, outside the server's origin %s", r, srv.URL)
		}
	}
	if len(requests) < 7 {
		t.Errorf("saw %d requests, want the page, its 7 files and the GraphQL calls: %v", len(requests), requests)
	}
}
