package account

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tenantgraph/internal/apperr"
	"tenantgraph/internal/auth"
	"tenantgraph/internal/platform/db"
	pmail "tenantgraph/internal/platform/mail"
	"tenantgraph/internal/platform/ratelimit"
	"tenantgraph/internal/platform/reqmeta"
	"tenantgraph/internal/platform/validate"
)

// Lifetimes and limits of the emailed tokens.
const (
	VerifyTokenTTL  = 24 * time.Hour
	ResetTokenTTL   = time.Hour
	ResendInterval  = time.Minute
	MinPasswordLen  = 8
	MaxNameLen      = 100
	invalidLoginMsg = "invalid email or password"
)

// Limits throttle the credential operations (per server process). A nil
// limiter allows everything.
type Limits struct {
	LoginPerIP      *ratelimit.Limiter // login attempts from one address
	LoginPerEmailIP *ratelimit.Limiter // login attempts on one email from one address
	// LoginPerEmail counts attempts on one email from anywhere: loose, so that a
	// stranger cannot lock the owner out, yet it slows a spread-out attack down to
	// its refill rate once the burst is spent.
	LoginPerEmail         *ratelimit.Limiter
	ChangePasswordPerUser *ratelimit.Limiter // changePassword attempts (current-password guesses) per user
	RegisterPerIP         *ratelimit.Limiter // sign-ups from one address
	ResetRequestsPerIP    *ratelimit.Limiter // password reset requests from one address
	ResetUsesPerIP        *ratelimit.Limiter // resetPassword (token use) attempts from one address
}

// DefaultLimits are generous for people and tight for password guessing.
func DefaultLimits() Limits {
	return Limits{
		LoginPerIP:            ratelimit.New(30, time.Minute),
		LoginPerEmailIP:       ratelimit.New(5, 10*time.Minute),
		LoginPerEmail:         ratelimit.New(100, time.Hour),
		ChangePasswordPerUser: ratelimit.New(5, 10*time.Minute),
		RegisterPerIP:         ratelimit.New(20, time.Hour),
		ResetRequestsPerIP:    ratelimit.New(10, 10*time.Minute),
		ResetUsesPerIP:        ratelimit.New(10, 10*time.Minute),
	}
}

// MaxPendingResets bounds the password reset requests being resolved in the
// background at once; past it, requests are refused with RATE_LIMITED (for any
// email, so the refusal tells nothing).
const MaxPendingResets = 64

// tooMany is the refusal of the limit named limit (the snake_case of its Limits
// field, or pending_resets for MaxPendingResets), as the metrics name it.
func tooMany(limit string) error {
	return apperr.Limited(limit, "too many attempts: wait a minute and try again")
}

// Deps are what the service needs.
type Deps struct {
	DB         *sqlx.DB
	Hasher     *auth.Hasher
	Tokens     *auth.Tokens
	RefreshTTL time.Duration
	BaseURL    string // links in emails
	Now        func() time.Time
	Log        *slog.Logger
	Limits     Limits
	// Revoked receives the sessions this process ends, right after commit, so
	// that its own next request already refuses their access tokens (other
	// replicas learn them from the notification). Nil is allowed.
	Revoked *auth.RevokedSessions
}

// Service holds the account rules.
type Service struct {
	d          Deps
	store      Store
	resets     chan struct{}  // slots for background reset requests
	background sync.WaitGroup // reset requests still being resolved
}

// NewService returns the account service.
func NewService(d Deps) *Service {
	return &Service{d: d, resets: make(chan struct{}, MaxPendingResets)}
}

// Wait returns when the password reset requests accepted so far are resolved
// (their mail queued or found unneeded). The server calls it on shutdown.
func (s *Service) Wait() { s.background.Wait() }

// TokenRetention is how long dead tokens are kept (reuse of a used refresh token
// is recognised, and its session revoked, for that long after it died).
const TokenRetention = 30 * 24 * time.Hour

