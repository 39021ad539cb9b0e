package auth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// Hash workers. An argon2 computation in the server's own Go runtime holds one
// of its processors (Ps) for ~27 ms and allocates 19 MiB, so the collector runs
// every ~50 ms and every other request waits for the scheduler and for the
// collector's pauses. With UseWorkers the computations run in child processes
// (`tenantgraph hash-worker`, at nice 19) instead: the caller's goroutine waits
// on a pipe without holding a P, and the 19 MiB buffers are garbage in the
// worker, not in the server.
//
// The protocol is one JSON object per line each way, one request at a time:
//
//	{"op":"hash","password":<base64>,"params":{...}}  ->  {"hash":"$argon2id$..."}
//	{"op":"verify","hash":"$argon2id$...","password":<base64>}  ->  {"ok":true}
//
// and {"error":"..."} when the request is malformed. Passwords travel as bytes
// (base64), so that a password that is not valid UTF-8 hashes the same as in
// process.

// WorkerArg is the argument with which the server binary runs as a hash worker.
const WorkerArg = "hash-worker"

type workerRequest struct {
	Op       string        `json:"op"`
	Password []byte        `json:"password"`
	Hash     string        `json:"hash,omitempty"`
	Params   *Argon2Params `json:"params,omitempty"`
}

type workerResponse struct {
	Hash  string `json:"hash,omitempty"`
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// maxWorkerLine bounds a request line: a password of MaxPasswordBytes in
// base64 and a PHC string take under 2 KiB.
const maxWorkerLine = 64 << 10

// RunHashWorker is the hash worker's main: it gives the whole process the
// lowest priority (nice 19) and answers requests on stdin and stdout until
// stdin ends (the server closed it or died).
func RunHashWorker() error {
	lowerProcessPriority()
	return ServeWorker(os.Stdin, os.Stdout)
}

// ServeWorker answers the requests read from r on w, one at a time, until r
// ends. A request it cannot read ends it with an error.
func ServeWorker(r io.Reader, w io.Writer) error {
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 4096), maxWorkerLine)
	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req workerRequest
		var resp workerResponse
		switch err := json.Unmarshal(in.Bytes(), &req); {
		case err != nil:
			resp.Error = "request: " + err.Error()
		case len(req.Password) > MaxPasswordBytes:
			resp.Error = "password too long"
		case req.Op == "hash" && req.Params != nil:
			resp.Hash = hashPHC(*req.Params, req.Password)
		case req.Op == "verify":
			parsed, err := parsePHC(req.Hash)
			if err != nil {
				resp.Error = err.Error()
			} else {
				resp.OK = parsed.matches(req.Password)
			}
		default:
			resp.Error = fmt.Sprintf("unknown request %q", req.Op)
		}
		if err := enc.Encode(resp); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return in.Err()
}

// UseWorkers makes h run its computations in child processes started as
// `path args...` (which must call RunHashWorker), at most as many as h's
// concurrency, each serving one caller at a time. Workers start when first
// needed; one that dies, or whose caller's context ends mid-computation, is
// killed and replaced. When no worker can do a computation (none starts, or
// two in a row die on it), h does it in process rather than fail the sign-in,
// and reports the failure through log (at most once a minute) and Fallbacks.
// Call it before h is used, and Close h when done.
func (h *Hasher) UseWorkers(log *slog.Logger, path string, args ...string) {
	h.pool = &workerPool{path: path, args: args, idle: make(chan *worker, h.concurrency), log: log}
}

// Fallbacks returns how many computations ran in process because no hash
// worker could do them.
func (h *Hasher) Fallbacks() int64 {
	if h.pool == nil {
		return 0
	}
	return h.pool.fallbacks.Load()
}

// fallBack reports whether a worker computation that ended with err should be
// done in process instead: when the workers failed, not when the caller's
// context ended, the pool is closed or a worker refused the request.
func (h *Hasher) fallBack(ctx context.Context, err error) bool {
	var refused *workerRefusal
	if err == nil || ctx.Err() != nil || errors.Is(err, errPoolClosed) || errors.As(err, &refused) {
		return false
	}
	p := h.pool
	p.fallbacks.Add(1)
	now := time.Now().UnixNano()
	if last := p.lastWarn.Load(); now-last >= int64(time.Minute) && p.lastWarn.CompareAndSwap(last, now) && p.log != nil {
		p.log.ErrorContext(ctx, "password hash workers failed: hashing in the server's process (slower under a flood of sign-ins)",
			"error", err, "fallbacks", p.fallbacks.Load())
	}
	return true
}

// workerRefusal is a worker's answer that the request was malformed: doing it
// in process would fail the same way.
type workerRefusal struct{ msg string }

func (e *workerRefusal) Error() string { return "password hash worker: " + e.msg }

// Close stops h's workers, if any; a computation still running finishes
// first, and its worker stops then. Hashing after Close fails.
func (h *Hasher) Close() {
	if h.pool != nil {
		h.pool.close()
	}
}

var errPoolClosed = errors.New("password hasher: closed")

