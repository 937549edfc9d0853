// Package rack makes a cloud feel like one big Linux machine to the Go
// program running on it. A program forks children (goroutines, OS processes
// or cloud VMs, with the same code), waits for their exit status, signals
// them, connects them with pipes, groups them, and reads and writes files,
// all coordinated through an object store with no central server.
//
// A program is one function run by Main:
//
//	func main() { rack.Main(run) }
//
//	func run(ctx context.Context, self *rack.Self) error {
//		child, err := self.Fork(ctx, rack.Spec{Args: []string{"work"}})
//		...
//		return child.Wait(ctx)
//	}
//
// The namespace (the "machine") is named by a URL: mem:// (the default, an
// in-memory store with goroutine processes), file:///dir, and the schemes
// driver packages register (see Open and RegisterScheme): importing
// github.com/rackfork/rack/openstack adds swift:// and openstack://.
package rack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/count"
	"github.com/rackfork/rack/internal/record"
	"github.com/rackfork/rack/internal/retry"
)

// Errors that errors.Is recognises.
var (
	// ErrLost: the infrastructure failed the process (it never started,
	// its machine or kernel vanished); it did not decide its own exit.
	ErrLost = errors.New("rack: process lost")
	// ErrClosed: the kernel (or the pipe end, or the file) was closed.
	ErrClosed = errors.New("rack: closed")
	// ErrKilled: the calling process was killed; its further writes are
	// refused (fencing).
	ErrKilled = errors.New("rack: process killed")
	// ErrInvalid: an argument is malformed; the message names it.
	ErrInvalid = errors.New("rack: invalid argument")
	// ErrNotFound: no such process, group or pipe.
	ErrNotFound = errors.New("rack: not found")
)

// PID identifies a process (and a group) in a namespace. The namespace
// itself is PID 1; user processes start at 100.
type PID int64

// InitPID is the namespace's own pid: the parent of root processes.
const InitPID PID = 1

const (
	firstPID       = 100
	pidBlockSize   = 100
	namespaceLabel = "rack"
)

// Option configures a Kernel.
type Option func(*config)

type config struct {
	grace       time.Duration
	lease       time.Duration
	kernelID    string // set: the forker made this kernel's lease (registerChild)
	recordTTL   time.Duration
	maxRunning  int
	stdout      io.Writer
	stderr      io.Writer
	stdin       io.Reader
	logger      *slog.Logger
	retry       retry.Policy
	segmentSize int
	flushDelay  time.Duration
	pollMin     time.Duration
	pollMax     time.Duration
	container   string
	namespace   string
	url         string
	hosts       hostsConfig // WithHosts

	// requestTimeout: each store request's timeout without progress (see
	// WithRequestTimeout).
	requestTimeout time.Duration
	// retrySet: WithRetry gave the store's policy; else New bounds each
	// store operation by the lease.
	retrySet bool
}

func defaultConfig() config {
	return config{
		grace:       10 * time.Second,
		lease:       30 * time.Second,
		recordTTL:   7 * 24 * time.Hour,
		stdout:      os.Stdout,
		stderr:      os.Stderr,
		stdin:       os.Stdin,
		logger:      slog.New(slog.DiscardHandler),
		retry:       retry.DefaultPolicy,
		segmentSize: 0,  // chosen by New, from the store
		flushDelay:  -1, // chosen by New, from the store
		pollMin:     5 * time.Millisecond,
		pollMax:     1500 * time.Millisecond,
		container:   namespaceLabel,
		namespace:   "default",

		requestTimeout: DefaultRequestTimeout,
	}
}

// WithGracePeriod sets how long SIGTERM waits before escalating to SIGKILL
// (default 10 s).
func WithGracePeriod(d time.Duration) Option { return func(c *config) { c.grace = d } }

// WithLease sets the kernel lease time: how long after this kernel's death
// others may declare its processes lost (default 30 s).
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// WithRecordTTL sets how long the namespace's records live in the store
// before they expire (default 7 days), so a crashed kernel leaves nothing
// forever.
func WithRecordTTL(d time.Duration) Option { return func(c *config) { c.recordTTL = d } }