// PurgeExpired deletes tokens dead for longer than TokenRetention.
func (s *Service) PurgeExpired(ctx context.Context) (int64, error) {
	return s.store.PurgeTokens(ctx, s.d.DB, s.d.Now().Add(-TokenRetention))
}

// Users returns the users with the given ids (for loaders), in no particular order.
func (s *Service) Users(ctx context.Context, ids []uuid.UUID) ([]*User, error) {
	return s.store.UsersByIDs(ctx, s.d.DB, ids)
}

// Register creates an account, signs it in and queues the verification email.
func (s *Service) Register(ctx context.Context, in RegisterInput) (*AuthPayload, error) {
	if !s.d.Limits.RegisterPerIP.Allow(reqmeta.From(ctx).IP, s.d.Now()) {
		return nil, tooMany("register_per_ip")
	}
	email, err := validate.Email(in.Email)
	if err != nil {
		return nil, err
	}
	name, err := validate.Name("name", in.Name, MaxNameLen)
	if err != nil {
		return nil, err
	}
	if err := validatePassword("password", in.Password); err != nil {
		return nil, err
	}
	hash, err := s.d.Hasher.Hash(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	var out *AuthPayload
	err = db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		u, err := s.store.InsertUser(ctx, tx, email, name, hash, now)
		if err != nil {
			return err
		}
		if err := s.sendVerification(ctx, tx, u, now); err != nil {
			return err
		}
		out, err = s.startSession(ctx, tx, u, uuid.New(), now)
		return err
	})
	return out, err
}

// Login checks credentials. Unknown email and wrong password answer the same
// error after the same hashing work.
func (s *Service) Login(ctx context.Context, email, password string) (*AuthPayload, error) {
	bad := apperr.New(apperr.Unauthenticated, invalidLoginMsg)
	key := strings.ToLower(strings.TrimSpace(email))
	if len(key) > validate.MaxEmailLen {
		// Refused before the limiters: no key is made of it.
		return nil, apperr.Invalid("email", "an email address has at most %d bytes", validate.MaxEmailLen)
	}
	// Throttle before hashing: guessing costs the attacker, not the server. The
	// email keys count whether or not the account exists (no enumeration). An
	// attempt refused by one limiter takes nothing from the next ones: an address
	// locked out of one email spends none of that email's global allowance.
	now := s.d.Now()
	ip := reqmeta.From(ctx).IP
	switch {
	case !s.d.Limits.LoginPerIP.Allow(ip, now):
		return nil, tooMany("login_per_ip")
	case !s.d.Limits.LoginPerEmailIP.Allow(key+" "+ip, now):
		return nil, tooMany("login_per_email_ip")
	case !s.d.Limits.LoginPerEmail.Allow(key, now):
		return nil, tooMany("login_per_email")
	}
	norm, err := validate.Email(email)
	if err != nil || len(password) > auth.MaxPasswordBytes {
		if err := s.d.Hasher.VerifyDummy(ctx, password); err != nil {
			return nil, err
		}
		return nil, bad
	}
	u, hash, err := s.store.UserCredentials(ctx, s.d.DB, norm)
	if err != nil {
		return nil, err
	}
	if u == nil {
		if err := s.d.Hasher.VerifyDummy(ctx, password); err != nil {
			return nil, err
		}
		return nil, bad
	}
	ok, err := s.d.Hasher.Verify(ctx, hash, password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, bad
	}
	var out *AuthPayload
	err = db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		out, err = s.startSession(ctx, tx, u, uuid.New(), s.d.Now())
		return err
	})
	return out, err
}

// RefreshGrace is how long after its rotation a refresh token may be presented
// again (two tabs refreshing at once) and still get a fresh pair in its session.
const RefreshGrace = 10 * time.Second

