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
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
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

// WithRetry sets how transient store failures are retried.
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(c *config) { c.retry = retry.Policy{Attempts: attempts, Base: base, Max: max} }
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
	cfg      config
	remote   bool          // the compute starts new programs, which host their process
	leaseOff atomic.Bool   // tests: stop renewing the lease, as a dead kernel would
	orphaned atomic.Bool   // a process it hosted was killed because its forker died
	store    backend.Store // with retries, counted
	counter  *count.Store
	notifier backend.Notifier
	// looseCreate: the store's create-only puts can race (backend.LooseCreate).
	looseCreate bool
	compute     backend.Compute
	// sameMachine: the compute starts children on this machine, handing
	// them their environment privately (backend.SameMachine).
	sameMachine bool
	id          string

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	procs    map[PID]*proc // processes this kernel hosts and that still run
	pidNext  int64
	pidEnd   int64
	pidBlock int64
	pending  []*proc            // forks queued for the scheduler
	files    map[*File]struct{} // open files not owned by a process
	running  int
	seq      atomic.Int64
	// remoteWake wakes watchRemotes when a remote child has started.
	remoteWake chan struct{}
	// deletes bounds the background deletes of consumed pipe segments.
	deletes chan struct{}

	groups groupState

	cache sync.Map // PID -> *record.Proc and exit records; both immutable
	exits sync.Map // PID -> *record.Exit
	hosts sync.Map // PID -> kernel id, from host records
}

// New composes a kernel from drivers. The kernel owns them: Close closes
// them. New finds the drivers' optional abilities (backend.Notifier,
// LooseCreate, PipeHinter; InProcess, SameMachine, SelfDeleter, LogReader,
// FailureReporter, Sweeper) on the drivers given, so a driver that wraps
// another must implement the ones it passes on.
func New(ctx context.Context, store backend.Store, compute backend.Compute, opts ...Option) (*Kernel, error) {
	if store == nil || compute == nil {
		return nil, fmt.Errorf("rack: new: %w: store and compute are required", ErrInvalid)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.segmentSize < 0 || cfg.grace < 0 || cfg.lease <= 0 || cfg.pollMin <= 0 || cfg.pollMax < cfg.pollMin {
		return nil, fmt.Errorf("rack: new: %w: option out of range", ErrInvalid)
	}
	if err := validContainer(cfg.container); err != nil {
		return nil, fmt.Errorf("rack: new: namespace: %w", err)
	}
	counted, counter := count.Wrap(store, cfg.logger)
	k := &Kernel{
		cfg:     cfg,
		store:   retry.Wrap(counted, cfg.retry),
		counter: counter,
		compute: compute,
		id:      cfg.kernelID,
		procs:   make(map[PID]*proc),

		remoteWake: make(chan struct{}, 1),
		deletes:    make(chan struct{}, 8),
	}
	if k.id == "" {
		k.id = newID()
	}
	k.groups.members = make(map[PID]map[PID]struct{})
	k.groups.names = make(map[PID]string)
	k.notifier, _ = store.(backend.Notifier)
	if lc, ok := store.(backend.LooseCreate); ok {
		k.looseCreate = lc.LooseCreate()
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
	if ip, ok := compute.(backend.InProcess); !ok || !ip.InProcess() {
		k.remote = true
		if cfg.url == "" {
			return nil, fmt.Errorf("rack: new: %w: a compute that starts new programs needs the namespace's URL (rack.WithURL)", ErrInvalid)
		}
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	if err := k.store.CreateContainer(ctx, cfg.container); err != nil {
		// A child's narrow credential may not create containers, but the
		// namespace it joins exists: a listing says so.
		if _, lerr := k.store.List(ctx, cfg.container, backend.ListOptions{Limit: 1}); lerr != nil {
			k.cancel()
			return nil, fmt.Errorf("rack: new: namespace container %q: %w", cfg.container, err)
		}
	}
	if cfg.kernelID == "" {
		if err := k.renewLease(ctx); err != nil {
			k.cancel()
			return nil, fmt.Errorf("rack: new: lease: %w", err)
		}
	}
	k.wg.Add(2)
	go k.watchRemotes()
	go k.leaseLoop()
	if cfg.kernelID == "" {
		// A kernel its forker registered reads its inbox once it hosts
		// the process (adopt): its host record is visible from the
		// start, so a signal can come first, and would find nobody.
		k.startInbox(0)
	}
	return k, nil
}

// startInbox starts the delivery of signals sent to this kernel, the
// first look after wait.
func (k *Kernel) startInbox(wait time.Duration) {
	k.wg.Add(1)
	go k.inboxLoop(wait)
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
		return nil, fmt.Errorf("rack: logs of process %d: %w: this namespace's compute keeps no logs (goroutine processes print to their kernel's console)", pid, ErrInvalid)
	}
	rc, err := lr.Logs(ctx, k.instanceName(pid), follow)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("rack: logs of process %d: %w: no log (it runs in its parent's OS process, or has not started)", pid, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("rack: logs of process %d: %w", pid, err)
	}
	return rc, nil
}

// idle reports whether the kernel hosts nothing: no process, queued fork
// or open file.
func (k *Kernel) idle() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.procs) == 0 && len(k.pending) == 0 && len(k.files) == 0
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
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	roots := make([]*proc, 0, len(k.procs))
	for _, p := range k.procs {
		roots = append(roots, p)
	}
	for _, p := range k.pending {
		roots = append(roots, p)
	}
	files := make([]*File, 0, len(k.files))
	for f := range k.files {
		files = append(files, f)
	}
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range roots {
		k.kill(ctx, p, SIGKILL)
	}
	for _, f := range files {
		f.abort(fmt.Errorf("rack: kernel closed before %s was closed: %w", f.path, ErrClosed))
	}
	_ = k.store.Delete(ctx, k.cfg.container, record.KernelKey(k.id))
	k.cancel()
	k.wg.Wait()
	return errors.Join(k.compute.Close(), k.store.Close())
}

