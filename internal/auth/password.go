// Package auth holds credentials mechanics: password hashing, access tokens
// (JWT), opaque single-use tokens and the viewer carried in a request context.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sync/semaphore"

	"tenantgraph/internal/apperr"
)

// MaxPasswordBytes caps the bytes hashed: longer passwords are refused.
const MaxPasswordBytes = 1024

// Argon2Params are argon2id cost parameters. They are stored in every hash
// (PHC string form), so raising them later keeps old hashes verifiable.
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   uint32
	KeyLen    uint32
}

// DefaultArgon2 follows the OWASP minimum for argon2id: m=19 MiB, t=2, p=1.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// HashWait is how long a hash or verification waits for a free slot before it
// gives up with RATE_LIMITED.
const HashWait = 2 * time.Second

// DefaultHashConcurrency is how many argon2 computations run at once in one
// process: half the CPUs, at least one. Each takes a core for tens of
// milliseconds (and 19 MiB), so on 2 cores a flood of logins keeps one core
// hashing and leaves the other to every other request.
func DefaultHashConcurrency() int { return max(1, runtime.NumCPU()/2) }

// ErrBusy is returned when every hashing slot stayed taken for HashWait.
var ErrBusy = apperr.Limited("password_hashing", "the server is busy checking passwords: try again in a moment")

// Hasher hashes and verifies passwords. Every computation goes through one
// semaphore, so the process never runs more than its concurrency at once and a
// caller waits at most its wait for a slot (or until its context ends).
type Hasher struct {
	p           Argon2Params
	concurrency int
	dummy       string // a hash of a random password, verified for unknown emails
	sem         *semaphore.Weighted
	wait        time.Duration
	done        atomic.Int64 // argon2 computations run (not counting the dummy's)
	pool        *workerPool  // nil: computations run in this process (see UseWorkers)
}

// NewHasher returns a Hasher using p, DefaultHashConcurrency and HashWait.
func NewHasher(p Argon2Params) *Hasher {
	return NewHasherLimited(p, DefaultHashConcurrency(), HashWait)
}

// NewHasherLimited returns a Hasher running at most concurrency computations at
// once, whose callers wait at most wait for a slot.
func NewHasherLimited(p Argon2Params, concurrency int, wait time.Duration) *Hasher {
	concurrency = max(1, concurrency)
	h := &Hasher{p: p, concurrency: concurrency, sem: semaphore.NewWeighted(int64(concurrency)), wait: wait}
	h.dummy = h.encode(RandomToken())
	return h
}

// Computations returns how many hashes and verifications ran so far.
func (h *Hasher) Computations() int64 { return h.done.Load() }

// acquire takes a slot, waiting at most h.wait; release it when done.
func (h *Hasher) acquire(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.wait)
	defer cancel()
	if err := h.sem.Acquire(ctx, 1); err != nil {
		return ErrBusy
	}
	h.done.Add(1)
	return nil
}

// Hash returns the PHC string of password: $argon2id$v=19$m=..,t=..,p=..$salt$key.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.sem.Release(1)
	if h.pool != nil {
		enc, err := h.pool.hash(ctx, h.p, password)
		if !h.fallBack(ctx, err) {
			return enc, err
		}
	}
	return h.encode(password), nil
}

func (h *Hasher) encode(password string) string {
	var enc string
	background(func() { enc = hashPHC(h.p, []byte(password)) })
	return enc
}

// hashPHC hashes password with a fresh random salt and returns the PHC string.
func hashPHC(p Argon2Params, password []byte) string {
	salt := make([]byte, p.SaltLen)
	rand.Read(salt) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	key := argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// phc is a parsed PHC string.
type phc struct {
	p         Argon2Params
	salt, key []byte
}

func parsePHC(encoded string) (phc, error) {
	var h phc
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return h, errors.New("password hash: not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return h, errors.New("password hash: unsupported version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.p.MemoryKiB, &h.p.Time, &h.p.Threads); err != nil {
		return h, fmt.Errorf("password hash: parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil {
		return h, fmt.Errorf("password hash: salt: %w", err)
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil {
		return h, fmt.Errorf("password hash: key: %w", err)
	}
	return h, nil
}

// matches reports whether password derives h's key.
func (h phc) matches(password []byte) bool {
	got := argon2.IDKey(password, h.salt, h.p.Time, h.p.MemoryKiB, h.p.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// Verify reports whether password matches the PHC string encoded.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	parsed, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.sem.Release(1)
	if h.pool != nil {
		ok, err := h.pool.verify(ctx, encoded, password)
		if !h.fallBack(ctx, err) {
			return ok, err
		}
	}
	var ok bool
	background(func() { ok = parsed.matches([]byte(password)) })
	return ok, nil
}

// VerifyDummy spends the same work as Verify on a fixed hash, so that an
// unknown email costs as much time as a wrong password. Its only error is ErrBusy.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, err := h.Verify(ctx, h.dummy, password)
	return err
}

// background runs f on an OS thread of its own at the lowest priority, and
// returns when f has. The operating system then serves every other request of
// the process (and of the machine) before a password hash: a flood of logins
// slows logins, not the rest of the API. The thread is never unlocked, so it
// ends with f, and its priority with it.
func background(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		lowerThreadPriority()
		f()
	}()
	<-done
}
