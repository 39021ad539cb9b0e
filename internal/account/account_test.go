package account_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
)

const (
	verifyMut = `mutation($t: String!) { verifyEmail(token: $t) { id emailVerified } }`
	resendMut = `mutation { resendVerificationEmail }`
)

func getMe(t *testing.T, access string) MeData {
	t.Helper()
	var m MeData
	MustOK(t, srv.Post(t, access, MeQuery, nil)).Decode(t, &m)
	return m
}

func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	email := UniqueEmail("Life")
	r := MustOK(t, srv.Post(t, "", `mutation($in: RegisterInput!) { register(input: $in) { accessToken accessTokenExpiresAt refreshToken user { id email name emailVerified } } }`,
		map[string]any{"in": map[string]any{"email": "  " + strings.ToUpper(email) + " ", "password": "s3cret-pass", "name": "  Ada Lovelace "}}))
	var reg struct {
		Register struct {
			AccessToken          string
			AccessTokenExpiresAt time.Time
			RefreshToken         string
			User                 struct {
				ID            uuid.UUID
				Email, Name   string
				EmailVerified bool
			}
		}
	}
	r.Decode(t, &reg)
	u := reg.Register.User
	if u.Email != strings.ToLower(email) || u.Name != "Ada Lovelace" || u.EmailVerified {
		t.Fatalf("registered user = %+v", u)
	}
	if d := time.Until(reg.Register.AccessTokenExpiresAt); d < 14*time.Minute || d > 16*time.Minute {
		t.Fatalf("access token expires in %v, want about 15m", d)
	}
	if m := getMe(t, reg.Register.AccessToken); m.Me.ID != u.ID || m.Me.EmailVerified {
		t.Fatalf("me = %+v", m.Me)
	}

	// Verify with the emailed link.
	msg := srv.WaitMail(t, email, "Verify")
	if !strings.Contains(msg.Body, "http://app.test/verify-email?token=") {
		t.Fatalf("verification mail body has no link:\n%s", msg.Body)
	}
	tok := LinkToken(t, msg, "verify-email")
	var v struct{ VerifyEmail struct{ EmailVerified bool } }
	MustOK(t, srv.Post(t, "", verifyMut, map[string]any{"t": tok})).Decode(t, &v)
	if !v.VerifyEmail.EmailVerified {
		t.Fatal("verifyEmail did not verify")
	}
	WantCode(t, srv.Post(t, "", verifyMut, map[string]any{"t": tok}), "BAD_USER_INPUT") // single use
	if !getMe(t, reg.Register.AccessToken).Me.EmailVerified {
		t.Fatal("me.emailVerified still false")
	}

	// Login (email in another case) and refresh rotation.
	s1 := srv.Login(t, strings.ToUpper(email), "s3cret-pass")
	s2, r2 := srv.Refresh(t, s1.Refresh)
	MustOK(t, r2)
	if s2.Refresh == s1.Refresh || s2.Access == "" {
		t.Fatal("refresh did not rotate")
	}
	if getMe(t, s2.Access).Me.ID != u.ID {
		t.Fatal("refreshed access token is not the user's")
	}

	// logout ends that session only.
	s3 := srv.Login(t, email, "s3cret-pass")
	MustOK(t, srv.Post(t, "", LogoutMutation, map[string]any{"t": s2.Refresh}))
	_, r = srv.Refresh(t, s2.Refresh)
	WantCode(t, r, "UNAUTHENTICATED")
	s3b, r := srv.Refresh(t, s3.Refresh)
	MustOK(t, r)

	// logoutAll ends every session.
	s4 := srv.Login(t, email, "s3cret-pass")
	MustOK(t, srv.Post(t, s4.Access, `mutation { logoutAll }`, nil))
	for _, tok := range []string{s3b.Refresh, s4.Refresh, reg.Register.RefreshToken} {
		_, r = srv.Refresh(t, tok)
		WantCode(t, r, "UNAUTHENTICATED")
	}

	// Password reset: emailed token, revokes every session, old password dead.
	s5 := srv.Login(t, email, "s3cret-pass")
	MustOK(t, srv.Post(t, "", RequestResetMutation, map[string]any{"e": strings.ToUpper(email)}))
	resetTok := LinkToken(t, srv.WaitMail(t, email, "Reset"), "reset-password")
	MustOK(t, srv.Post(t, "", ResetMutation, map[string]any{"t": resetTok, "p": "brand-new-pass"}))
	WantCode(t, srv.Post(t, "", ResetMutation, map[string]any{"t": resetTok, "p": "another-pass"}), "BAD_USER_INPUT")
	_, r = srv.Refresh(t, s5.Refresh)
	WantCode(t, r, "UNAUTHENTICATED")
	WantCode(t, srv.Post(t, "", LoginMutation, map[string]any{"e": email, "p": "s3cret-pass"}), "UNAUTHENTICATED")

	// changePassword keeps the current session and ends the others.
	cur := srv.Login(t, email, "brand-new-pass")
	other := srv.Login(t, email, "brand-new-pass")
	MustOK(t, srv.Post(t, cur.Access, ChangePasswordMutation, map[string]any{"c": "brand-new-pass", "n": "changed-pass-1"}))
	_, r = srv.Refresh(t, other.Refresh)
	WantCode(t, r, "UNAUTHENTICATED")
	_, r = srv.Refresh(t, cur.Refresh)
	MustOK(t, r)
	srv.Login(t, email, "changed-pass-1")
}