func (k *Kernel) isClosed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closed
}

// put writes a record with the namespace's expiry.
func (k *Kernel) put(ctx context.Context, key string, data []byte, createOnly bool) error {
	return k.putSummarized(ctx, key, data, createOnly, "")
}

// putSummarized writes a record with its ps summary as content type (see
// record.ProcSummary), so that ps reads it from listings.
func (k *Kernel) putSummarized(ctx context.Context, key string, data []byte, createOnly bool, summary string) error {
	_, err := k.store.Put(ctx, k.cfg.container, key, bytesReader(data), &backend.PutOptions{
		CreateOnly: createOnly, DeleteAfter: k.cfg.recordTTL, ContentType: summary,
	})
	return err
}

// get reads a whole record.
func (k *Kernel) get(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := k.store.Get(ctx, k.cfg.container, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (k *Kernel) getRecord(ctx context.Context, key string, v any) error {
	data, err := k.get(ctx, key)
	if err != nil {
		return err
	}
	return record.Decode(key, data, v)
}

// changed returns a channel closed at the next change under key, or nil
// when the store cannot notify (then the caller polls).
func (k *Kernel) changed(key string) <-chan struct{} {
	if k.notifier == nil {
		return nil
	}
	return k.notifier.Changed(k.cfg.container, key)
}

// waitChange waits for ch (a notification), stop, or, without one, for the poll
// delay; it returns the next delay.
func (k *Kernel) waitChange(ctx context.Context, ch, stop <-chan struct{}, delay time.Duration) (time.Duration, error) {
	if ch != nil {
		select {
		case <-ch:
			return delay, nil
		case <-stop:
			return delay, ErrClosed
		case <-ctx.Done():
			return delay, context.Cause(ctx)
		case <-k.ctx.Done():
			return delay, ErrClosed
		}
	}
	if delay == 0 {
		delay = k.cfg.pollMin
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
		return delay, ErrClosed
	case <-ctx.Done():
		return delay, context.Cause(ctx)
	case <-k.ctx.Done():
		return delay, ErrClosed
	}
	return k.nextDelay(delay), nil
}

// nextDelay is the poll backoff: a few polls at pollMin (what is awaited
// often comes within a round trip or two), then doubling up to pollMax.
func (k *Kernel) nextDelay(delay time.Duration) time.Duration {
	if delay < 4*k.cfg.pollMin {
		return delay + k.cfg.pollMin
	}
	return min(2*delay, k.cfg.pollMax)
}

// allocPID hands out a pid from this kernel's block, claiming a new block
// (one create-only object) when it runs out.
func (k *Kernel) allocPID(ctx context.Context) (PID, error) {
	k.mu.Lock()
	if k.pidNext < k.pidEnd {
		p := k.pidNext
		k.pidNext++
		k.mu.Unlock()
		return PID(p), nil
	}
	block := k.pidBlock
	k.mu.Unlock()
	block, err := k.claimBlock(ctx, block)
	if err != nil {
		return 0, fmt.Errorf("rack: allocate pid: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pidNext >= k.pidEnd { // nobody refilled while we claimed
		k.pidBlock = block + 1
		k.pidNext = firstPID + block*pidBlockSize
		k.pidEnd = k.pidNext + pidBlockSize
	} else {
		// Another goroutine refilled first; our block is wasted, which
		// only leaves a gap in the pid space.
	}
	p := k.pidNext
	k.pidNext++
	return PID(p), nil
}

// leaveBlock stops handing out pids of the block that holds pid, if it is
// still this kernel's current one.
func (k *Kernel) leaveBlock(pid PID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if int64(pid) >= k.pidEnd-pidBlockSize && int64(pid) < k.pidEnd {
		k.pidNext = k.pidEnd
	}
}

// claimBlock claims the first free block at or after hint. Blocks are
// claimed densely, so the first free one is found by probing (HEAD is
// strongly consistent) rather than by listing.
func (k *Kernel) claimBlock(ctx context.Context, hint int64) (int64, error) {
	exists := func(b int64) (bool, error) {
		_, err := k.store.Head(ctx, k.cfg.container, record.PIDKey(b))
		if errors.Is(err, backend.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	// Exponential probe, then binary search for the first free block.
	lo, step := hint, int64(1)
	for {
		ok, err := exists(lo)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		hint, lo = lo, lo+step
		step *= 2
	}
	for hint < lo {
		mid := hint + (lo-hint)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hint = mid + 1
		} else {
			lo = mid
		}
	}
	for b := lo; ; b++ {
		start := time.Now()
		err := k.put(ctx, record.PIDKey(b), record.Encode(map[string]string{"kernel": k.id}), true)
		if err == nil {
			if mine, err := k.stillMine(ctx, record.PIDKey(b), time.Since(start)); err != nil || mine {
				return b, err
			}
			continue // a rival's claim of the same block arrived last: it has it
		}
		if !errors.Is(err, backend.ErrExist) {
			return 0, err
		}
	}
}

// stillMine reports whether the claim at key, which this kernel has just
// created in took, still names this kernel. On a store whose creates are
// loose (backend.LooseCreate) a rival create in flight at the same moment
// also succeeds, and the later one stays: it started before ours ended, so
// it ends about one request later. Read back after twice took, then.
func (k *Kernel) stillMine(ctx context.Context, key string, took time.Duration) (bool, error) {
	if !k.looseCreate {
		return true, nil
	}
	t := time.NewTimer(max(2*took, 5*time.Millisecond))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return false, context.Cause(ctx)
	}
	var claim map[string]string
	if err := k.getRecord(ctx, key, &claim); err != nil {
		return false, err
	}
	return claim["kernel"] == k.id, nil
}

// renewLease refreshes this kernel's lease object.
func (k *Kernel) renewLease(ctx context.Context) error {
	return k.putLease(ctx, k.id, k.cfg.lease)
}

// putLease writes the lease of kernel id, good for lease.
func (k *Kernel) putLease(ctx context.Context, id string, lease time.Duration) error {
	_, err := k.store.Put(ctx, k.cfg.container, record.KernelKey(id),
		bytesReader(record.Encode(record.Lease{Kernel: id, Renewed: time.Now()})),
		&backend.PutOptions{DeleteAfter: lease, ContentType: record.LeaseSummary(int64(lease))})
	return err
}

func (k *Kernel) leaseLoop() {
	defer k.wg.Done()
	t := time.NewTicker(k.cfg.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-t.C:
			if k.leaseOff.Load() {
				continue
			}
			if err := k.renewLease(k.ctx); err != nil && k.ctx.Err() == nil {
				k.cfg.logger.Warn("rack: lease renewal failed", "kernel", k.id, "err", err)
			}
		}
	}
}

// leaseAlive reports whether kernel id's lease is still there.
func (k *Kernel) leaseAlive(ctx context.Context, id string) (bool, error) {
	if id == k.id {
		return true, nil
	}
	_, err := k.store.Head(ctx, k.cfg.container, record.KernelKey(id))
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// inboxLoop delivers signals that other kernels sent to processes hosted
// here. One listing serves every process of this kernel.
func (k *Kernel) inboxLoop(wait time.Duration) {
	defer k.wg.Done()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-k.ctx.Done():
			t.Stop()
			return
		}
	}
	prefix := record.SignalInbox(k.id)
	var delay time.Duration
	for first := true; ; first = false {
		// The first look goes without a watch: a short-lived child's
		// kernel then never sets one up (a signal sent in its first
		// pollMin waits that long).
		var ch <-chan struct{}
		if !first {
			ch = k.changed(prefix)
		}
		n := k.drainInbox(prefix)
		if n > 0 {
			delay = 0
		}
		// A notification can come before the listing shows the signal
		// (listings are eventually consistent): poll as well, with backoff
		// that each notification restarts.
		if delay == 0 {
			delay = k.cfg.pollMin
		}
		t := time.NewTimer(delay)
		select {
		case <-ch: // nil without a notifier: never ready
			delay = 0
		case <-t.C:
			if delay *= 2; delay > k.cfg.pollMax {
				delay = k.cfg.pollMax
			}
		case <-k.ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

func (k *Kernel) drainInbox(prefix string) int {
	ctx := k.ctx
	page, err := k.store.List(ctx, k.cfg.container, backend.ListOptions{Prefix: prefix})
	if err != nil {
		if ctx.Err() == nil {
			k.cfg.logger.Warn("rack: reading signal inbox", "kernel", k.id, "err", err)
		}
		return 0
	}
	for _, o := range page {
		var s record.Signal
		if err := k.getRecord(ctx, o.Name, &s); err != nil {
			if !errors.Is(err, backend.ErrNotFound) {
				k.cfg.logger.Warn("rack: reading signal", "name", o.Name, "err", err)
			}
			continue
		}
		_ = k.store.Delete(ctx, k.cfg.container, o.Name)
		if s.Signal == sigchld {
			k.childExited(PID(s.Child))
			continue
		}
		p := k.hosted(PID(s.PID))
		switch {
		case p == nil:
		case Signal(s.Signal) == SIGKILL:
			// A kill waits for the subtree; the inbox must not.
			go k.deliver(k.ctx, p, SIGKILL)
		default:
			// In listing order, so one sender's signals arrive in the
			// order sent.
			k.deliver(k.ctx, p, Signal(s.Signal))
		}
	}
	return len(page)
}

// hosted returns the running process pid if this kernel hosts it.
func (k *Kernel) hosted(pid PID) *proc {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.procs[pid]
}

// ProcessInfo is one row of ps.
type ProcessInfo struct {
	PID      PID
	PPID     PID
	Group    PID // 0 when the process is in no group
	Name     string
	Args     []string
	State    State
	Status   string // free text set with SetStatus
	ExitCode int    // meaningful once State is Exited
	Signal   Signal // the signal that ended it, if any
	Started  time.Time
	Ended    time.Time
}

// State is a process's state as ps shows it.
type State string

// Process states.
const (
	Running State = "running"
	Exited  State = "exited"
	// Lost: the infrastructure failed it (recorded), or its kernel has
	// stopped renewing its lease and nobody has recorded its end yet.
	Lost State = "lost"
)

// Processes lists the processes of the namespace (ps), sorted by pid. It
// reads the store's listings, so a process forked, or ended, by another
// kernel a moment ago may be missing or shown running for a while. It
// costs a few listing pages per 10,000 processes (the records' summaries
// are in the listings), plus a read for each record without one.
func (k *Kernel) Processes(ctx context.Context) ([]ProcessInfo, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	v := &psView{k: k}
	entries, err := k.listAll(ctx, record.Procs)
	if err != nil {
		return nil, fmt.Errorf("rack: ps: %w", err)
	}
	pids := make([]PID, 0, len(entries))
	v.procs = make(map[PID]*record.Proc, len(entries))
	for _, o := range entries {
		n, err := record.ParseNumber(o.Name)
		if err != nil {
			continue
		}
		pids = append(pids, PID(n))
		if rec, ok := record.ParseProcSummary(n, o.ContentType); ok {
			v.procs[PID(n)] = rec
		}
	}
	if err := v.listAll(ctx); err != nil {
		return nil, fmt.Errorf("rack: ps: %w", err)
	}
	return v.infos(ctx, pids)
}

// list visits the objects of container c that opts select, page after
// page, until visit returns false or the listing ends (an empty page).
// Every listing helper below is a use of it.
func (k *Kernel) list(ctx context.Context, c string, opts backend.ListOptions, visit func(backend.ObjectInfo) bool) error {
	for {
		page, err := k.store.List(ctx, c, opts)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, o := range page {
			if !visit(o) {
				return nil
			}
		}
		opts.Marker = page[len(page)-1].Name
	}
}

// listAll lists the objects right under prefix in the namespace (no
// subdirectories).
func (k *Kernel) listAll(ctx context.Context, prefix string) ([]backend.ObjectInfo, error) {
	var out []backend.ObjectInfo
	err := k.list(ctx, k.cfg.container, backend.ListOptions{Prefix: prefix, Delimiter: "/"}, func(o backend.ObjectInfo) bool {
		if !o.Subdir {
			out = append(out, o)
		}
		return true
	})
	return out, err
}

// listRange lists the objects right under prefix named after from, up to
// and including to.
func (k *Kernel) listRange(ctx context.Context, prefix, from, to string) ([]backend.ObjectInfo, error) {
	var out []backend.ObjectInfo
	err := k.list(ctx, k.cfg.container, backend.ListOptions{Prefix: prefix, Marker: from, Delimiter: "/"}, func(o backend.ObjectInfo) bool {
		if o.Name > to {
			return false
		}
		if !o.Subdir {
			out = append(out, o)
		}
		return true
	})
	return out, err
}

// listDirs lists the "directories" right under prefix in the namespace.
func (k *Kernel) listDirs(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := k.list(ctx, k.cfg.container, backend.ListOptions{Prefix: prefix, Delimiter: "/"}, func(o backend.ObjectInfo) bool {
		if o.Subdir {
			out = append(out, o.Name)
		}
		return true
	})
	return out, err
}

// listAllIn lists every object of container c under prefix, at any depth.
func (k *Kernel) listAllIn(ctx context.Context, c, prefix string) ([]backend.ObjectInfo, error) {
	var out []backend.ObjectInfo
	err := k.list(ctx, c, backend.ListOptions{Prefix: prefix}, func(o backend.ObjectInfo) bool {
		out = append(out, o)
		return true
	})
	return out, err
}

// listPIDs lists the pids named under prefix.
func (k *Kernel) listPIDs(ctx context.Context, prefix string) ([]PID, error) {
	entries, err := k.listAll(ctx, prefix)
	if err != nil {
		return nil, err
	}
	pids := make([]PID, 0, len(entries))
	for _, o := range entries {
		if n, err := record.ParseNumber(o.Name); err == nil {
			pids = append(pids, PID(n))
		}
	}
	return pids, nil
}

// psView gathers what ps shows: from records this kernel knows, from the
// summaries in listings when it has listed (listed), else by reading
// records one by one (fine for a few processes, as for a small group).
type psView struct {
	k      *Kernel
	listed bool
	procs  map[PID]*record.Proc // from summaries
	exits  map[PID]*record.Exit // from summaries
	hosts  map[PID]string       // from summaries
	status map[PID]string       // from summaries
	// unsummed are pids with an exit or host record listed without a
	// summary: their records are read.
	unsummed map[PID]bool
	leases   map[string]bool // kernel -> alive, once known
	// leaseSeen is when each kernel's lease was last written and how long
	// it lasts, from the listing.
	leaseSeen map[string]leaseEntry
}

type leaseEntry struct {
	modified time.Time
	ttl      time.Duration
}

// listAll reads the summaries of exits, hosts, statuses and leases, a few
// listing pages for the whole namespace.
func (v *psView) listAll(ctx context.Context) error {
	v.listed = true
	v.exits, v.hosts, v.status = map[PID]*record.Exit{}, map[PID]string{}, map[PID]string{}
	v.unsummed = map[PID]bool{}
	v.leaseSeen = map[string]leaseEntry{}
	for _, l := range []struct {
		prefix string
		add    func(n int64, o backend.ObjectInfo)
	}{
		{record.Exits, func(n int64, o backend.ObjectInfo) {
			if ex, ok := record.ParseExitSummary(n, o.ContentType); ok {
				v.exits[PID(n)] = ex
			} else {
				v.unsummed[PID(n)] = true // written without one: read it
			}
		}},
		{record.Hosts, func(n int64, o backend.ObjectInfo) {
			if host, ok := record.ParseHostSummary(o.ContentType); ok {
				v.hosts[PID(n)] = host
			} else {
				v.unsummed[PID(n)] = true
			}
		}},
		{record.Status, func(n int64, o backend.ObjectInfo) {
			if text, ok := record.ParseStatusSummary(o.ContentType); ok {
				v.status[PID(n)] = text
			}
		}},
	} {
		entries, err := v.k.listAll(ctx, l.prefix)
		if err != nil {
			return err
		}
		for _, o := range entries {
			if n, err := record.ParseNumber(o.Name); err == nil {
				l.add(n, o)
			}
		}
	}
	return v.listLeases(ctx)
}

// listLeases reads when each kernel's lease was last renewed.
func (v *psView) listLeases(ctx context.Context) error {
	leases, err := v.k.listAll(ctx, record.Kernels)
	if err != nil {
		return err
	}
	for _, o := range leases {
		if ttl, ok := record.ParseLeaseSummary(o.ContentType); ok {
			v.leaseSeen[strings.TrimPrefix(o.Name, record.Kernels)] = leaseEntry{o.LastModified, time.Duration(ttl)}
		}
	}
	return nil
}

// infos builds ps rows for pids.
func (v *psView) infos(ctx context.Context, pids []PID) ([]ProcessInfo, error) {
	k := v.k
	out := make([]ProcessInfo, 0, len(pids))
	for _, pid := range pids {
		rec, err := v.proc(ctx, pid)
		if errors.Is(err, backend.ErrNotFound) {
			continue // expired between listing and read
		}
		if err != nil {
			return nil, fmt.Errorf("rack: ps: %w", err)
		}
		info := ProcessInfo{PID: pid, PPID: PID(rec.PPID), Group: PID(rec.Group), Name: rec.Name,
			Args: rec.Args, State: Running, Started: time.Unix(0, rec.Started)}
		ex, err := v.exit(ctx, pid)
		switch {
		case err == nil:
			info.State, info.ExitCode, info.Signal, info.Ended = Exited, ex.Code, Signal(ex.Signal), time.Unix(0, ex.Ended)
			if ex.Lost {
				info.State = Lost
			}
		case !errors.Is(err, backend.ErrNotFound):
			return nil, fmt.Errorf("rack: ps: %w", err)
		}
		if p := k.hosted(pid); p != nil && !p.remote {
			info.Status = p.statusText()
		} else if info.State == Running {
			info.Status = v.statusText(ctx, pid)
			// No exit yet, but its kernel may be gone (a kill -9, a lost
			// machine) before anyone has recorded it lost.
			if alive, err := v.alive(ctx, pid, rec); err == nil && !alive {
				info.State = Lost
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// proc returns pid's process record, or its summary.
func (v *psView) proc(ctx context.Context, pid PID) (*record.Proc, error) {
	if rec, ok := v.k.cache.Load(pid); ok {
		return rec.(*record.Proc), nil
	}
	if rec := v.procs[pid]; rec != nil {
		return rec, nil
	}
	return v.k.procRecord(ctx, pid)
}

// exit returns pid's exit record or summary, or an error wrapping
// backend.ErrNotFound while it has none.
func (v *psView) exit(ctx context.Context, pid PID) (*record.Exit, error) {
	if ex, ok := v.k.exits.Load(pid); ok {
		return ex.(*record.Exit), nil
	}
	if v.listed && !v.unsummed[pid] {
		if ex := v.exits[pid]; ex != nil {
			return ex, nil
		}
		// Not listed: running, or ended a moment ago (the listing lags).
		return nil, backend.ErrNotFound
	}
	return v.k.exitRecord(ctx, pid)
}

// statusText returns the status text of a process hosted elsewhere.
func (v *psView) statusText(ctx context.Context, pid PID) string {
	if text, ok := v.status[pid]; ok {
		return text
	}
	if data, err := v.k.get(ctx, record.StatusKey(int64(pid))); err == nil {
		return string(data)
	}
	return ""
}

// alive reports whether the kernel running pid still renews its lease.
func (v *psView) alive(ctx context.Context, pid PID, rec *record.Proc) (bool, error) {
	k := v.k
	host := v.hosts[pid]
	switch {
	case host != "":
	case v.listed && !v.unsummed[pid]:
		// No host record listed: it runs in its forker's kernel, or its
		// kernel has only just adopted it.
		host = rec.Kernel
	default:
		var err error
		if host, _, err = k.hostOf(ctx, pid, rec); err != nil {
			return false, err
		}
	}
	if alive, ok := v.leases[host]; ok {
		return alive, nil
	}
	if v.leases == nil {
		v.leases = map[string]bool{}
	}
	if host == k.id {
		v.leases[host] = true
		return true, nil
	}
	// A fresh lease in the listing is alive. One missing (the listing
	// lags) or looking stale (clocks differ; the expirer lags) is checked
	// by reading it.
	if l, ok := v.leaseSeen[host]; ok && time.Since(l.modified) < l.ttl {
		v.leases[host] = true
		return true, nil
	}
	alive, err := k.leaseAlive(ctx, host)
	if err == nil {
		v.leases[host] = alive
	}
	return alive, err
}

// procRecord reads (or recalls) a process record; records never change.
func (k *Kernel) procRecord(ctx context.Context, pid PID) (*record.Proc, error) {
	if v, ok := k.cache.Load(pid); ok {
		return v.(*record.Proc), nil
	}
	var rec record.Proc
	if err := k.getRecord(ctx, record.ProcKey(int64(pid)), &rec); err != nil {
		return nil, err
	}
	k.cache.Store(pid, &rec)
	return &rec, nil
}

// exitRecord reads (or recalls) a process's exit record.
func (k *Kernel) exitRecord(ctx context.Context, pid PID) (*record.Exit, error) {
	if v, ok := k.exits.Load(pid); ok {
		return v.(*record.Exit), nil
	}
	var ex record.Exit
	if err := k.getRecord(ctx, record.ExitKey(int64(pid)), &ex); err != nil {
		return nil, err
	}
	k.exits.Store(pid, &ex)
	return &ex, nil
}

// Process returns a handle to any process of the namespace.
func (k *Kernel) Process(ctx context.Context, pid PID) (*Process, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	rec, err := k.procRecord(ctx, pid)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("rack: process %d: %w", pid, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("rack: process %d: %w", pid, err)
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

// bytesReader returns a rewindable reader, so that retries can resend it.
func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

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
		return fmt.Errorf("%w: %s %q may not contain '/' or NUL, nor be . or ..", ErrInvalid, what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q contains a control character", ErrInvalid, what, s)
		}
	}
	return nil
}