// Refresh rotates a refresh token. A token presented again within RefreshGrace
// of its rotation gets a fresh pair in the same session (the token itself stays
// used, so the grace never extends); presented later, it revokes its whole
// family (the session), since one of its holders is not the user.
func (s *Service) Refresh(ctx context.Context, token string) (*AuthPayload, error) {
	hash := auth.HashToken(token)
	var out *AuthPayload
	err := db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		userID, family, ok, err := s.store.ClaimRefreshToken(ctx, tx, hash, now)
		if err != nil {
			return err
		}
		if !ok {
			userID, family, ok, err = s.store.GraceRefreshToken(ctx, tx, hash, now.Add(-RefreshGrace), now)
			if err != nil {
				return err
			}
		}
		if !ok {
			return errInvalidRefresh
		}
		us, err := s.store.UsersByIDs(ctx, tx, []uuid.UUID{userID})
		if err != nil {
			return err
		}
		if len(us) == 0 {
			return errInvalidRefresh
		}
		out, err = s.startSession(ctx, tx, us[0], family, now)
		return err
	})
	if err == errInvalidRefresh {
		if rerr := s.revoke(ctx, func(tx *sqlx.Tx, now time.Time) ([]uuid.UUID, error) {
			ended, err := s.store.RevokeReusedFamily(ctx, tx, hash, now.Add(-RefreshGrace), now)
			if len(ended) > 0 {
				s.d.Log.WarnContext(ctx, "refresh token reuse detected; session revoked")
			}
			return ended, err
		}); rerr != nil {
			return nil, rerr
		}
	}
	return out, err
}

// revoke runs fn, which ends sessions, in a transaction, and then adds the
// sessions it ended to this process's revoked set.
func (s *Service) revoke(ctx context.Context, fn func(tx *sqlx.Tx, now time.Time) ([]uuid.UUID, error)) error {
	var ended []uuid.UUID
	now := s.d.Now()
	err := db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		var err error
		ended, err = fn(tx, now)
		return err
	})
	if err == nil {
		s.sessionsEnded(now, ended)
	}
	return err
}

// sessionsEnded records committed revocations in this process's revoked set.
func (s *Service) sessionsEnded(at time.Time, sessions []uuid.UUID) {
	if s.d.Revoked != nil && len(sessions) > 0 {
		s.d.Revoked.Add(at, sessions...)
	}
}

var errInvalidRefresh = apperr.New(apperr.Unauthenticated, "invalid or expired refresh token")

// Logout revokes the session the refresh token belongs to. Unknown tokens are ignored.
func (s *Service) Logout(ctx context.Context, token string) error {
	return s.revoke(ctx, func(tx *sqlx.Tx, now time.Time) ([]uuid.UUID, error) {
		return s.store.RevokeFamilyOf(ctx, tx, auth.HashToken(token), now)
	})
}

// LogoutAll revokes every session of the viewer.
func (s *Service) LogoutAll(ctx context.Context, v auth.Viewer) error {
	return s.revoke(ctx, func(tx *sqlx.Tx, now time.Time) ([]uuid.UUID, error) {
		return s.store.RevokeUserSessions(ctx, tx, v.UserID, uuid.Nil, now)
	})
}

// VerifyEmail uses an emailed verification token.
func (s *Service) VerifyEmail(ctx context.Context, token string) (*User, error) {
	var u *User
	err := db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		id, ok, err := s.store.ClaimUserToken(ctx, tx, auth.HashToken(token), PurposeVerifyEmail, now)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.Invalid("token", "the verification link is invalid, used or expired")
		}
		u, err = s.store.MarkVerified(ctx, tx, id, now)
		return err
	})
	return u, err
}

// ResendVerification emails a new verification link (at most one per minute);
// the previous link stops working.
func (s *Service) ResendVerification(ctx context.Context, v auth.Viewer) error {
	return db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		u, err := s.store.UserForUpdate(ctx, tx, v.UserID)
		if err != nil {
			return err
		}
		if u.EmailVerified() {
			return apperr.New(apperr.Conflict, "the email address is already verified")
		}
		recent, err := s.sentRecently(ctx, tx, u.ID, PurposeVerifyEmail, now)
		if err != nil {
			return err
		}
		if recent {
			return apperr.Limited("verification_resend", "a verification email was sent less than a minute ago")
		}
		return s.sendVerification(ctx, tx, u, now)
	})
}