func TestRegisterRejectsBadInputAndChangesNothing(t *testing.T) {
	taken := srv.Register(t, "taken")
	long := strings.Repeat("x", 1025)
	cases := []struct {
		name, email, password, userName, code, field string
	}{
		{"bad email", "not-an-email", "long-enough", "A", "BAD_USER_INPUT", "email"},
		{"email with display name", "Bob <bob@example.test>", "long-enough", "A", "BAD_USER_INPUT", "email"},
		{"short password", UniqueEmail("short"), "1234567", "A", "BAD_USER_INPUT", "password"},
		{"password over 1024 bytes", UniqueEmail("long"), long, "A", "BAD_USER_INPUT", "password"},
		{"blank name", UniqueEmail("blank"), "long-enough", "   ", "BAD_USER_INPUT", "name"},
		{"name too long", UniqueEmail("name"), "long-enough", strings.Repeat("n", 101), "BAD_USER_INPUT", "name"},
		{"duplicate email in other case", "  " + strings.ToUpper(taken.Email), "long-enough", "A", "CONFLICT", "email"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t)
			r := srv.Post(t, "", RegisterMutation, map[string]any{"in": map[string]any{"email": c.email, "password": c.password, "name": c.userName}})
			WantCode(t, r, c.code)
			if r.Field() != c.field {
				t.Fatalf("extensions.field = %q, want %q", r.Field(), c.field)
			}
			if after := snapshot(t); after != before {
				t.Fatalf("database changed:\n%s\n->\n%s", before, after)
			}
		})
	}
	// A 64-character password (and a long one below the cap) is accepted.
	for _, pw := range []string{strings.Repeat("p", 64), strings.Repeat("é", 512)} {
		MustOK(t, srv.Post(t, "", RegisterMutation, map[string]any{"in": map[string]any{"email": UniqueEmail("pw"), "password": pw, "name": "P"}}))
	}
}

