package auth

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the hash worker: the pool under test
// runs `<test binary> hash-worker`, as the server runs `tenantgraph hash-worker`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == crashingWorkerArg {
		os.Stderr.WriteString("panic: boom\n\ngoroutine 1 [running]:\n")
		os.Exit(2)
	}
	if len(os.Args) > 1 && os.Args[1] == WorkerArg {
		if err := RunHashWorker(); err != nil {
			os.Stderr.WriteString("hash worker: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var (
	fastArgon2 = Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	// slowArgon2 takes long enough (hundreds of ms) to be interrupted mid-way.
	slowArgon2 = Argon2Params{MemoryKiB: 64 * 1024, Time: 6, Threads: 1, SaltLen: 16, KeyLen: 32}
)

func workerHasher(t *testing.T, p Argon2Params, concurrency int) *Hasher {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the tests find the workers in /proc")
	}
	h := NewHasherLimited(p, concurrency, 5*time.Second)
	h.UseWorkers(nil, os.Args[0], WorkerArg)
	t.Cleanup(h.Close)
	return h
}

// workers returns the pids of this process's hash workers (children running
// hash-worker), zombies included.
func workers(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if fields[0] == "Z" || strings.Contains(string(cmdline), WorkerArg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// busyWorker waits until a worker exists while done is still open, and
// returns its pid.
func busyWorker(t *testing.T, done <-chan struct{}) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatal("the computation ended before a worker was seen: make slowArgon2 slower")
		default:
		}
		if pids := workers(t); len(pids) == 1 {
			time.Sleep(30 * time.Millisecond) // well inside the computation
			return pids[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no worker started")
	return 0
}

func gone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return errors.Is(err, os.ErrNotExist)
}

// TestHashWorkerAgreesWithInProcess: a hash made in a worker verifies in
// process and the other way round; wrong passwords fail both ways; bytes that
// are not UTF-8 survive the trip; each computation counts once; Close ends the
// workers and later calls fail.
func TestHashWorkerAgreesWithInProcess(t *testing.T) {
	ctx := context.Background()
	w := workerHasher(t, fastArgon2, 2)
	local := NewHasherLimited(fastArgon2, 2, time.Second)
	for _, pw := range []string{"correct horse", "\xff\xfe not utf-8 \x00", strings.Repeat("é", MaxPasswordBytes/2)} {
		enc, err := w.Hash(ctx, pw)
		if err != nil {
			t.Fatalf("worker Hash: %v", err)
		}
		if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("worker hash %q", enc)
		}
		if ok, err := local.Verify(ctx, enc, pw); err != nil || !ok {
			t.Fatalf("in-process Verify(worker hash, right) = %v, %v", ok, err)
		}
		if ok, err := local.Verify(ctx, enc, pw+"x"); err != nil || ok {
			t.Fatalf("in-process Verify(worker hash, wrong) = %v, %v", ok, err)
		}
		enc, err = local.Hash(ctx, pw)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := w.Verify(ctx, enc, pw); err != nil || !ok {
			t.Fatalf("worker Verify(in-process hash, right) = %v, %v", ok, err)
		}
		if ok, err := w.Verify(ctx, enc, pw[1:]); err != nil || ok {
			t.Fatalf("worker Verify(in-process hash, wrong) = %v, %v", ok, err)
		}
	}
	if err := w.VerifyDummy(ctx, "x"); err != nil {
		t.Fatalf("worker VerifyDummy: %v", err)
	}
	if got := w.Computations(); got != 3*3+1 {
		t.Errorf("Computations = %d, want 10", got)
	}
	if _, err := w.Verify(ctx, "$argon2id$nonsense", "x"); err == nil {
		t.Error("Verify of a malformed hash: no error")
	}
	pids := workers(t)
	if len(pids) != 1 {
		t.Fatalf("workers after serial calls: %v, want one reused", pids)
	}
	w.Close()
	if !gone(pids[0]) {
		t.Errorf("worker %d still there after Close", pids[0])
	}
	if _, err := w.Hash(ctx, "pw"); err == nil {
		t.Error("Hash after Close: no error")
	}
}

// TestHashWorkerRunsAtLowestPriority: every thread of a worker is at nice 19.
func TestHashWorkerRunsAtLowestPriority(t *testing.T) {
	w := workerHasher(t, fastArgon2, 1)
	if _, err := w.Hash(context.Background(), "pw"); err != nil {
		t.Fatal(err)
	}
	pids := workers(t)
	if len(pids) != 1 {
		t.Fatalf("workers: %v", pids)
	}
	dir := "/proc/" + strconv.Itoa(pids[0]) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// After ')': state is field 3 of stat, nice field 19.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if nice := fields[19-3]; nice != "19" {
			t.Errorf("worker thread %s: nice %s, want 19", task.Name(), nice)
		}
	}
	if len(tasks) < 2 {
		t.Errorf("worker has %d threads; the test means to look at several", len(tasks))
	}
}

