// Package inproc is a backend.Compute whose instances are goroutines of the
// calling program: Start runs StartRequest.Run on a new goroutine, Stop
// cancels the context Run was given.
//
// It is the compute for tests, single-machine use and benchmarks: a Start
// costs a map insert, a context and a goroutine, so fork+wait stays in the
// microseconds.
//
// # Differences from an out-of-process compute
//
// A goroutine cannot be killed. Stop and Close cancel the instance's
// context and return at once; the instance stays listed (and its Name stays
// taken) until Run returns. Code that ignores its context keeps running
// after Stop, as a program on a machine cut off from its cloud may outlive
// the deletion of its instance; the rack kernel fences such code, so that a
// stopped process cannot change shared state, and this package relies on
// that fence rather than on the goroutine ending.
//
// Run's context carries no values from Start's context and is not cancelled
// by it: like a new program, the instance gets its identity only from the
// request (here, from Run's closure). It is cancelled by Stop, by Close, and
// when Run returns, so goroutines Run leaves behind see their process end.
//
// A panic in Run is not recovered: it ends the whole program. Run is
// expected to recover its own panics and treat them as the process exiting.
package inproc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
)

// ErrClosed is returned by Start, Stop and List once Close has been called.
var ErrClosed = errors.New("inproc: compute closed")

// Compute is an in-process backend.Compute. Create one with New; the zero
// value is not usable. All methods are safe for concurrent use.
type Compute struct {
	mu        sync.Mutex
	instances map[string]*instance // live instances by Name; nil once closed
	closed    bool

	// Injected start failures (WithStartFailures); failures is nil when
	// there are none. Both are guarded by mu, which also makes the draws
	// follow the order in which Starts take the lock.
	failures *rand.Rand
	failRate float64
}

// instance is one running goroutine.
type instance struct {
	info   backend.Instance
	ctx    context.Context
	cancel context.CancelFunc
	run    func(context.Context)
}

// Option configures a Compute made by New.
type Option struct {
	apply func(*Compute)
}

// WithStartFailures makes a deterministic fraction rate (0 to 1) of Starts
// fail with an error wrapping backend.ErrTransient, before anything is
// started or reserved, as a flaky cloud API would. It is meant for testing
// the retries of schedulers.
//
// Every Start whose request is valid, whose context is live and that
// reaches the compute before Close draws once from a generator seeded with
// seed, so the same sequence of Starts on a compute made with the same seed
// fails at the same positions. Starts that fail validation draw nothing.
//
// WithStartFailures panics if rate is NaN or outside [0, 1].
func WithStartFailures(rate float64, seed int64) Option {
	if math.IsNaN(rate) || rate < 0 || rate > 1 {
		panic(fmt.Sprintf("inproc: WithStartFailures: rate %v outside [0, 1]", rate))
	}
	return Option{apply: func(c *Compute) {
		if rate == 0 {
			c.failures, c.failRate = nil, 0
			return
		}
		c.failures = rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
		c.failRate = rate
	}}
}

// New returns an empty, open Compute.
func New(opts ...Option) *Compute {
	c := &Compute{instances: make(map[string]*instance)}
	for _, o := range opts {
		if o.apply != nil {
			o.apply(c)
		}
	}
	return c
}

var _ backend.Compute = (*Compute)(nil)