// snapshot digests the account tables, to prove a failed call changed nothing.
func snapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := srv.DB.Get(&s, `SELECT concat_ws(' | ',
		(SELECT count(*) || ':' || coalesce(md5(string_agg(u::text, ',' ORDER BY id)), '') FROM users u),
		(SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, ',' ORDER BY id)), '') FROM refresh_tokens r),
		(SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY id)), '') FROM user_tokens x),
		(SELECT count(*) FROM mail_outbox))`)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestErrorPathsChangeNothing(t *testing.T) {
	u := srv.RegisterVerified(t, "errpaths")
	s := srv.Login(t, u.Email, u.Password)
	cases := []struct {
		name, token, query string
		vars               map[string]any
		code, field        string
	}{
		{"login wrong password", "", LoginMutation, map[string]any{"e": u.Email, "p": "wrong-password"}, "UNAUTHENTICATED", ""},
		{"refresh unknown token", "", RefreshMutation, map[string]any{"t": "nope"}, "UNAUTHENTICATED", ""},
		{"verify unknown token", "", verifyMut, map[string]any{"t": "nope"}, "BAD_USER_INPUT", "token"},
		{"resend when verified", s.Access, resendMut, nil, "CONFLICT", ""},
		{"resend anonymous", "", resendMut, nil, "UNAUTHENTICATED", ""},
		{"reset unknown token", "", ResetMutation, map[string]any{"t": "nope", "p": "long-enough"}, "BAD_USER_INPUT", "token"},
		{"reset short password", "", ResetMutation, map[string]any{"t": "nope", "p": "short"}, "BAD_USER_INPUT", "newPassword"},
		{"change wrong current", s.Access, ChangePasswordMutation, map[string]any{"c": "wrong-password", "n": "long-enough"}, "BAD_USER_INPUT", "currentPassword"},
		{"change short new", s.Access, ChangePasswordMutation, map[string]any{"c": u.Password, "n": "short"}, "BAD_USER_INPUT", "newPassword"},
		{"change anonymous", "", ChangePasswordMutation, map[string]any{"c": u.Password, "n": "long-enough"}, "UNAUTHENTICATED", ""},
		{"logoutAll anonymous", "", `mutation { logoutAll }`, nil, "UNAUTHENTICATED", ""},
		{"me anonymous", "", MeQuery, nil, "UNAUTHENTICATED", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t)
			r := srv.Post(t, c.token, c.query, c.vars)
			WantCode(t, r, c.code)
			if r.Field() != c.field {
				t.Fatalf("extensions.field = %q, want %q (%s)", r.Field(), c.field, r.Raw)
			}
			if after := snapshot(t); after != before {
				t.Fatalf("database changed:\n%s\n->\n%s", before, after)
			}
		})
	}
}

func TestConcurrentRegistrationsOfOneEmail(t *testing.T) {
	t.Parallel()
	email := UniqueEmail("race")
	const n = 20
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			variant := email
			if i%2 == 1 {
				variant = strings.ToUpper(email)
			}
			if i%3 == 0 {
				variant = " " + strings.ToUpper(email[:3]) + email[3:] + " "
			}
			r := srv.Post(t, "", RegisterMutation, map[string]any{"in": map[string]any{"email": variant, "password": "long-enough", "name": "R"}})
			codes[i] = r.Code()
		})
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case "":
			ok++
		case "CONFLICT":
		default:
			t.Fatalf("unexpected code %s", c)
		}
	}
	var count int
	if err := srv.DB.Get(&count, `SELECT count(*) FROM users WHERE lower(email) = $1`, email); err != nil {
		t.Fatal(err)
	}
	if ok != 1 || count != 1 {
		t.Fatalf("%d registrations succeeded and %d accounts exist, want 1 and 1", ok, count)
	}
}