// TestHashWorkerKilledIsReplaced: a worker killed mid-computation, or while
// idle, is reaped and replaced, and the caller's request is answered by the
// new one.
func TestHashWorkerKilledIsReplaced(t *testing.T) {
	ctx := context.Background()
	w := workerHasher(t, slowArgon2, 1)
	done := make(chan struct{})
	var enc string
	var err error
	go func() {
		defer close(done)
		enc, err = w.Hash(ctx, "pw-killed")
	}()
	first := busyWorker(t, done)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil {
		t.Fatalf("Hash whose worker was killed mid-way: %v (want a retry on a new worker)", err)
	}
	if !gone(first) {
		t.Errorf("killed worker %d not reaped", first)
	}
	pids := workers(t)
	if len(pids) != 1 || pids[0] == first {
		t.Fatalf("workers after the kill: %v (killed %d)", pids, first)
	}
	// Killed while idle: the next call finds out and uses a new one.
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Verify(ctx, enc, "pw-killed"); err != nil || !ok {
		t.Fatalf("Verify after the idle worker was killed = %v, %v", ok, err)
	}
	if !gone(pids[0]) {
		t.Errorf("killed idle worker %d not reaped", pids[0])
	}
	if now := workers(t); len(now) != 1 {
		t.Errorf("workers: %v, want one", now)
	}
}

// TestHashWorkerCancelKillsIt: when the caller's context ends mid-computation,
// the caller gets the context's error at once, the worker is killed and
// reaped (its pipe may hold half an answer), and the slot is free again.
func TestHashWorkerCancelKillsIt(t *testing.T) {
	w := workerHasher(t, slowArgon2, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		_, err = w.Hash(ctx, "pw-cancelled")
	}()
	pid := busyWorker(t, done)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Hash did not return after its context ended")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with a cancelled context: %v, want context.Canceled", err)
	}
	if !gone(pid) {
		t.Errorf("worker %d not killed and reaped", pid)
	}
	if pids := workers(t); len(pids) != 0 {
		t.Errorf("workers left: %v", pids)
	}
	// The slot came back: a fast call on a new worker succeeds.
	w.p = fastArgon2
	if _, err := w.Hash(context.Background(), "pw"); err != nil {
		t.Fatalf("Hash after the cancel: %v", err)
	}
}

// crashingWorkerArg makes the test binary a worker that writes a panic's
// first lines to its standard error and exits at once.
const crashingWorkerArg = "crashing-hash-worker"

// TestHashWorkerStderrIsLogged: what a worker writes to its standard error
// (a panic) reaches the server's log as records, a line each, not as raw text
// among the JSON lines.
func TestHashWorkerStderrIsLogged(t *testing.T) {
	var logs strings.Builder
	h := NewHasherLimited(fastArgon2, 1, 5*time.Second)
	// slog's handler serialises its writes: the workers' stderr copiers and
	// the hasher log from goroutines of their own.
	h.UseWorkers(slog.New(slog.NewJSONHandler(&logs, nil)), os.Args[0], crashingWorkerArg)
	t.Cleanup(h.Close)
	if _, err := h.Hash(context.Background(), "pw"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	out := logs.String()
	for _, want := range []string{`"msg":"password hash worker","stderr":"panic: boom"`, `"stderr":"goroutine 1 [running]:"`} {
		if strings.Count(out, want) != 2 { // two workers tried, each crashed
			t.Errorf("the log holds %q %d times, want 2:\n%s", want, strings.Count(out, want), out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "{") || strings.Contains(line, `"stderr":""`) {
			t.Errorf("a log line that is not a record, or a blank one: %q", line)
		}
	}
}

// TestHashWorkersUnavailableFallBackInProcess: when no worker can do a
// computation (the binary cannot start, or each worker dies at once), the
// hasher does it in process, so sign-ins keep working, and says so in one log
// line a minute and in Fallbacks. A worker's refusal of a malformed request
// is returned, not redone in process.
func TestHashWorkersUnavailableFallBackInProcess(t *testing.T) {
	ctx := context.Background()
	for name, path := range map[string]string{
		"a binary that cannot start": "/nonexistent/tenantgraph",
		"workers that exit at once":  "/bin/true",
	} {
		t.Run(name, func(t *testing.T) {
			var logs strings.Builder
			h := NewHasherLimited(fastArgon2, 1, 5*time.Second)
			h.UseWorkers(slog.New(slog.NewTextHandler(&logs, nil)), path, WorkerArg)
			t.Cleanup(h.Close)

			enc, err := h.Hash(ctx, "pw-fallback")
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			for pw, want := range map[string]bool{"pw-fallback": true, "wrong": false} {
				if ok, err := h.Verify(ctx, enc, pw); err != nil || ok != want {
					t.Fatalf("Verify(%q) = %v, %v; want %v", pw, ok, err, want)
				}
			}
			if n := h.Fallbacks(); n != 3 {
				t.Errorf("Fallbacks = %d, want 3", n)
			}
			if n := strings.Count(logs.String(), "hashing in the server's process"); n != 1 {
				t.Errorf("%d fallback log lines, want 1 (at most one a minute):\n%s", n, logs.String())
			}
		})
	}
	t.Run("a refusal is not redone", func(t *testing.T) {
		h := workerHasher(t, fastArgon2, 1)
		if _, err := h.pool.verify(ctx, "not a PHC string", "pw"); err == nil || h.fallBack(ctx, err) {
			t.Fatalf("verify of a malformed hash: err %v, falls back %v; want a refusal that does not fall back", err, h.fallBack(ctx, err))
		}
		if n := h.Fallbacks(); n != 0 {
			t.Errorf("Fallbacks = %d, want 0", n)
		}
	})
}
