// Package explorer serves the GraphQL explorer (GraphiQL) from the binary itself:
// a small page of ours, its mount script, and GraphiQL, React, ReactDOM and the
// graphql-ws client (subscriptions) as fetched
// from the npm registry by `make explorer-assets` (scripts/explorer-assets.sh, pinned
// by version and sha256) into dist/, which is embedded here and ignored by git. The
// page loads nothing from any other origin, so it works offline, and its
// Content-Security-Policy (CSP) allows only the server's own origin.
//
// Development only: the wiring (internal/app) does not mount it in production.
package explorer

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is the path under which the page's scripts and styles are served.
const Prefix = "/explorer/"

// CSP is the Content-Security-Policy of the page and of every file under Prefix:
// scripts, styles, requests (the GraphQL endpoint, its websocket for subscriptions:
// 'self' covers ws: and wss: of the same host) only from the server's own origin,
// no inline script, no frames, no plugins. data: is allowed for images and fonts only
// because graphiql.min.css carries its fonts and a few icons inline as data: URLs
// (part of the same stylesheet: nothing is fetched from elsewhere). GraphiQL 4 edits
// with CodeMirror 5: no workers, no eval.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// PageCSP is the page's CSP: CSP, plus a nonce for the <style> elements GraphiQL's
// menus and dialogs add while they are open (Radix's scroll lock, react-remove-scroll).
// The page hands the nonce to its mount script (data-style-nonce), which gives it to
// them the way that library looks for one (__webpack_nonce__). Styles only: scripts
// stay 'self'.
func PageCSP(nonce string) string {
	return strings.Replace(CSP, "style-src 'self'", "style-src 'self' 'nonce-"+nonce+"'", 1)
}

// Vendored are the files scripts/explorer-assets.sh puts in dist/; the page needs them all.
var Vendored = []string{"graphiql.min.css", "graphiql.min.js", "react.production.min.js", "react-dom.production.min.js", "graphql-ws.min.js"}

//go:embed dist
var dist embed.FS

//go:embed static/explorer.js static/explorer.css
var static embed.FS

//go:embed static/index.html
var pageHTML string

var page = template.Must(template.New("explorer").Parse(pageHTML))

// Missing lists the files of Vendored this binary was built without (none after
// `make explorer-assets`).
func Missing() []string {
	var missing []string
	for _, name := range Vendored {
		if _, err := fs.Stat(dist, "dist/"+name); err != nil {
			missing = append(missing, name)
		}
	}
	return missing
}

// Explorer serves the page and its files.
type Explorer struct {
	title, endpoint string
	missing         []string
	files           http.Handler
}

// New builds the explorer of the GraphQL endpoint at the path endpoint (e.g. "/query").
func New(title, endpoint string) (*Explorer, error) {
	if _, err := render(title, endpoint, "n"); err != nil {
		return nil, err
	}
	distFS, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	staticFS, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	return &Explorer{title: title, endpoint: endpoint, missing: Missing(), files: http.StripPrefix(Prefix, fileServer(staticFS, distFS))}, nil
}

func render(title, endpoint, nonce string) ([]byte, error) {
	var b bytes.Buffer
	err := page.Execute(&b, struct{ Title, Endpoint, Prefix, StyleNonce string }{title, endpoint, Prefix, nonce})
	return b.Bytes(), err
}

// Page serves the explorer's HTML page; when the binary was built without the
// fetched files, a 503 that says how to get them.
func (e *Explorer) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(e.missing) > 0 {
			w.Header().Set("Content-Security-Policy", CSP)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("The explorer's files (" + strings.Join(e.missing, ", ") + ") are not in this binary: " + //nolint:errcheck
				"run make explorer-assets, then build again (make run, make build and make test do both).\n" +
				"The GraphQL endpoint works without them.\n"))
			return
		}
		nonce := make([]byte, 16)
		rand.Read(nonce) //nolint:errcheck // crypto/rand never fails
		// URL-safe and unpadded: html/template would escape a + or = in the attribute.
		n := base64.RawURLEncoding.EncodeToString(nonce)
		body, err := render(e.title, e.endpoint, n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Security-Policy", PageCSP(n))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store") // a nonce is for one page load
		w.Write(body)                               //nolint:errcheck
	})
}

// Files serves the page's scripts and styles under Prefix.
func (e *Explorer) Files() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", CSP)
		// Revalidate: a rebuilt binary may carry other versions under the same names.
		w.Header().Set("Cache-Control", "no-cache")
		e.files.ServeHTTP(w, r)
	})
}

// fileServer serves the files of our own (static) and the fetched ones (dist), by
// name only: no directory listings, no README.
func fileServer(static, dist fs.FS) http.Handler {
	ours := http.FileServerFS(static)
	theirs := http.FileServerFS(dist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path
		switch {
		case name == "explorer.js" || name == "explorer.css":
			ours.ServeHTTP(w, r)
		case isVendored(name) || strings.HasPrefix(name, "LICENSE."):
			if _, err := fs.Stat(dist, name); err != nil {
				http.Error(w, "explorer file missing from this binary: run make explorer-assets", http.StatusNotFound)
				return
			}
			theirs.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func isVendored(name string) bool {
	for _, v := range Vendored {
		if name == v {
			return true
		}
	}
	return false
}