// WithMaxRunning bounds how many processes this kernel runs at once; more
// forks queue until a running one exits. 0 (the default) means no bound.
func WithMaxRunning(n int) Option { return func(c *config) { c.maxRunning = n } }

// WithConsole sets the terminal of this kernel: where processes whose
// output is the console write, and where a root process reads its input.
// The default is os.Stdin, os.Stdout and os.Stderr.
func WithConsole(stdin io.Reader, stdout, stderr io.Writer) Option {
	return func(c *config) { c.stdin, c.stdout, c.stderr = stdin, stdout, stderr }
}

// WithLogger sets the logger for the kernel's own events (default: none).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRetry sets how transient store failures are retried: at most
// attempts tries per operation, with jittered backoff from base to max.
// By default an operation is bounded in time instead, by the lease (see
// WithLease and the README's "Deadlines and outages"): it retries, with
// backoff from 10 ms to 1 s, for as long as the lease, so that the kernel
// rides through an outage its lease survives.
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(c *config) { c.retry, c.retrySet = retry.Policy{Attempts: attempts, Base: base, Max: max}, true }
}

// DefaultRequestTimeout is how long a store request may go without
// progress before it is abandoned and retried (see WithRequestTimeout).
const DefaultRequestTimeout = 5 * time.Second

// WithRequestTimeout sets how long one store request may go without
// progress before the kernel abandons it and tries again (default
// DefaultRequestTimeout, 5 s; 0 for none, leaving only the driver's own
// timeouts): a request without a body waits that long for its answer, a
// Put that long after the store last took a byte of its body, and a
// download that long for its next bytes, so a slow transfer that keeps
// moving is never cut. Retrying follows the usual rules (a create-only
// Put carries its writer token). The URL parameter timeout (as in
// swift://host/ns?timeout=10s) sets it too. Children started as new
// programs get it through the namespace's URL.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) { c.requestTimeout = d }
}

// WithPipeBuffer sets the largest pipe segment and how long small writes
// may wait to be batched into one. The defaults are the store's
// backend.PipeHints (size 0 and a negative delay keep them): 1 MiB in
// memory and in local files, 4 MiB on a store that gives none (Swift);
// 2 ms on an in-memory store, and 0 on any other, where a Write returns
// only once its bytes are stored, since the OS process holding a batch
// could die with it while its reader lives on elsewhere. A positive delay
// trades that guarantee for fewer requests.
func WithPipeBuffer(size int, delay time.Duration) Option {
	return func(c *config) { c.segmentSize, c.flushDelay = size, delay }
}

// WithPolling sets the backoff bounds used when the store cannot notify
// (defaults 5 ms to 1.5 s: a wait polls at 5, 10, 15 and 20 ms, then
// doubles its delay; an idle kernel costs under one request per second).
func WithPolling(min, max time.Duration) Option {
	return func(c *config) { c.pollMin, c.pollMax = min, max }
}

// WithURL sets the URL by which children started as new programs (by
// computes that are not in-process) join the namespace. Open sets it.
func WithURL(url string) Option { return func(c *config) { c.url = url } }

// WithNamespace names the namespace: its container in the store (default
// "rack").
func WithNamespace(name string) Option {
	return func(c *config) { c.container, c.namespace = name, name }
}

