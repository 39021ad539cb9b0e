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
var ErrBusy = apperr.New(apperr.RateLimited, "the server is busy checking passwords: try again in a moment")

// Hasher hashes and verifies passwords. Every computation goes through one
// semaphore, so the process never runs more than its concurrency at once and a
// caller waits at most its wait for a slot (or until its context ends).
type Hasher struct {
	p     Argon2Params
	dummy string // a hash of a random password, verified for unknown emails
	sem   *semaphore.Weighted
	wait  time.Duration
	done  atomic.Int64 // argon2 computations run (not counting the dummy's)
}

// NewHasher returns a Hasher using p, DefaultHashConcurrency and HashWait.
func NewHasher(p Argon2Params) *Hasher {
	return NewHasherLimited(p, DefaultHashConcurrency(), HashWait)
}

// NewHasherLimited returns a Hasher running at most concurrency computations at
// once, whose callers wait at most wait for a slot.
func NewHasherLimited(p Argon2Params, concurrency int, wait time.Duration) *Hasher {
	h := &Hasher{p: p, sem: semaphore.NewWeighted(int64(max(1, concurrency))), wait: wait}
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
	return h.encode(password), nil
}

func (h *Hasher) encode(password string) string {
	salt := make([]byte, h.p.SaltLen)
	rand.Read(salt) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	var key []byte
	background(func() { key = argon2.IDKey([]byte(password), salt, h.p.Time, h.p.MemoryKiB, h.p.Threads, h.p.KeyLen) })
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.p.MemoryKiB, h.p.Time, h.p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify reports whether password matches the PHC string encoded.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password hash: not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("password hash: unsupported version")
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, fmt.Errorf("password hash: parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password hash: salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("password hash: key: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.sem.Release(1)
	var got []byte
	background(func() { got = argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want))) })
	return subtle.ConstantTimeCompare(got, want) == 1, nil
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
