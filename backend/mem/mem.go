// Package mem is an in-memory backend.Store: an honest fake of OpenStack
// Swift, used by rack's embedded mode (mem://NAME URLs) and by tests.
//
// "Honest" means it keeps Swift's weaker promises rather than the stronger
// ones an in-memory map would naturally give, so that code tested against it
// does not break on a real cluster:
//
//   - Get and Head are strongly consistent (Swift's read-after-create), but
//     with WithListLag a change reaches List and ListContainers only some
//     time after it was made, and DeleteContainer judges emptiness from both
//     the objects and the (lagging) listing, as Swift's container database
//     does.
//   - Put reads the whole body before the object becomes visible; a
//     create-only Put is checked again, atomically, when it commits.
//   - Names, metadata and listing limits are Swift's defaults (see the Max
//     constants); violations fail with backend.ErrInvalid.
//   - WithFaults injects transient failures, some of them after the change
//     took effect, and WithLatency slows every call.
//
// Objects are stored as lists of fixed-size chunks (1 MiB), so a large Put
// never copies its data while growing and a Get streams the stored chunks
// without copying the object. A Store also implements backend.Notifier.
package mem

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/internal/watch"
)

// Interface checks.
var (
	_ backend.Store    = (*Store)(nil)
	_ backend.Notifier = (*Store)(nil)
)

// config holds the settings Options change.
type config struct {
	listLag   time.Duration
	faultRate float64
	faultSeed int64
	latency   time.Duration
	versions  bool
}

// WithVersionETags makes ETags opaque version tags ("v" and a number that
// is new for every Put) instead of Swift's hex MD5 of the content. MD5
// costs more CPU than everything else a Put does (it caps a Put near
// 0.8 GB/s here), and rack's protocol only compares ETags: the embedded
// mem:// namespaces use this option.
func WithVersionETags() Option { return func(c *config) { c.versions = true } }

// An Option configures a Store made by New.
type Option func(*config)

// WithListLag makes List and ListContainers eventually consistent: a
// created, overwritten or deleted object (or container) shows in listings
// only d after the change. Get and Head stay strongly consistent. Expired
// objects also linger in listings for up to d after they expire.
func WithListLag(d time.Duration) Option {
	return func(c *config) { c.listLag = max(d, 0) }
}

// WithFaults makes a deterministic, seeded fraction rate (0 to 1) of calls
// fail with an error wrapping backend.ErrTransient. For calls that change
// the store (CreateContainer, DeleteContainer, Put, Delete), half of the
// injected faults happen after the call ran (and its change, if it made
// one, took effect), like a connection reset after the request was sent.
// The draw happens when a call starts, so with the same seed the same
// sequence of calls sees the same failures. No faults are injected into
// Close, Changed, or reads from Get's reader.
func WithFaults(rate float64, seed int64) Option {
	return func(c *config) {
		c.faultRate = min(max(rate, 0), 1)
		c.faultSeed = seed
	}
}

// WithLatency makes every call wait d before doing anything, or fail early
// with the context's error if ctx is done first.
func WithLatency(d time.Duration) Option {
	return func(c *config) { c.latency = max(d, 0) }
}

// epoch is the origin of the monotonic clock used for expiry and list lag.
var epoch = time.Now()

// mono returns monotonic nanoseconds since epoch.
func mono() int64 { return int64(time.Since(epoch)) }

// Store is an in-memory backend.Store and backend.Notifier. Make one with
// New or Shared; the zero value is not usable. All methods are safe for
// concurrent use.
type Store struct {
	lag       int64 // list lag in nanoseconds
	latency   time.Duration
	faultRate float64
	shared    bool
	versions  bool // opaque version ETags, not MD5

	faultMu sync.Mutex
	rng     *rand.Rand

	mu         sync.RWMutex
	closed     bool
	containers map[string]*bucket
	clist      index // container listing (lagging view)
	cpending   queue // container listing updates not yet applied
	expiry     expiryHeap
	timer      *time.Timer // fires at timerAt (mono), to purge expired objects
	timerAt    int64

	watch watch.Registry
}

// bucket is one container: the strongly consistent object map, and the
// listing, a lagging view of it.
type bucket struct {
	name    string
	objects map[string]*object
	list    index
	pending queue
}

// New returns an empty, private Store configured by opts.
func New(opts ...Option) *Store {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := &Store{
		lag:        int64(cfg.listLag),
		latency:    cfg.latency,
		faultRate:  cfg.faultRate,
		versions:   cfg.versions,
		containers: make(map[string]*bucket),
	}
	if cfg.faultRate > 0 {
		s.rng = rand.New(rand.NewPCG(uint64(cfg.faultSeed), 0x9e3779b97f4a7c15))
	}
	return s
}

// registry holds the stores Shared returns.
var registry struct {
	mu     sync.Mutex
	stores map[string]*Store
}

// Shared returns the process-wide Store registered under name, creating an
// empty one with opts on first use (later calls' opts are ignored): every call with the same name
// returns the same Store. It backs mem://NAME URLs, so that several parts of
// one process share data. Closing a shared Store is a no-op that keeps its
// data, since other users may still hold it; the data lives as long as the
// process.
func Shared(name string, opts ...Option) *Store {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	s := registry.stores[name]
	if s == nil {
		if registry.stores == nil {
			registry.stores = make(map[string]*Store)
		}
		s = New(opts...)
		s.shared = true
		registry.stores[name] = s
	}
	return s
}

