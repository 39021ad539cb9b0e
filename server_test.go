package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tenantgraph/internal/platform/config"
	"tenantgraph/internal/platform/dbtest"
)

var database *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, &database) }

// TestShutdownFinishesInFlightRequests: on SIGTERM (ctx cancelled) the server
// stops accepting connections but answers the request it is reading, then returns.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	cfg := config.Config{Env: "development", DatabaseURL: database.URL, JWTKeys: []config.JWTKey{{ID: "k1", Secret: []byte(strings.Repeat("s", 32))}},
		AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, MailDriver: "file", MailDir: t.TempDir(), AppBaseURL: "http://x"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), database.DB, ln) }()

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
