package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// render formats m as an RFC 5322 message with CRLF line endings: From, To,
// Subject (RFC 2047 encoded when needed), Date, Message-ID, MIME-Version and a
// text/plain; charset=utf-8 body sent as 8bit, i.e. verbatim, so links stay intact.
func render(from *mail.Address, m Message, now time.Time) ([]byte, error) {
	to, err := m.recipient()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("From", from.String())
	header("To", to.String())
	header("Subject", encodeHeaderText(m.Subject, len("Subject: ")))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(from, now))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	// The body is kept as is, only its line endings become CRLF. No line break is
	// added at the end so that ParseFile gives back exactly the body that was sent.
	b.WriteString(strings.ReplaceAll(normalizeNewlines(m.Body), "\n", "\r\n"))
	return b.Bytes(), nil
}

// normalizeNewlines turns CRLF and lone CR into LF.
func normalizeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

func messageID(from *mail.Address, now time.Time) string {
	domain := "localhost"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && at < len(from.Address)-1 {
		domain = from.Address[at+1:]
	}
	return fmt.Sprintf("<%d.%s@%s>", now.UnixNano(), randomHex(8), domain)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// encodeHeaderText returns s unchanged when it is plain printable ASCII that fits
// on a header line, and otherwise as RFC 2047 Q-encoded words (UTF-8) folded onto
// continuation lines. Text containing "=?" is encoded too so a reader does not
// mistake it for an encoded word.
func encodeHeaderText(s string, prefixLen int) string {
	needs := strings.Contains(s, "=?") || prefixLen+len(s) > 998
	for i := 0; i < len(s) && !needs; i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c > '~' {
			needs = true
		}
	}
	if !needs {
		return s
	}
	const (
		prefix     = "=?utf-8?q?"
		suffix     = "?="
		maxPayload = 75 - len(prefix) - len(suffix)
	)
	var words []string
	var cur strings.Builder
	for _, r := range s {
		enc := qEncodeRune(r)
		if cur.Len()+len(enc) > maxPayload {
			words = append(words, prefix+cur.String()+suffix)
			cur.Reset()
		}
		cur.WriteString(enc)
	}
	if cur.Len() > 0 {
		words = append(words, prefix+cur.String()+suffix)
	}
	return strings.Join(words, "\r\n ")
}

// qEncodeRune encodes r for the "Q" encoding in a header phrase (RFC 2047 section 5 (3)).
func qEncodeRune(r rune) string {
	switch {
	case r == ' ':
		return "_"
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
		r == '!', r == '*', r == '+', r == '-', r == '/':
		return string(r)
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	var sb strings.Builder
	for _, c := range buf[:n] {
		fmt.Fprintf(&sb, "=%02X", c)
	}
	return sb.String()
}

// ParseFile reads back an .eml file written by the file driver (or any simple
// text/plain RFC 5322 message). The returned To is the bare recipient address
// ("alice@example.com", without display name), Subject is decoded from RFC 2047,
// and Body has LF line endings.
func ParseFile(path string) (Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return Message{}, err
	}
	defer f.Close()
	return parse(f)
}

func parse(r io.Reader) (Message, error) {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return Message{}, fmt.Errorf("parse mail: %w", err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil {
		return Message{}, fmt.Errorf("parse mail: To: %w", err)
	}
	if len(to) != 1 {
		return Message{}, fmt.Errorf("parse mail: %d recipients, want 1", len(to))
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, fmt.Errorf("parse mail: Subject: %w", err)
	}
	if cte := strings.ToLower(strings.TrimSpace(msg.Header.Get("Content-Transfer-Encoding"))); cte != "" && cte != "8bit" && cte != "7bit" {
		return Message{}, fmt.Errorf("parse mail: unsupported Content-Transfer-Encoding %q", cte)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return Message{}, fmt.Errorf("parse mail: body: %w", err)
	}
	b := normalizeNewlines(string(body))
	return Message{To: to[0].Address, Subject: subject, Body: b}, nil
}

// ReadDir parses every .eml file in dir, oldest first (file names start with the
// time they were written). A missing dir yields no messages and no error.
func ReadDir(dir string) ([]Message, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".eml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	msgs := make([]Message, 0, len(names))
	for _, n := range names {
		m, err := ParseFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}
