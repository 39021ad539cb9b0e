package mail

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/platform/db"
	"tenantgraph/internal/platform/dbtest"
	"tenantgraph/internal/platform/notify"
)

var database *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, &database) }

// reset empties the outbox: every test's worker processes all due rows.
func reset(t *testing.T) {
	t.Helper()
	if _, err := database.DB.Exec(`TRUNCATE mail_outbox RESTART IDENTITY`); err != nil {
		t.Fatal(err)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func enqueueCommitted(t *testing.T, msgs ...Message) {
	t.Helper()
	err := db.WithTx(context.Background(), database.DB, func(tx *sqlx.Tx) error {
		for _, m := range msgs {
			if err := Enqueue(context.Background(), tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type outboxState struct {
	Status        string     `db:"status"`
	Attempts      int        `db:"attempts"`
	LastError     *string    `db:"last_error"`
	SentAt        *time.Time `db:"sent_at"`
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	DBNow         time.Time  `db:"db_now"`
}

func state(t *testing.T, id int64) outboxState {
	t.Helper()
	var s outboxState
	if err := database.DB.Get(&s, `SELECT status, attempts, last_error, sent_at, next_attempt_at, now() AS db_now
		FROM mail_outbox WHERE id = $1`, id); err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	return s
}

func countRows(t *testing.T, where string) int {
	t.Helper()
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM mail_outbox WHERE `+where); err != nil {
		t.Fatal(err)
	}
	return n
}

// fakeSender records what it is given; fn, when set, decides the outcome.
type fakeSender struct {
	mu   sync.Mutex
	msgs []Message
	fn   func(Message) error
}

func (f *fakeSender) Send(_ context.Context, m Message) error {
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	fn := f.fn
	f.mu.Unlock()
	if fn != nil {
		return fn(m)
	}
	return nil
}

func (f *fakeSender) sent() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.msgs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEnqueueRolledBackSendsNothing(t *testing.T) {
	reset(t)
	errBoom := errors.New("boom")
	err := db.WithTx(context.Background(), database.DB, func(tx *sqlx.Tx) error {
		if err := Enqueue(context.Background(), tx, Message{To: "rollback@example.com", Subject: "s", Body: "b"}); err != nil {
			return err
		}
		// Inside the transaction the row exists...
		var n int
		if err := tx.Get(&n, `SELECT count(*) FROM mail_outbox`); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("rows inside the transaction = %d, want 1", n)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("WithTx = %v", err)
	}
	// ...and after the rollback it is gone.
	if n := countRows(t, "true"); n != 0 {
		t.Fatalf("rows after rollback = %d, want 0", n)
	}
	s := &fakeSender{}
	sent, err := NewWorker(database.DB, s, quietLog(), WorkerOptions{}).RunOnce(context.Background())
	if err != nil || sent != 0 || len(s.sent()) != 0 {
		t.Fatalf("RunOnce = %d, %v; sender got %d messages; want nothing sent", sent, err, len(s.sent()))
	}
}

func TestEnqueueRejectsInvalidMessages(t *testing.T) {
	reset(t)
	for _, m := range []Message{
		{To: "a@example.com\r\nBcc: victim@example.com", Subject: "s", Body: "b"},
		{To: "a@example.com\nBcc: victim@example.com", Subject: "s", Body: "b"},
		{To: "a@example.com", Subject: "hi\r\nBcc: victim@example.com", Body: "b"},
		{To: "a@example.com", Subject: "hi\rthere", Body: "b"},
		{To: "", Subject: "s", Body: "b"},
		{To: "not an address", Subject: "s", Body: "b"},
		{To: "a@example.com, b@example.com", Subject: "s", Body: "b"},
		{To: "a@example.com", Subject: "s", Body: "bad \xff utf-8"},
		{To: "a@example.com", Subject: "s", Body: "nul \x00 byte"},
	} {
		err := Enqueue(context.Background(), database.DB, m)
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Enqueue(%q) = %v, want ErrInvalidMessage", m, err)
		}
	}
	if n := countRows(t, "true"); n != 0 {
		t.Fatalf("%d rows inserted, want 0", n)
	}
	// A body may hold line breaks, and the recipient a display name.
	if err := Enqueue(context.Background(), database.DB, Message{To: "Alice <alice@example.com>", Subject: "ok", Body: "line 1\r\nline 2\n"}); err != nil {
		t.Fatal(err)
	}
}

func TestCommittedMessageIsDeliveredThroughFileDriver(t *testing.T) {
	reset(t)
	dir := filepath.Join(t.TempDir(), "outbox", "nested") // created by NewSender
	sender, err := NewSender(Config{Driver: "file", Dir: dir, From: "tenantgraph <no-reply@tenantgraph.test>"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	token := strings.Repeat("AbC123_-", 16) // 128 characters
	link := "https://app.tenantgraph.test/verify-email?tenant=acme-corporation-international&next=%2Fsettings%2Fsecurity%2Fpassword&token=" + token
	want := Message{
		To:      "new.user@example.com",
		Subject: "Vérifiez votre adresse e-mail — ünïcødé 🚀 and a long tail to force several encoded words",
		Body:    "Hello,\n\nConfirm your address by opening this link:\n" + link + "\n\n.a line starting with a dot\nThanks\n",
	}
	enqueueCommitted(t, want)

	w := NewWorker(database.DB, sender, quietLog(), WorkerOptions{})
	sent, err := w.RunOnce(context.Background())
	if err != nil || sent != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1, nil", sent, err)
	}
	st := state(t, 1)
	if st.Status != "sent" || st.Attempts != 1 || st.SentAt == nil {
		t.Fatalf("row after send = %+v, want sent, 1 attempt, sent_at set", st)
	}
	if sent, err := w.RunOnce(context.Background()); err != nil || sent != 0 {
		t.Fatalf("second RunOnce = %d, %v; want nothing more to send", sent, err)
	}
	var body string
	if err := database.DB.Get(&body, `SELECT body FROM mail_outbox WHERE id = 1`); err != nil || strings.Contains(body, token) {
		t.Fatalf("the sent row still holds the link's token (%v): %q", err, body)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !regexp.MustCompile(`^\d{19}-[0-9a-f]+\.eml$`).MatchString(entries[0].Name()) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files in %s = %v, want one <unixnano>-<random>.eml (and no temporary file)", dir, names)
	}
	path := filepath.Join(dir, entries[0].Name())
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, found := strings.Cut(string(raw), "\r\n\r\n")
	if !found {
		t.Fatalf("no blank line after the header:\n%s", raw)
	}
	head += "\r\n"
	for _, re := range []string{
		`(?m)^From: "tenantgraph" <no-reply@tenantgraph\.test>\r$`,
		`(?m)^To: <new\.user@example\.com>\r$`,
		`(?m)^Subject: =\?utf-8\?q\?V=C3=A9rifiez_`,
		`(?m)^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [-+]\d{4}\r$`,
		`(?m)^Message-ID: <[^@\s]+@tenantgraph\.test>\r$`,
		`(?m)^MIME-Version: 1\.0\r$`,
		`(?m)^Content-Type: text/plain; charset=utf-8\r$`,
		`(?m)^Content-Transfer-Encoding: 8bit\r$`,
	} {
		if !regexp.MustCompile(re).MatchString(head) {
			t.Errorf("header %s not found in:\n%s", re, head)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(head, "\r\n"), "\r\n") {
		if len(line) > 998 || !isASCII(line) {
			t.Errorf("header line not 7-bit or too long: %q", line)
		}
	}
	// The link survives verbatim in the raw file, as another test would extract it.
	m := regexp.MustCompile(`https://\S+[?&]token=([A-Za-z0-9_-]+)`).FindStringSubmatch(string(raw))
	if m == nil || m[0] != link || m[1] != token {
		t.Fatalf("link in raw file = %q, want %q", m, link)
	}

	got, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ParseFile = %#v\nwant          %#v", got, want)
	}
	all, err := ReadDir(dir)
	if err != nil || len(all) != 1 || all[0] != want {
		t.Fatalf("ReadDir = %#v, %v", all, err)
	}
	if none, err := ReadDir(filepath.Join(dir, "missing")); err != nil || len(none) != 0 {
		t.Fatalf("ReadDir(missing) = %v, %v; want empty, nil", none, err)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > '~' {
			return false
		}
	}
	return true
}

func TestRenderRoundTrip(t *testing.T) {
	from, err := parseFrom("Équipe tenantgraph <no-reply@tenantgraph.test>")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{
		{To: "a@example.com", Subject: "", Body: ""},
		{To: "a@example.com", Subject: "plain ASCII subject", Body: "no trailing newline"},
		{To: "a@example.com", Subject: "looks =?utf-8?q?encoded?= but is not", Body: "x\n"},
		{To: "a@example.com", Subject: strings.Repeat("long ascii ", 120), Body: "x\n"},
		{To: "a@example.com", Subject: strings.Repeat("日本語のテキスト", 30), Body: "x\n"},
		{To: "a@example.com", Subject: "tab\tand_underscore ? = question", Body: "x\n"},
		{To: "a@example.com", Subject: "s", Body: "crlf\r\nand lone cr\rend\n"},
	} {
		data, err := render(from, m, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, err := parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%q: %v\n%s", m.Subject, err, data)
		}
		m.Body = normalizeNewlines(m.Body)
		if got != m {
			t.Errorf("round trip = %#v\nwant         %#v\nraw:\n%s", got, m, data)
		}
		if !strings.Contains(string(data), "From: =?utf-8?q?=C3=89quipe_tenantgraph?= <no-reply@tenantgraph.test>\r\n") {
			t.Errorf("From header not RFC 2047 encoded:\n%s", data)
		}
	}
	// A display name is dropped by ParseFile: To is the bare address.
	data, err := render(from, Message{To: "Zoë <zoe@example.com>", Subject: "s", Body: "b"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := parse(bytes.NewReader(data)); err != nil || got.To != "zoe@example.com" {
		t.Fatalf("parse = %#v, %v; want To zoe@example.com", got, err)
	}
	// render refuses header injection even when a Sender is called directly.
	if _, err := render(from, Message{To: "a@example.com", Subject: "x\nBcc: b@example.com"}, time.Now()); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("render with LF in subject = %v, want ErrInvalidMessage", err)
	}
}

func TestFailingSenderRetriesWithBackoffThenFails(t *testing.T) {
	reset(t)
	longErr := strings.Repeat("é", 3000)
	calls := 0
	s := &fakeSender{fn: func(Message) error {
		calls++
		return fmt.Errorf("550 mailbox unavailable %d %s", calls, longErr)
	}}

	// With a real backoff, a failure pushes next_attempt_at forward and the row is not due again.
	enqueueCommitted(t, Message{To: "retry@example.com", Subject: "s", Body: "b"})
	w := NewWorker(database.DB, s, quietLog(), WorkerOptions{Backoff: func(attempt int) time.Duration {
		if attempt != 1 {
			t.Errorf("Backoff(%d), want attempt 1", attempt)
		}
		return time.Hour
	}})
	if sent, err := w.RunOnce(context.Background()); err != nil || sent != 0 {
		t.Fatalf("RunOnce = %d, %v; want 0, nil", sent, err)
	}
	st := state(t, 1)
	if st.Status != "pending" || st.Attempts != 1 || st.SentAt != nil {
		t.Fatalf("after one failure: %+v", st)
	}
	if st.LastError == nil || !strings.HasPrefix(*st.LastError, "550 mailbox unavailable 1 éé") || len(*st.LastError) > 1010 {
		t.Fatalf("last_error = %v, want the error text truncated to about 1000 bytes", st.LastError)
	}
	if d := st.NextAttemptAt.Sub(st.DBNow); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("next_attempt_at is %v from now, want about 1h", d)
	}
	if _, err := w.RunOnce(context.Background()); err != nil || len(s.sent()) != 1 {
		t.Fatalf("a backed-off message was retried early (sends = %d, err = %v)", len(s.sent()), err)
	}

	// With no backoff, it is retried until MaxAttempts, then kept as failed.
	reset(t)
	s = &fakeSender{fn: func(m Message) error { return fmt.Errorf("refused %s", m.To) }}
	enqueueCommitted(t, Message{To: "doomed@example.com", Subject: "s", Body: "b"})
	w = NewWorker(database.DB, s, quietLog(), WorkerOptions{MaxAttempts: 3, Backoff: func(int) time.Duration { return 0 }})
	for i := 1; i <= 3; i++ {
		if sent, err := w.RunOnce(context.Background()); err != nil || sent != 0 {
			t.Fatalf("RunOnce #%d = %d, %v", i, sent, err)
		}
		st := state(t, 1)
		wantStatus := "pending"
		if i == 3 {
			wantStatus = "failed"
		}
		if st.Status != wantStatus || st.Attempts != i || st.LastError == nil || *st.LastError != "refused doomed@example.com" {
			t.Fatalf("after attempt %d: %+v, want status %s", i, st, wantStatus)
		}
	}
	if _, err := w.RunOnce(context.Background()); err != nil || len(s.sent()) != 3 {
		t.Fatalf("sends = %d (err %v), want exactly MaxAttempts = 3", len(s.sent()), err)
	}
	if n := countRows(t, "status = 'failed'"); n != 1 {
		t.Fatalf("failed rows = %d, want the row kept", n)
	}

	// A message that can never be valid (row written by hand) fails at once.
	reset(t)
	if _, err := database.DB.Exec(`INSERT INTO mail_outbox (recipient, subject, body) VALUES ('x@example.com', E'a\nBcc: y@example.com', 'b')`); err != nil {
		t.Fatal(err)
	}
	fs, err := NewSender(Config{Driver: "file", Dir: t.TempDir()}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewWorker(database.DB, fs, quietLog(), WorkerOptions{}).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := state(t, 1); st.Status != "failed" || st.Attempts != 1 {
		t.Fatalf("invalid message: %+v, want failed after 1 attempt", st)
	}
}

func TestConcurrentWorkersSendEachMessageOnce(t *testing.T) {
	reset(t)
	const total = 50
	var msgs []Message
	for i := range total {
		msgs = append(msgs, Message{To: fmt.Sprintf("user%d@example.com", i), Subject: "hello", Body: "b"})
	}
	enqueueCommitted(t, msgs...)

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		perW   [2]int
	)
	count := func(w int, m Message) {
		mu.Lock()
		counts[m.To]++
		perW[w]++
		mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	aHolding := make(chan struct{}) // worker A is in a send, holding its batch's row locks
	bSent := make(chan struct{})    // worker B has sent a message meanwhile
	var aOnce, bOnce sync.Once
	overlapped := true
	a := &fakeSender{fn: func(m Message) error {
		count(0, m)
		aOnce.Do(func() {
			close(aHolding)
			select {
			case <-bSent:
			case <-time.After(10 * time.Second):
				overlapped = false // B could not work while A held its rows
			}
		})
		return nil
	}}
	b := &fakeSender{fn: func(m Message) error {
		count(1, m)
		bOnce.Do(func() { close(bSent) })
		return nil
	}}
	opt := WorkerOptions{BatchSize: 5}
	workers := []*Worker{NewWorker(database.DB, a, quietLog(), opt), NewWorker(database.DB, b, quietLog(), opt)}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	run := func(w *Worker) {
		defer wg.Done()
		for {
			sent, err := w.RunOnce(context.Background())
			if err != nil {
				errs <- err
				return
			}
			if sent == 0 {
				return
			}
		}
	}
	wg.Add(2)
	go run(workers[0])
	select {
	case <-aHolding:
	case <-time.After(10 * time.Second):
		t.Fatal("worker A never sent")
	}
	go run(workers[1])
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !overlapped {
		t.Fatal("worker B sent nothing while worker A held locked rows: rows are not skipped")
	}
	// A worker stops when it finds nothing due, which may happen while the other
	// still holds rows: finish what is left, if anything.
	for {
		sent, err := workers[0].RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if sent == 0 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(counts) != total {
		t.Errorf("%d distinct messages sent, want %d", len(counts), total)
	}
	for to, n := range counts {
		if n != 1 {
			t.Errorf("%s sent %d times", to, n)
		}
	}
	if n := countRows(t, "status = 'sent' AND attempts = 1"); n != total {
		t.Errorf("%d rows sent once, want %d", n, total)
	}
	t.Logf("worker A sent %d, worker B sent %d", perW[0], perW[1])
}

// smtpSession is what the fake SMTP server received on one connection.
type smtpSession struct {
	Commands []string
	Auth     string // decoded AUTH PLAIN response
	From     string
	To       []string
	Data     string
}

type fakeSMTP struct {
	requireAuth bool
	rejectRcpt  bool
	sessions    chan smtpSession
}

// startFakeSMTP serves a minimal ESMTP dialogue (no STARTTLS) on 127.0.0.1.
func startFakeSMTP(t *testing.T, srv *fakeSMTP) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.sessions = make(chan smtpSession, 10)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
				srv.sessions <- srv.serve(textproto.NewConn(c))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func (srv *fakeSMTP) serve(c *textproto.Conn) (s smtpSession) {
	reply := func(format string, args ...any) { c.PrintfLine(format, args...) } //nolint:errcheck
	reply("220 fake.test ESMTP ready")
	authed := false
	for {
		line, err := c.ReadLine()
		if err != nil {
			return s
		}
		s.Commands = append(s.Commands, line)
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply("250-fake.test greets %s", arg)
			reply("250-8BITMIME")
			if srv.requireAuth {
				reply("250-AUTH PLAIN")
			}
			reply("250 SIZE 1000000")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			dec, err := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || err != nil {
				reply("504 unsupported")
				continue
			}
			s.Auth = string(dec)
			authed = true
			reply("235 ok")
		case "MAIL":
			if srv.requireAuth && !authed {
				reply("530 authentication required")
				continue
			}
			s.From = arg
			reply("250 ok")
		case "RCPT":
			if srv.rejectRcpt {
				reply("550 no such user")
				continue
			}
			s.To = append(s.To, arg)
			reply("250 ok")
		case "DATA":
			reply("354 go ahead")
			data, err := c.ReadDotBytes() // undoes dot-stuffing, turns CRLF into LF
			if err != nil {
				return s
			}
			s.Data = string(data)
			reply("250 queued")
		case "QUIT":
			reply("221 bye")
			return s
		default:
			reply("502 unknown command")
		}
	}
}

func TestSMTPDriver(t *testing.T) {
	srv := &fakeSMTP{requireAuth: true}
	port := startFakeSMTP(t, srv)
	sender, err := NewSender(Config{
		Driver: "smtp", SMTPHost: "127.0.0.1", SMTPPort: port,
		SMTPUsername: "mailer", SMTPPassword: "s3cret",
		From: "tenantgraph <no-reply@tenantgraph.test>",
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	link := "https://app.tenantgraph.test/reset-password?token=" + strings.Repeat("x9Y_", 40)
	want := Message{
		To:      "Bob <bob@example.com>",
		Subject: "Réinitialisation du mot de passe",
		Body:    "Reset it here:\n" + link + "\n.\n..two dots\nbye\n",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sender.Send(ctx, want); err != nil {
		t.Fatal(err)
	}
	s := <-srv.sessions
	if s.Auth != "\x00mailer\x00s3cret" {
		t.Errorf("AUTH PLAIN = %q", s.Auth)
	}
	if s.From != "FROM:<no-reply@tenantgraph.test> BODY=8BITMIME" {
		t.Errorf("MAIL %s", s.From)
	}
	if len(s.To) != 1 || s.To[0] != "TO:<bob@example.com>" {
		t.Errorf("RCPT %v", s.To)
	}
	if last := s.Commands[len(s.Commands)-1]; last != "QUIT" {
		t.Errorf("last command %q, want QUIT", last)
	}
	for _, h := range []string{
		"From: \"tenantgraph\" <no-reply@tenantgraph.test>\n",
		"To: \"Bob\" <bob@example.com>\n",
		"Subject: =?utf-8?q?R=C3=A9initialisation_du_mot_de_passe?=\n",
		"MIME-Version: 1.0\n",
		"Content-Type: text/plain; charset=utf-8\n",
		"Content-Transfer-Encoding: 8bit\n",
		"\n" + link + "\n",
	} {
		if !strings.Contains(s.Data, h) {
			t.Errorf("DATA lacks %q:\n%s", h, s.Data)
		}
	}
	got, err := parse(strings.NewReader(s.Data))
	if err != nil {
		t.Fatal(err)
	}
	if got.To != "bob@example.com" || got.Subject != want.Subject || got.Body != want.Body {
		t.Errorf("received %#v\nwant %#v", got, want)
	}

	// A refusal by the server is an error.
	srv2 := &fakeSMTP{rejectRcpt: true}
	port2 := startFakeSMTP(t, srv2)
	sender2, err := NewSender(Config{Driver: "smtp", SMTPHost: "127.0.0.1", SMTPPort: port2, From: "a@tenantgraph.test"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := sender2.Send(ctx, Message{To: "nobody@example.com", Subject: "s", Body: "b"}); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("Send to a refused recipient = %v, want the 550 error", err)
	}
	// So is a server that does not offer AUTH when credentials are configured.
	sender3, err := NewSender(Config{Driver: "smtp", SMTPHost: "127.0.0.1", SMTPPort: port2, From: "a@tenantgraph.test", SMTPUsername: "u"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := sender3.Send(ctx, Message{To: "nobody@example.com", Subject: "s", Body: "b"}); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("Send with credentials to a server without AUTH = %v, want an error", err)
	}
}

func TestSMTPDriverHonoursContext(t *testing.T) {
	// A server that accepts the connection and never speaks.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c) //nolint:errcheck
	}()
	sender, err := NewSender(Config{Driver: "smtp", SMTPHost: "127.0.0.1", SMTPPort: ln.Addr().(*net.TCPAddr).Port, From: "a@tenantgraph.test"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = sender.Send(ctx, Message{To: "b@example.com", Subject: "s", Body: "b"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send to a silent server = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Send took %v despite its 300ms deadline", d)
	}
}

func TestRunSendsAndStopsWhenCancelled(t *testing.T) {
	reset(t)
	enqueueCommitted(t, Message{To: "run@example.com", Subject: "s", Body: "b"})
	s := &fakeSender{}
	w := NewWorker(database.DB, s, quietLog(), WorkerOptions{PollInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	waitFor(t, 10*time.Second, "the pending message to be sent at start", func() bool { return len(s.sent()) == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if n := countRows(t, "status = 'sent'"); n != 1 {
		t.Fatalf("sent rows = %d, want 1", n)
	}
}

func TestRunFinishesTheSendInProgressWhenCancelled(t *testing.T) {
	reset(t)
	enqueueCommitted(t,
		Message{To: "first@example.com", Subject: "s", Body: "b"},
		Message{To: "second@example.com", Subject: "s", Body: "b"},
		Message{To: "third@example.com", Subject: "s", Body: "b"},
	)
	inSend := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	s := &fakeSender{fn: func(Message) error {
		once.Do(func() { close(inSend); <-release })
		return nil
	}}
	w := NewWorker(database.DB, s, quietLog(), WorkerOptions{PollInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	<-inSend
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a send was in progress")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the send in progress")
	}
	// The send that was under way is recorded (it must not go out again); the rest waits.
	if st := state(t, 1); st.Status != "sent" || st.Attempts != 1 {
		t.Fatalf("message in flight at cancellation: %+v, want sent", st)
	}
	if n := countRows(t, "status = 'pending' AND attempts = 0"); n != 2 {
		t.Fatalf("untouched pending rows = %d, want 2", n)
	}
	if len(s.sent()) != 1 {
		t.Fatalf("sender called %d times, want 1", len(s.sent()))
	}
}

func TestNotifyWakesWorker(t *testing.T) {
	reset(t)
	s := &fakeSender{}
	hub := notify.New(database.DirectURL, database.DB, quietLog())
	w := NewWorker(database.DB, s, quietLog(), WorkerOptions{PollInterval: time.Minute, Notes: hub.Subscribe(NotifyChannel)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { w.Run(ctx); done <- struct{}{} }()
	go func() { hub.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	select {
	case <-hub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the hub never started listening")
	}
	// Let the start-up and post-LISTEN catch-up batches go by: from here on, only
	// a notification (or the one-minute poll) can make the worker look again.
	time.Sleep(500 * time.Millisecond)
	enqueueCommitted(t, Message{To: "notified@example.com", Subject: "s", Body: "b"})
	waitFor(t, 10*time.Second, "the notified message to be sent", func() bool { return len(s.sent()) == 1 })
	if got := s.sent()[0].To; got != "notified@example.com" {
		t.Fatalf("sent to %q", got)
	}
}

func TestNewSender(t *testing.T) {
	for _, cfg := range []Config{
		{Driver: "carrier-pigeon"},
		{Driver: ""},
		{Driver: "file"},                                         // no Dir
		{Driver: "smtp", From: "a@b.test"},                       // no host
		{Driver: "smtp", SMTPHost: "localhost"},                  // no From
		{Driver: "file", Dir: t.TempDir(), From: "not an email"}, // bad From
	} {
		if s, err := NewSender(cfg, quietLog()); err == nil {
			t.Errorf("NewSender(%+v) = %T, want an error", cfg, s)
		}
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s, err := NewSender(Config{Driver: "Console"}, log)
	if err != nil {
		t.Fatal(err)
	}
	link := "http://localhost:8080/verify?token=abc-123_XYZ"
	if err := s.Send(context.Background(), Message{To: "dev@example.com", Subject: "Verify", Body: "Open " + link + "\nbye"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"level=INFO", "to=dev@example.com", "subject=Verify", `body="Open ` + link + `\nbye"`} {
		if !strings.Contains(out, want) {
			t.Errorf("console log lacks %s:\n%s", want, out)
		}
	}
	if err := s.Send(context.Background(), Message{To: "dev@example.com", Subject: "a\nb"}); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("console Send with LF in subject = %v", err)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt, nominal := range map[int]time.Duration{
		1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 10: 2560 * time.Second,
		11: time.Hour, 50: time.Hour, 1000: time.Hour,
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := DefaultBackoff(attempt)
			if d < nominal/2 || d > nominal {
				t.Fatalf("DefaultBackoff(%d) = %v, want within [%v, %v]", attempt, d, nominal/2, nominal)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("DefaultBackoff(%d) has no jitter", attempt)
		}
	}
}

func TestTruncateError(t *testing.T) {
	s := truncateError(strings.Repeat("€", 500)+"\x00\xff", 1000)
	if len(s) > 1000+len("…") || !strings.HasSuffix(s, "…") || strings.ContainsRune(s, 0) {
		t.Fatalf("truncateError gave %d bytes: %q", len(s), s)
	}
	if got := truncateError("short \x00\xff", 1000); got != "short \uFFFD" {
		t.Fatalf("truncateError = %q", got)
	}
}

// TestRecordingASendOutlastsTheStatementTimeout: on a pool whose statement
// timeout is 100ms, the worker's recording of a send already made waits as
// long as it must (here for another session's lock on the outbox): cut, it
// would roll the batch back and the message would go out again.
func TestRecordingASendOutlastsTheStatementTimeout(t *testing.T) {
	reset(t)
	ctx := context.Background()
	const timeout = 100 * time.Millisecond
	p, err := db.Open(ctx, database.DirectURL, db.Options{StatementTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	enqueueCommitted(t, Message{To: "slow@example.com", Subject: "s", Body: "b"})
	holder, err := database.DB.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback() //nolint:errcheck
	s := &fakeSender{fn: func(Message) error {
		// Once sent, the outbox is locked against the worker's UPDATE.
		_, err := holder.Exec(`LOCK TABLE mail_outbox IN SHARE MODE`)
		return err
	}}
	type result struct {
		sent int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		n, err := NewWorker(p, s, quietLog(), WorkerOptions{}).RunOnce(ctx)
		done <- result{n, err}
	}()
	waitFor(t, 20*time.Second, "the worker's UPDATE waiting past three statement timeouts", func() bool {
		var waiting bool
		if err := database.DB.Get(&waiting, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE query LIKE '%UPDATE mail_outbox%' AND wait_event_type = 'Lock'
			AND now() - query_start > $1 * interval '1 ms')`, 3*timeout.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		return waiting
	})
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.sent != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1 sent", r.sent, r.err)
	}
	if st := state(t, 1); st.Status != "sent" || st.Attempts != 1 || len(s.sent()) != 1 {
		t.Fatalf("after the wait: %+v, %d sends; want sent once", st, len(s.sent()))
	}
}