// RequestPasswordReset emails a reset link when the address has an account.
// It answers the same either way, and in the same time: the lookup and the
// work that differs (a token and a queued mail, or nothing) run in the
// background after the answer. Repeated requests within a minute send nothing more.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	if !s.d.Limits.ResetRequestsPerIP.Allow(reqmeta.From(ctx).IP, s.d.Now()) {
		return tooMany("reset_per_ip")
	}
	norm, err := validate.Email(email)
	if err != nil {
		return nil
	}
	select {
	case s.resets <- struct{}{}:
	default:
		return tooMany("pending_resets")
	}
	s.background.Add(1)
	// The request's values (request id for the logs), not its end, nor its
	// statement counter: what runs after the answer is not the request's cost
	// (its access-log line and metrics are written before this ends).
	bctx, cancel := context.WithTimeout(db.WithCounter(context.WithoutCancel(ctx), nil), 30*time.Second)
	go func() {
		defer func() {
			cancel()
			<-s.resets
			s.background.Done()
		}()
		if err := s.sendReset(bctx, norm); err != nil {
			s.d.Log.ErrorContext(bctx, "password reset request failed", "error", err)
		}
	}()
	return nil
}

// sendReset queues a reset link to norm when it has an account and was not sent
// one within ResendInterval.
func (s *Service) sendReset(ctx context.Context, norm string) error {
	return db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		u, err := s.store.UserByEmailForUpdate(ctx, tx, norm)
		if err != nil || u == nil {
			return err
		}
		if recent, err := s.sentRecently(ctx, tx, u.ID, PurposeResetPassword, now); err != nil || recent {
			return err
		}
		return s.mailToken(ctx, tx, u, PurposeResetPassword, now.Add(ResetTokenTTL), now, "Reset your tenantgraph password",
			"Hello %s,\n\nSomeone asked to reset the password of your account. To choose a new one, open:\n\n%s/reset-password?token=%s\n\nThe link works once, within one hour. If it was not you, ignore this email.\n")
	})
}

var errBadResetToken = apperr.Invalid("token", "the reset link is invalid, used or expired")

// ResetPassword sets a new password with an emailed token and revokes every session.
// Receiving the email proves the address, so it is marked verified too. The token
// is checked before the new password is hashed: a bad token costs no hashing.
func (s *Service) ResetPassword(ctx context.Context, token, newPassword string) error {
	if !s.d.Limits.ResetUsesPerIP.Allow(reqmeta.From(ctx).IP, s.d.Now()) {
		return tooMany("reset_password_per_ip")
	}
	if err := validatePassword("newPassword", newPassword); err != nil {
		return err
	}
	tokenHash := auth.HashToken(token)
	if _, ok, err := s.store.UserTokenValid(ctx, s.d.DB, tokenHash, PurposeResetPassword, s.d.Now()); err != nil {
		return err
	} else if !ok {
		return errBadResetToken
	}
	// Hash outside the transaction (no lock, no connection held); the token is
	// claimed below, so of two concurrent uses one wins.
	hash, err := s.d.Hasher.Hash(ctx, newPassword)
	if err != nil {
		return err
	}
	var ended []uuid.UUID
	err = db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		id, ok, err := s.store.ClaimUserToken(ctx, tx, tokenHash, PurposeResetPassword, now)
		if err != nil {
			return err
		}
		if !ok {
			return errBadResetToken
		}
		if err := s.store.SetPassword(ctx, tx, id, hash, now); err != nil {
			return err
		}
		if _, err := s.store.MarkVerified(ctx, tx, id, now); err != nil {
			return err
		}
		ended, err = s.store.RevokeUserSessions(ctx, tx, id, uuid.Nil, now)
		return err
	})
	if err == nil {
		s.sessionsEnded(s.d.Now(), ended)
	}
	return err
}