// Kernel is one participant in a namespace: it forks, hosts and watches
// processes. There is one per OS process or VM; kernels of a namespace
// coordinate only through the store.
type Kernel struct {
	cfg    config
	id     string
	remote bool // the compute starts new programs, which host their process

	// Its parts, each with its own state (compose wires them).
	ns      nsStore     // the namespace's records (store.go)
	pids    pidAlloc    // pid blocks (pids.go)
	leases  leaseKeeper // this kernel's lease, and reading others' (lease.go)
	inbox   inbox       // signals and exit notes from other kernels (inbox.go)
	records recordCache // immutable records read or written (cache.go)
	sched   scheduler   // the process table and run queue (sched.go)
	groups  groupState  // group members known here (group.go)
	files   fileSet     // open files not owned by a process (file.go)
	compute backend.Compute
	// store is the store as given to New, for its optional abilities.
	store backend.Store
	// sameMachine: the compute starts children on this machine, handing
	// them their environment privately (backend.SameMachine).
	sameMachine bool
	// startRetrier: the compute retries its own Starts (backend.StartRetrier).
	startRetrier bool
	counter      *count.Store // counts the store's requests (Stats)

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background work, which Close waits for

	orphaned atomic.Bool  // a process it hosted was killed because its forker died
	seq      atomic.Int64 // makes names unique: pipes, fifos, inbox messages
	// placer is the view of the namespace's hosts (WithHosts).
	placer placer
	// remoteWake wakes watchRemotes when a remote child has started.
	remoteWake chan struct{}
	// deletes: the background deletes of consumed pipe segments.
	deletes segmentDeletes
}