func TestBearerTokenMatrix(t *testing.T) {
	u := srv.Register(t, "matrix")
	signAs := func(kid any, method jwt.SigningMethod, key any, mut func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": "tenantgraph", "aud": []string{"tenantgraph-api"}, "sub": u.UserID.String(),
			"sid": uuid.NewString(), "use": "access", "iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix()}
		if mut != nil {
			mut(c)
		}
		tok := jwt.NewWithClaims(method, c)
		if kid != nil {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sign := func(method jwt.SigningMethod, key any, mut func(jwt.MapClaims)) string {
		return signAs(KeyID, method, key, mut)
	}
	good := sign(jwt.SigningMethodHS256, []byte(Secret), nil)
	if getMe(t, good).Me.ID != u.UserID {
		t.Fatal("a well-formed token was not accepted")
	}
	verifyTok := LinkToken(t, srv.WaitMail(t, u.Email, "Verify"), "verify-email")
	cases := map[string]string{
		"alg none":         sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil),
		"wrong key":        sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), nil),
		"HS512":            sign(jwt.SigningMethodHS512, []byte(Secret), nil),
		"expired":          sign(jwt.SigningMethodHS256, []byte(Secret), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no expiry":        sign(jwt.SigningMethodHS256, []byte(Secret), func(c jwt.MapClaims) { delete(c, "exp") }),
		"wrong audience":   sign(jwt.SigningMethodHS256, []byte(Secret), func(c jwt.MapClaims) { c["aud"] = []string{"other"} }),
		"wrong issuer":     sign(jwt.SigningMethodHS256, []byte(Secret), func(c jwt.MapClaims) { c["iss"] = "other" }),
		"wrong token use":  sign(jwt.SigningMethodHS256, []byte(Secret), func(c jwt.MapClaims) { c["use"] = "refresh" }),
		"refresh token":    u.RefreshToken,
		"verification tok": verifyTok,
		"garbage":          "abc.def.ghi",
		"no kid":           signAs(nil, jwt.SigningMethodHS256, []byte(Secret), nil),
		"unknown kid":      signAs("retired", jwt.SigningMethodHS256, []byte(Secret), nil),
		"empty kid":        signAs("", jwt.SigningMethodHS256, []byte(Secret), nil),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			r := srv.Post(t, tok, MeQuery, nil)
			WantCode(t, r, "UNAUTHENTICATED")
			if r.Status != 200 {
				t.Fatalf("HTTP %d", r.Status)
			}
			// Public fields still work with a bad token.
			MustOK(t, srv.Post(t, tok, RequestResetMutation, map[string]any{"e": "nobody@example.test"}))
		})
	}
	t.Run("expired by the clock", func(t *testing.T) {
		s := srv.Login(t, u.Email, u.Password)
		undo := srv.Clock.Advance(16 * time.Minute)
		defer undo()
		WantCode(t, srv.Post(t, s.Access, MeQuery, nil), "UNAUTHENTICATED")
	})
}

func TestLoginDoesNotRevealWhetherAnEmailExists(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "enum")
	unknown := srv.Post(t, "", LoginMutation, map[string]any{"e": UniqueEmail("nobody"), "p": "whatever-pass"})
	wrong := srv.Post(t, "", LoginMutation, map[string]any{"e": u.Email, "p": "whatever-pass"})
	WantCode(t, unknown, "UNAUTHENTICATED")
	if unknown.Raw != wrong.Raw {
		t.Fatalf("responses differ:\nunknown: %s\nwrong:   %s", unknown.Raw, wrong.Raw)
	}
}

func TestEmailVerificationTokens(t *testing.T) {
	u := srv.Register(t, "verify")
	first := LinkToken(t, srv.WaitMail(t, u.Email, "Verify"), "verify-email")

	// At most one resend per minute.
	WantCode(t, srv.Post(t, u.AccessToken, resendMut, nil), "RATE_LIMITED")
	func() {
		defer srv.Clock.Advance(61 * time.Second)()
		MustOK(t, srv.Post(t, u.AccessToken, resendMut, nil))
	}()
	second := LinkToken(t, srv.WaitMailN(t, u.Email, "Verify", 2), "verify-email")

	// The newer link voids the older.
	WantCode(t, srv.Post(t, "", verifyMut, map[string]any{"t": first}), "BAD_USER_INPUT")

	// Links expire after 24 hours.
	func() {
		defer srv.Clock.Advance(25 * time.Hour)()
		WantCode(t, srv.Post(t, "", verifyMut, map[string]any{"t": second}), "BAD_USER_INPUT")
	}()
	MustOK(t, srv.Post(t, "", verifyMut, map[string]any{"t": second}))
}

// TestPasswordResetRequestCountsOnlyItsOwnStatements: the lookup, token and
// mail of a reset request run after the answer, and are not the request's
// statements: its access-log line and metrics are written before they end,
// and they must not move its counter afterwards (they added 8).
func TestPasswordResetRequestCountsOnlyItsOwnStatements(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "resetcount")
	r, c := srv.PostCounter(t, "", RequestResetMutation, map[string]any{"e": u.Email})
	MustOK(t, r)
	srv.WaitMail(t, u.Email, "Reset") // the background's transaction has committed
	if n := c.Load(); n != 0 {
		t.Fatalf("the reset request counts %d statements, want 0: the work after its answer is not its own", n)
	}
}