// ChangePassword replaces the viewer's password and revokes their other sessions.
// Attempts are throttled per user before anything is hashed (a stolen access
// token must not allow guessing the password), and the current password is
// verified before the new one is hashed.
func (s *Service) ChangePassword(ctx context.Context, v auth.Viewer, current, next string) error {
	if !s.d.Limits.ChangePasswordPerUser.Allow(v.UserID.String(), s.d.Now()) {
		return tooMany("change_password_per_user")
	}
	if err := validatePassword("newPassword", next); err != nil {
		return err
	}
	// Verify and hash outside the transaction: hashing holds no lock and no connection.
	old, err := s.store.PasswordHash(ctx, s.d.DB, v.UserID)
	if err != nil {
		return err
	}
	ok, err := s.d.Hasher.Verify(ctx, old, current)
	if err != nil {
		return err
	}
	if !ok {
		return apperr.Invalid("currentPassword", "the current password is wrong")
	}
	hash, err := s.d.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	var ended []uuid.UUID
	err = db.WithTx(ctx, s.d.DB, func(tx *sqlx.Tx) error {
		now := s.d.Now()
		// Only over the hash just verified: a concurrent change wins, this one stops.
		replaced, err := s.store.ReplacePassword(ctx, tx, v.UserID, old, hash, now)
		if err != nil {
			return err
		}
		if !replaced {
			return apperr.New(apperr.Conflict, "the password was changed meanwhile: try again")
		}
		ended, err = s.store.RevokeUserSessions(ctx, tx, v.UserID, v.SessionID, now)
		return err
	})
	if err == nil {
		s.sessionsEnded(s.d.Now(), ended)
	}
	return err
}

// sentRecently reports whether the user was emailed a token of purpose less than
// ResendInterval ago. Callers hold the user's row lock, so the answer holds.
func (s *Service) sentRecently(ctx context.Context, tx *sqlx.Tx, user uuid.UUID, purpose string, now time.Time) (bool, error) {
	last, err := s.store.LastUserTokenAt(ctx, tx, user, purpose)
	return err == nil && now.Sub(last) < ResendInterval, err
}

// startSession issues an access token and a refresh token in family.
func (s *Service) startSession(ctx context.Context, tx *sqlx.Tx, u *User, family uuid.UUID, now time.Time) (*AuthPayload, error) {
	refresh := auth.RandomToken()
	if err := s.store.InsertRefreshToken(ctx, tx, u.ID, family, auth.HashToken(refresh), now, now.Add(s.d.RefreshTTL)); err != nil {
		return nil, err
	}
	access, exp, err := s.d.Tokens.Issue(u.ID, family)
	if err != nil {
		return nil, err
	}
	return &AuthPayload{AccessToken: access, AccessTokenExpiresAt: exp, RefreshToken: refresh, User: u}, nil
}

func (s *Service) sendVerification(ctx context.Context, tx *sqlx.Tx, u *User, now time.Time) error {
	return s.mailToken(ctx, tx, u, PurposeVerifyEmail, now.Add(VerifyTokenTTL), now, "Verify your email for tenantgraph",
		"Hello %s,\n\nPlease confirm your email address by opening:\n\n%s/verify-email?token=%s\n\nThe link works once, within 24 hours.\n")
}

// mailToken is the one token-and-mail step of accounts: it gives u a new
// single-use token for purpose, valid until expires (the previous one of that
// purpose stops working), and queues, in tx, a mail whose body is body
// formatted with u's name, the base URL and the token.
func (s *Service) mailToken(ctx context.Context, tx *sqlx.Tx, u *User, purpose string, expires, now time.Time, subject, body string) error {
	token := auth.RandomToken()
	if err := s.store.ReplaceUserToken(ctx, tx, u.ID, purpose, auth.HashToken(token), now, expires); err != nil {
		return err
	}
	return pmail.Enqueue(ctx, tx, pmail.Message{To: u.Email, Subject: subject, Body: fmt.Sprintf(body, u.Name, s.d.BaseURL, token)})
}

func validatePassword(field, pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return apperr.Invalid(field, "the password must have at least %d characters", MinPasswordLen)
	}
	if len(pw) > auth.MaxPasswordBytes {
		return apperr.Invalid(field, "the password must be at most %d bytes", auth.MaxPasswordBytes)
	}
	return nil
}