// Start runs req.Run on a new goroutine, with a context that Stop and Close
// cancel, and returns the instance, which is listed until Run returns.
//
// Start fails with an error wrapping backend.ErrInvalid if req is nil or
// has an empty Name or a nil Run; with backend.ErrExist if an instance
// named req.Name is still listed (req.Name is the idempotency key: a name
// can be started again once its instance has ended); with ctx's error if
// ctx is done; with backend.ErrTransient for failures injected by
// WithStartFailures; and with ErrClosed after Close. A failed Start started
// nothing.
func (c *Compute) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	switch {
	case req == nil:
		return backend.Instance{}, fmt.Errorf("inproc: start: nil request: %w", backend.ErrInvalid)
	case req.Name == "":
		return backend.Instance{}, fmt.Errorf("inproc: start (namespace %q, pid %d): empty name: %w", req.Namespace, req.PID, backend.ErrInvalid)
	case req.Run == nil:
		return backend.Instance{}, fmt.Errorf("inproc: start %q: nil Run: %w", req.Name, backend.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return backend.Instance{}, fmt.Errorf("inproc: start %q: %w", req.Name, err)
	}

	// Build everything before taking the lock, to keep it short.
	runCtx, cancel := context.WithCancel(context.Background())
	inst := &instance{
		info: backend.Instance{
			Name:      req.Name,
			Namespace: req.Namespace,
			PID:       req.PID,
			Created:   time.Now(),
		},
		ctx:    runCtx,
		cancel: cancel,
		run:    req.Run,
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return backend.Instance{}, ErrClosed
	}
	if c.failures != nil && c.failures.Float64() < c.failRate {
		c.mu.Unlock()
		cancel()
		return backend.Instance{}, fmt.Errorf("inproc: start %q: injected failure: %w", req.Name, backend.ErrTransient)
	}
	if _, dup := c.instances[req.Name]; dup {
		c.mu.Unlock()
		cancel()
		return backend.Instance{}, fmt.Errorf("inproc: start %q: instance %w", req.Name, backend.ErrExist)
	}
	c.instances[req.Name] = inst
	c.mu.Unlock()

	go c.run(inst)
	return inst.info, nil
}

// run is the instance's goroutine. The deferred exit also covers Run
// calling runtime.Goexit.
func (c *Compute) run(inst *instance) {
	defer c.exit(inst)
	inst.run(inst.ctx)
}

// exit unlists inst once its Run has returned and releases its context.
func (c *Compute) exit(inst *instance) {
	inst.cancel()
	c.mu.Lock()
	if c.instances[inst.info.Name] == inst {
		delete(c.instances, inst.info.Name)
	}
	c.mu.Unlock()
}

// Stop cancels the context of the instance named name and returns without
// waiting for its Run to return; until then the instance stays listed and
// stopping it again succeeds. Stop fails with an error wrapping
// backend.ErrNotFound if no instance of that name is listed, with ctx's
// error if ctx is done, and with ErrClosed after Close.
func (c *Compute) Stop(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inproc: stop %q: %w", name, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	inst, ok := c.instances[name]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("inproc: stop %q: instance %w", name, backend.ErrNotFound)
	}
	inst.cancel()
	return nil
}

// List returns the instances of namespace whose Run has not returned (of
// every namespace if namespace is ""), sorted by PID, then Namespace, then
// Name. It fails with ctx's error if ctx is done and with ErrClosed after
// Close.
func (c *Compute) List(ctx context.Context, namespace string) ([]backend.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inproc: list %q: %w", namespace, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	var out []backend.Instance
	if namespace == "" {
		out = make([]backend.Instance, 0, len(c.instances))
	}
	for _, inst := range c.instances {
		if namespace == "" || inst.info.Namespace == namespace {
			out = append(out, inst.info)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b backend.Instance) int {
		if n := cmp.Compare(a.PID, b.PID); n != 0 {
			return n
		}
		if n := cmp.Compare(a.Namespace, b.Namespace); n != 0 {
			return n
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Close cancels the context of every instance and returns at once: it does
// not wait for the goroutines, which cannot be forced to end (see the
// package documentation). Afterwards Start, Stop and List fail with
// ErrClosed. Close is idempotent and always returns nil.
func (c *Compute) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	insts := c.instances
	c.instances = nil
	c.mu.Unlock()
	for _, inst := range insts {
		inst.cancel()
	}
	return nil
}

// InProcess reports true: instances run StartRequest.Run in this OS process.
func (c *Compute) InProcess() bool { return true }