func TestPasswordResetTokens(t *testing.T) {
	// Unknown email: still true, and no mail.
	ghost := UniqueEmail("ghost")
	MustOK(t, srv.Post(t, "", RequestResetMutation, map[string]any{"e": ghost}))
	u := srv.Register(t, "reset")
	MustOK(t, srv.Post(t, "", RequestResetMutation, map[string]any{"e": u.Email}))
	tok := LinkToken(t, srv.WaitMail(t, u.Email, "Reset"), "reset-password")
	if n := len(srv.Mails(t, ghost)); n != 0 {
		t.Fatalf("%d mails to an unknown address", n)
	}
	// A bad new password leaves the token usable.
	WantCode(t, srv.Post(t, "", ResetMutation, map[string]any{"t": tok, "p": "short"}), "BAD_USER_INPUT")
	// Expired after an hour.
	func() {
		defer srv.Clock.Advance(61 * time.Minute)()
		WantCode(t, srv.Post(t, "", ResetMutation, map[string]any{"t": tok, "p": "long-enough-1"}), "BAD_USER_INPUT")
	}()
	MustOK(t, srv.Post(t, "", ResetMutation, map[string]any{"t": tok, "p": "long-enough-1"}))
	srv.Login(t, u.Email, "long-enough-1")
}

func TestInternalErrorsAreMasked(t *testing.T) {
	// A constraint the service does not know about makes the insert fail.
	if _, err := srv.DB.Exec(`ALTER TABLE users ADD CONSTRAINT secret_test_rule CHECK (name <> 'Masked Name')`); err != nil {
		t.Fatal(err)
	}
	defer srv.DB.Exec(`ALTER TABLE users DROP CONSTRAINT secret_test_rule`) //nolint:errcheck
	before := snapshot(t)
	r := srv.Post(t, "", RegisterMutation, map[string]any{"in": map[string]any{"email": UniqueEmail("mask"), "password": "long-enough", "name": "Masked Name"}})
	WantCode(t, r, "INTERNAL_SERVER_ERROR")
	for _, leak := range []string{"pq:", "secret_test_rule", "users", "INSERT", "violates", "SQLSTATE"} {
		if strings.Contains(r.Raw, leak) {
			t.Fatalf("response leaks %q: %s", leak, r.Raw)
		}
	}
	id, _ := r.Errors[0].Extensions["requestId"].(string)
	if id == "" || !strings.Contains(r.Errors[0].Message, id) {
		t.Fatalf("no request id in %s", r.Raw)
	}
	if logs := srv.Logs(); !strings.Contains(logs, id) || !strings.Contains(logs, "secret_test_rule") {
		t.Fatal("the internal error was not logged in full with its request id")
	}
	if after := snapshot(t); after != before {
		t.Fatalf("database changed:\n%s\n->\n%s", before, after)
	}
}

func TestConcurrentPasswordChangesOneWins(t *testing.T) {
	t.Parallel()
	u := srv.Register(t, "pwrace")
	s := srv.Login(t, u.Email, u.Password)
	const n = 5
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes[i] = srv.Post(t, s.Access, ChangePasswordMutation, map[string]any{"c": u.Password, "n": fmt.Sprintf("new-password-%d", i)}).Code()
		})
	}
	wg.Wait()
	winner := -1
	for i, c := range codes {
		switch c {
		case "":
			if winner >= 0 {
				t.Fatalf("two changes over the same current password succeeded: %v", codes)
			}
			winner = i
		case "CONFLICT", "BAD_USER_INPUT":
		default:
			t.Fatalf("unexpected code %s", c)
		}
	}
	if winner < 0 {
		t.Fatalf("no change succeeded: %v", codes)
	}
	srv.Login(t, u.Email, fmt.Sprintf("new-password-%d", winner))
}