// New composes a kernel from drivers. The kernel owns them: Close closes
// them. New finds the drivers' optional abilities (backend.Notifier,
// LooseCreate, PipeHinter; InProcess, SameMachine, SelfDeleter,
// ExitSelfDeleter, Reaper, LogReader, FailureReporter, Sweeper) on the
// drivers given, so a driver that wraps
// another must implement the ones it passes on.
func New(ctx context.Context, store backend.Store, compute backend.Compute, opts ...Option) (*Kernel, error) {
	if store == nil || compute == nil {
		return nil, fmt.Errorf("rack: new: %w: store and compute are required", ErrInvalid)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.segmentSize < 0 || cfg.grace < 0 || cfg.lease <= 0 || cfg.pollMin <= 0 || cfg.pollMax < cfg.pollMin || cfg.requestTimeout < 0 {
		return nil, fmt.Errorf("rack: new: %w: option out of range", ErrInvalid)
	}
	if err := validContainer(cfg.container); err != nil {
		return nil, fmt.Errorf("rack: new: namespace: %w", err)
	}
	if err := cfg.hosts.limits.check(); err != nil {
		return nil, fmt.Errorf("rack: new: %w", err)
	}
	counted, counter := count.Wrap(store, cfg.logger)
	policy := cfg.retry
	if !cfg.retrySet {
		// Bounded by the lease: an outage the lease survives is ridden
		// through; past it, this kernel's processes are lost anyway.
		policy.Attempts, policy.Budget = 0, cfg.lease
	}
	policy.RequestTimeout = cfg.requestTimeout
	if cfg.url != "" {
		cfg.url = withTimeoutParam(cfg.url, cfg.requestTimeout)
	}
	k := &Kernel{
		cfg:     cfg,
		ns:      nsStore{store: retry.Wrap(counted, policy)},
		counter: counter,
		compute: compute,
		store:   store,
		id:      cfg.kernelID,

		remoteWake: make(chan struct{}, 1),
	}
	if k.id == "" {
		k.id = newID()
	}
	k.placer.hosts, k.placer.placed = map[string]*hostView{}, map[PID]hostSlot{}
	k.groups.members = make(map[PID]map[PID]struct{})
	k.groups.names = make(map[PID]string)
	k.ns.notifier, _ = store.(backend.Notifier)
	if lc, ok := store.(backend.LooseCreate); ok {
		k.ns.looseCreate = lc.LooseCreate()
	}
	// Pipe buffering as the store advises (the raw store: the kernel's
	// wrappers add retries and counts, not abilities).
	hints := backend.PipeHints{SegmentSize: 4 << 20} // a remote store's: every request costs it more than its bytes
	if ph, ok := store.(backend.PipeHinter); ok {
		if h := ph.PipeHints(); h.Valid() {
			hints = h
		} else {
			cfg.logger.Warn("rack: ignoring the store's pipe hints: out of range", "segment", h.SegmentSize, "delay", h.FlushDelay)
		}
	}
	if k.cfg.segmentSize == 0 {
		k.cfg.segmentSize = hints.SegmentSize
	}
	if k.cfg.flushDelay < 0 {
		k.cfg.flushDelay = hints.FlushDelay
	}
	if sm, ok := compute.(backend.SameMachine); ok {
		k.sameMachine = sm.SameMachine()
	}
	if sr, ok := compute.(backend.StartRetrier); ok {
		k.startRetrier = sr.RetriesStart()
	}
	if ip, ok := compute.(backend.InProcess); !ok || !ip.InProcess() {
		k.remote = true
		if cfg.url == "" {
			return nil, fmt.Errorf("rack: new: %w: a compute that starts new programs needs the namespace's URL (rack.WithURL)", ErrInvalid)
		}
		if u, err := url.Parse(cfg.url); err != nil || hasPassword(u) {
			// Children get it in their environment (RACK_URL), which other
			// users of their machine may read, and errors would show it.
			return nil, fmt.Errorf("rack: new: %w: the namespace's URL (rack.WithURL) must parse and hold no password: a child gets its credential another way", ErrInvalid)
		}
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.compose()
	if err := k.ensureContainer(ctx); err != nil {
		k.cancel()
		return nil, fmt.Errorf("rack: new: namespace container %q: %w", cfg.container, err)
	}
	if cfg.kernelID != "" {
		k.leases.renewed.Store(time.Now().UnixNano()) // its forker just made it
	}
	if cfg.kernelID == "" {
		if err := k.ns.mark(ctx); err != nil {
			k.cancel()
			return nil, fmt.Errorf("rack: new: namespace marker: %w", err)
		}
		if err := k.leases.renew(ctx); err != nil {
			k.cancel()
			return nil, fmt.Errorf("rack: new: lease: %w", err)
		}
	}
	k.wg.Add(2)
	go k.watchRemotes()
	go k.leases.loop(k.ctx, &k.wg)
	if cfg.kernelID == "" {
		// A kernel its forker registered reads its inbox once it hosts
		// the process (adopt): its host record is visible from the
		// start, so a signal can come first, and would find nobody.
		k.inbox.start(k.ctx, &k.wg, 0)
	}
	return k, nil
}

// ensureContainer makes sure the namespace's container is there. A kernel
// that joins a namespace (a child's, a host's: its forker made it) looks
// with a one-object listing first: on Swift a container PUT writes the
// container's and the account's databases, and ten hosts starting side
// by side, each creating a busy container, waited past the request
// timeout and failed to start. A child's narrow credential may not create
// containers at all: a listing then says the namespace it joins exists.
func (k *Kernel) ensureContainer(ctx context.Context) error {
	exists := func() bool {
		_, err := k.ns.store.List(ctx, k.cfg.container, backend.ListOptions{Limit: 1})
		return err == nil
	}
	joining := k.cfg.kernelID != ""
	if joining && exists() {
		return nil
	}
	if err := k.ns.store.CreateContainer(ctx, k.cfg.container); err != nil && !exists() {
		return err
	}
	return nil
}

// compose sets up the kernel's parts once New has its configuration, id
// and lifetime.
func (k *Kernel) compose() {
	k.ns.container, k.ns.recordTTL = k.cfg.container, k.cfg.recordTTL
	k.ns.pollMin, k.ns.pollMax = k.cfg.pollMin, k.cfg.pollMax
	k.ns.closing = k.ctx.Done()
	k.pids.ns, k.pids.id = &k.ns, k.id
	k.leases.ns, k.leases.id, k.leases.ttl, k.leases.log = &k.ns, k.id, k.cfg.lease, k.cfg.logger
	k.inbox.ns, k.inbox.id, k.inbox.log, k.inbox.receive = &k.ns, k.id, k.cfg.logger, k.receive
	k.records.ns = &k.ns
	k.sched.max, k.sched.procs = k.cfg.maxRunning, make(map[PID]*proc)
}

// Stats counts the store requests this kernel made, by kind ("put",
// "create-only put", "get", "head", "list", "delete", "container"),
// retries included: the figures to check against the request budget in
// the README.
type Stats map[string]int64

// Stats returns the requests this kernel has made to its store so far.
func (k *Kernel) Stats() Stats {
	counts := k.counter.Counts()
	out := make(Stats, len(counts)+1)
	var total int64
	for i, n := range counts {
		out[count.KindNames[i]] = n
		total += n
	}
	out["total"] = total
	return out
}

// Logs reads what process pid printed outside rack's streams (to its OS
// stdout and stderr: a panic's stack, a library's prints), as its compute
// keeps it: for OS-process children, DIR/logs of a file:// namespace. With
// follow it also waits for more until the process has ended. Goroutine
// processes have no log of their own (their output is their kernel's).
func (k *Kernel) Logs(ctx context.Context, pid PID, follow bool) (io.ReadCloser, error) {
	lr, ok := k.compute.(backend.LogReader)
	if !ok {
		return nil, wrapf("rack: logs of process %d: %w: this namespace's compute keeps no logs (goroutine processes print to their kernel's console)", pid, ErrInvalid)
	}
	rc, err := lr.Logs(ctx, k.instanceName(pid), follow)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, wrapf("rack: logs of process %d: %w: no log (it runs in its parent's OS process, or has not started)", pid, ErrNotFound)
	}
	if err != nil {
		return nil, wrapf("rack: logs of process %d: %w", pid, err)
	}
	return rc, nil
}

// idle reports whether the kernel hosts nothing: no process, queued fork
// or open file.
func (k *Kernel) idle() bool {
	return k.sched.empty() && k.files.len() == 0
}

// Namespace returns the namespace's name: the container that holds its
// records, which files cannot be written into.
func (k *Kernel) Namespace() string { return k.cfg.container }

// ID is this kernel's unique id in the namespace.
func (k *Kernel) ID() string { return k.id }

// Close kills every process this kernel still runs (each subtree leaves
// first), stops its background work and closes its drivers. It is
// idempotent.
func (k *Kernel) Close() error {
	roots, ok := k.sched.close()
	if !ok {
		return nil
	}
	files := k.files.all()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range roots {
		k.kill(ctx, p, SIGKILL)
	}
	for _, f := range files {
		f.abort(fmt.Errorf("rack: kernel closed before %s was closed: %w", f.path, ErrClosed))
	}
	_ = k.ns.deleteSmall(ctx, record.KernelKey(k.id))
	k.cancel()
	k.wg.Wait()
	return errors.Join(k.compute.Close(), k.ns.store.Close())
}

// Process returns a handle to any process of the namespace.
func (k *Kernel) Process(ctx context.Context, pid PID) (*Process, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	rec, err := k.records.proc(ctx, pid)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, wrapf("rack: process %d: %w", pid, ErrNotFound)
	}
	if err != nil {
		return nil, wrapf("rack: process %d: %w", pid, err)
	}
	return &Process{k: k, pid: pid, rec: rec, local: k.hosted(pid)}, nil
}

// kernelIDLen is the length of newID's ids: 16 hex digits.
const kernelIDLen = 16

// newID returns a fresh random kernel id.
func newID() string {
	var b [kernelIDLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validName checks a user-given name (process, group, fifo, namespace).
func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > 255 {
		return fmt.Errorf("%w: %s %.40q... is longer than 255 bytes", ErrInvalid, what, s)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalid, what, s)
	}
	if strings.ContainsAny(s, "/\x00") || s == "." || s == ".." {
		return fmt.Errorf("%w: %s %q may not contain '/' or NUL, nor be \".\" or \"..\"", ErrInvalid, what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q contains a control character", ErrInvalid, what, s)
		}
	}
	return nil
}

// hasPassword reports whether u carries a password in its user info.
func hasPassword(u *url.URL) bool {
	if u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}