// PipeHints advises 1 MiB pipe segments, and batching small writes for up
// to 2 ms: the store dies with the OS process, so a batch cannot outlive
// its reader (backend.PipeHinter).
func (s *Store) PipeHints() backend.PipeHints {
	return backend.PipeHints{SegmentSize: 1 << 20, FlushDelay: 2 * time.Millisecond}
}

// Close releases the Store's data: later calls fail with an error wrapping
// ErrClosed, and every channel returned by Changed is closed so that no
// waiter hangs. Readers returned by Get before Close keep working. Close is
// idempotent, and a no-op (keeping the data) on a Store returned by Shared.
func (s *Store) Close() error {
	if s.shared {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.containers = nil
	s.clist = index{}
	s.cpending = queue{}
	s.expiry = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.watch.Close()
	return nil
}

// enter starts a call: it fails if ctx is done, waits the configured
// latency, and draws an injected fault. For a mutating call it may instead
// report after, meaning the call must take effect and then fail with
// faultAfter.
func (s *Store) enter(ctx context.Context, mutating bool) (after bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
	}
	if s.faultRate > 0 {
		s.faultMu.Lock()
		u := s.rng.Float64()
		s.faultMu.Unlock()
		if u < s.faultRate {
			if mutating && u < s.faultRate/2 {
				return true, nil
			}
			return false, faultBefore
		}
	}
	return false, nil
}

// CreateContainer creates container; it succeeds if it exists already.
func (s *Store) CreateContainer(ctx context.Context, container string) error {
	const op = "create"
	after, err := s.enter(ctx, true)
	if err != nil {
		return containerError(op, container, "", err)
	}
	err = s.createContainer(container)
	if after {
		return containerError(op, container, "", faultAfter)
	}
	return err
}

// createContainer is CreateContainer after the latency and fault injection.
func (s *Store) createContainer(container string) error {
	const op = "create"
	if d := backend.ContainerNameProblem(container); d != "" {
		return containerError(op, container, d, backend.ErrInvalid)
	}
	t := time.Now()
	now := int64(t.Sub(epoch))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return containerError(op, container, "", ErrClosed)
	}
	if s.containers[container] != nil {
		return nil
	}
	s.containers[container] = &bucket{name: container, objects: make(map[string]*object)}
	rec := &object{name: container, modified: t.UTC().Truncate(time.Microsecond)}
	if s.lag == 0 {
		s.clist.put(rec)
	} else {
		s.cpending.push(update{at: now + s.lag, name: container, obj: rec})
		s.cpending.apply(&s.clist, now)
	}
	return nil
}

// DeleteContainer deletes an empty container. It fails with an error
// wrapping backend.ErrNotFound if the container does not exist, and
// backend.ErrExist if it holds objects or if its listing (see WithListLag)
// still shows some, as Swift's container database may.
func (s *Store) DeleteContainer(ctx context.Context, container string) error {
	const op = "delete"
	after, err := s.enter(ctx, true)
	if err != nil {
		return containerError(op, container, "", err)
	}
	err = s.deleteContainer(container)
	if after {
		return containerError(op, container, "", faultAfter)
	}
	return err
}

// deleteContainer is DeleteContainer after the latency and fault injection.
func (s *Store) deleteContainer(container string) error {
	const op = "delete"
	if d := backend.ContainerNameProblem(container); d != "" {
		return containerError(op, container, d, backend.ErrInvalid)
	}
	now := mono()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return containerError(op, container, "", ErrClosed)
	}
	c := s.containers[container]
	if c == nil {
		return containerError(op, container, "", backend.ErrNotFound)
	}
	if !s.empty(c, now) {
		return containerError(op, container, "container is not empty", backend.ErrExist)
	}
	delete(s.containers, container)
	if s.lag == 0 {
		s.clist.remove(container)
	} else {
		s.cpending.push(update{at: now + s.lag, name: container})
		s.cpending.apply(&s.clist, now)
	}
	return nil
}

// empty reports whether c holds no live object and its listing shows none.
// s.mu must be held for writing.
func (s *Store) empty(c *bucket, now int64) bool {
	c.pending.apply(&c.list, now)
	for _, o := range c.objects {
		if !o.expired(now) {
			return false
		}
	}
	if c.list.len() == 0 {
		return true
	}
	for p := (pos{}); p.bi < len(c.list.blocks); p = c.list.next(p) {
		if s.listed(c.list.at(p), now) {
			return false
		}
	}
	return true
}

// listed reports whether a listing entry is shown at now: expired objects
// linger for the list lag.
func (s *Store) listed(o *object, now int64) bool {
	return o.expires == 0 || now < o.expires+s.lag
}

// ListContainers returns one page of the container names in byte order (see
// backend.ListOptions). Only Name and LastModified (the creation time) are
// set. With WithListLag, new and deleted containers show late.
func (s *Store) ListContainers(ctx context.Context, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	const op = "list containers"
	if _, err := s.enter(ctx, false); err != nil {
		return nil, storeError(op, "", err)
	}
	limit, d := backend.ListOptionsProblem(&opts)
	if d != "" {
		return nil, storeError(op, d, backend.ErrInvalid)
	}
	now := mono()
	if s.lag == 0 {
		s.mu.RLock()
	} else {
		s.mu.Lock()
	}
	var infos []backend.ObjectInfo
	closed := s.closed
	if !closed {
		if s.lag != 0 {
			s.cpending.apply(&s.clist, now)
		}
		infos = s.list(&s.clist, &opts, limit, now)
	}
	if s.lag == 0 {
		s.mu.RUnlock()
	} else {
		s.mu.Unlock()
	}
	if closed {
		return nil, storeError(op, "", ErrClosed)
	}
	return infos, nil
}