type workerPool struct {
	path string
	args []string
	idle chan *worker // capacity: the hasher's concurrency
	log  *slog.Logger

	fallbacks atomic.Int64 // computations done in process instead
	lastWarn  atomic.Int64 // unix ns of the last fallback logged

	mu     sync.Mutex
	closed bool
}

type worker struct {
	cmd     *exec.Cmd
	in      *os.File // the worker's stdin
	outFile *os.File // the worker's stdout, read through out
	out     *bufio.Reader
}

func (p *workerPool) hash(ctx context.Context, params Argon2Params, password string) (string, error) {
	resp, err := p.call(ctx, workerRequest{Op: "hash", Password: []byte(password), Params: &params})
	return resp.Hash, err
}

func (p *workerPool) verify(ctx context.Context, encoded, password string) (bool, error) {
	resp, err := p.call(ctx, workerRequest{Op: "verify", Hash: encoded, Password: []byte(password)})
	return resp.OK, err
}

// call sends req to an idle worker (or a new one) and returns its answer. A
// worker that fails is replaced and the request tried once more on a fresh one.
func (p *workerPool) call(ctx context.Context, req workerRequest) (workerResponse, error) {
	line, err := json.Marshal(req)
	if err != nil {
		return workerResponse{}, err
	}
	line = append(line, '\n')
	for attempt := 0; ; attempt++ {
		w, err := p.get()
		if err != nil {
			return workerResponse{}, err
		}
		resp, err := w.roundTrip(ctx, line)
		if err == nil {
			p.put(w)
			if resp.Error != "" {
				return resp, &workerRefusal{resp.Error}
			}
			return resp, nil
		}
		w.stop() // never reuse a pipe that may hold half an answer
		if ctx.Err() != nil {
			return workerResponse{}, ctx.Err()
		}
		if attempt == 1 {
			return workerResponse{}, err
		}
	}
}

// roundTrip writes line and reads one answer. When ctx ends first, the
// worker is killed, which ends the read; the caller must then stop it.
func (w *worker) roundTrip(ctx context.Context, line []byte) (workerResponse, error) {
	var resp workerResponse
	stop := context.AfterFunc(ctx, func() { w.cmd.Process.Kill() }) //nolint:errcheck // it may be gone already
	_, err := w.in.Write(line)
	var answer []byte
	if err == nil {
		answer, err = w.out.ReadBytes('\n')
	}
	if !stop() {
		return resp, ctx.Err()
	}
	if err != nil {
		return resp, fmt.Errorf("password hash worker %d: %w", w.cmd.Process.Pid, err)
	}
	if err := json.Unmarshal(answer, &resp); err != nil {
		return resp, fmt.Errorf("password hash worker %d: answer: %w", w.cmd.Process.Pid, err)
	}
	return resp, nil
}

// stop kills the worker, reaps it and closes its pipes.
func (w *worker) stop() {
	w.cmd.Process.Kill() //nolint:errcheck // it may be gone already
	w.cmd.Wait()         //nolint:errcheck // killed: the status says so
	w.in.Close()
	w.outFile.Close()
}

func (p *workerPool) get() (*worker, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errPoolClosed
	}
	select {
	case w := <-p.idle:
		return w, nil
	default:
		return p.start()
	}
}

func (p *workerPool) put(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		w.stop()
		return
	}
	select {
	case p.idle <- w:
	default: // cannot happen while the semaphore bounds the callers
		w.stop()
	}
}

func (p *workerPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case w := <-p.idle:
			w.stop()
		default:
			return
		}
	}
}

// start runs a new worker. It forks from a thread at the lowest priority, so
// the worker is at nice 19 from its first instruction, and every thread it
// creates inherits that (RunHashWorker lowers it again in any case).
func (p *workerPool) start() (*worker, error) {
	childIn, in, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("password hash worker: %w", err)
	}
	out, childOut, err := os.Pipe()
	if err != nil {
		childIn.Close()
		in.Close()
		return nil, fmt.Errorf("password hash worker: %w", err)
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdin, cmd.Stdout = childIn, childOut
	cmd.Stderr = os.Stderr
	if p.log != nil {
		// A worker's panic lands in the server's log, as log records of its own
		// (JSON in production), not as raw lines among them.
		cmd.Stderr = &lineLog{log: p.log}
	}
	background(func() { err = cmd.Start() })
	// The child has its own copies; ours would keep the pipes open after it dies.
	childIn.Close()
	childOut.Close()
	if err != nil {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("password hash worker: %w", err)
	}
	return &worker{cmd: cmd, in: in, outFile: out, out: bufio.NewReader(out)}, nil
}

// lineLog writes each line written to it as an ERROR record of log: a hash
// worker's standard error (say, a panic's trace). A line over maxLogLine bytes
// is cut there; blank lines are left out.
type lineLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
}

const maxLogLine = 4 << 10

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.partial = append(l.partial, b[:min(len(b), maxLogLine-len(l.partial))]...)
			break
		}
		if line := append(l.partial, b[:min(i, maxLogLine-len(l.partial))]...); len(bytes.TrimSpace(line)) > 0 {
			l.log.Error("password hash worker", "stderr", string(line))
		}
		l.partial = l.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}
