// Package nova is a backend.Compute whose instances are OpenStack Nova
// servers booting a stock cloud-init image.
//
// The program's executable is staged once (see Stager; SwiftStager puts it
// into Swift, content-addressed by SHA-256), and every server boots with a
// short user-data script that fetches it through a short-lived URL, checks
// its digest, and runs it with the child's identity (StartRequest.Env) in
// its environment; when the program ends, the script powers the VM off.
// The user-data holds no credential: the identity only, plus whatever
// Config.ExtraEnv adds (such as a one-time credential URL).
//
// # Servers
//
// A server is named StartRequest.Name and carries the metadata
// rack-namespace, rack-pid and rack-delete-at (Unix seconds after which
// Sweep deletes it whatever its state), and with microversion 2.52 or later
// the tags "rack", "rack-ns-<namespace>" and one naming the Compute that
// made it.
//
// Start is idempotent on the name: it fails with backend.ErrExist if a
// server of that name exists, and a create whose outcome is unknown (a
// timeout, a 5xx) is followed by a look-up of the exact name before any
// retry, so a retried create never makes a second server. A create refused
// for quota (a 403 in any of Nova's wordings: "Quota exceeded ...", unified
// limits' "Project ... is over a limit for [...]", "Maximum number of
// ports exceeded") or rate (429) waits and tries again for as long as
// Start's context allows; at most Config.MaxBootsInFlight servers are
// building at once (further Starts queue). A create refused for its
// configuration (a 409 such as NetworkAmbiguous, or a 400) fails at once
// with backend.ErrInvalid and a message naming the option to set. Start owns these
// attempts (it implements backend.StartRetrier, and retries a transient
// failure to stage the program too), so the kernel calls it once per
// process rather than retrying it.
//
// # Hosts
//
// A request with backend.HostOption boots a host: a server whose program
// serves many rack processes and deletes its own server once idle or once
// its namespace is dead (the program's job, through its own compute's
// backend.SelfDeleter). Its server carries the metadata rack-host=1 and
// rack-pid 0. Close leaves a host's server running (it deletes one still
// being created or re-created); Sweep deletes it with the other servers
// of a dead namespace, or past its rack-delete-at. HostSlots reads the
// flavor's vCPUs (one GET /flavors/{id}, once).
//
// # Watching
//
// The kernel calls Reap (backend.Reaper) once it has read a child's exit
// record, and the server is deleted then: Nova shows a powered-off server
// SHUTOFF only 15 s later with libvirt, and up to 10 minutes later with
// drivers that have no lifecycle events, while it holds quota.
//
// One poller per Compute lists the Compute's servers (one servers.List
// every PollInterval, however many servers; none while it has none) and
// acts on what it sees: a server that goes ERROR before it ever ran (e.g.
// "No valid host was found"), or is still in BUILD at its build deadline
// (Config.BuildTimeout), is deleted and created again under the same
// name, up to BootRetries times, and then the instance is marked failed;
// one that lost the conductor's quota recheck (ERROR with a quota fault)
// is re-created after a wait for quota, without counting as a failed boot;
// a server that goes SHUTOFF (its program ended and the script powered the
// VM off) is deleted, a last resort. A server missing from two listings in
// a row is declared deleted only once a GET of it answers 404 (Nova leaves
// out of its listings the servers of a cell that does not respond).
// Failure reports why an instance ended abnormally, so that a kernel can
// report an infrastructure error instead of waiting.
//
// A delete is seen through: a GET confirms the server is gone (404); a
// server whose delete failed on its compute host (it shows ERROR) is
// deleted again, and a soft-deleted one (SOFT_DELETED, on clouds with
// reclaim_instance_interval > 0), which still holds quota, is
// force-deleted. Starts waiting for quota are woken when a server is
// gone, not when its delete is accepted.
//
// # API requests
//
// A child costs four Nova calls: a look-up of its name
// (GET /servers?name=^name$), the create, the delete (at exit, Stop or
// Close) and the GET that confirms it (more while a slow delete is under
// way). The shared poll adds one GET /servers/detail per PollInterval,
// whatever the number of children. A failure costs more: a re-create and
// delete per boot retry, a look-up per ambiguous create, a GET per two
// listings that miss a server, and one os-getConsoleOutput (never retried
// on 501) to explain a server that ended without its program having
// started (see Config.ProgramStarted).
package nova

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack/backend"
)

// Defaults for Config.
const (
	// DefaultMicroversion is the compute API microversion used when neither
	// Config nor the client sets one: the first with server tags at create.
	DefaultMicroversion     = "2.52"
	DefaultMaxBootsInFlight = 10
	DefaultBootRetries      = 3
	DefaultPollInterval     = 5 * time.Second
	DefaultDeleteAfter      = 24 * time.Hour
	DefaultRequestTimeout   = time.Minute
	// DefaultBuildTimeout is how long a server may stay in BUILD before
	// the Compute deletes it and tries again (Nova's own
	// instance_build_timeout defaults to never).
	DefaultBuildTimeout = 10 * time.Minute
)

// Keys of StartRequest.Options that override the Config defaults for one
// server. Other keys are ignored (they are meant for other computes).
const (
	OptionImage            = "image"             // image ID
	OptionFlavor           = "flavor"            // flavor ID
	OptionNetwork          = "network"           // network UUIDs, comma-separated, or "auto" or "none"
	OptionKeyName          = "key_name"          // key pair name
	OptionSecurityGroups   = "security_groups"   // security group names, comma-separated
	OptionAvailabilityZone = "availability_zone" // availability zone
	OptionBuildTimeout     = "build_timeout"     // a Go duration: the build deadline of the server (Config.BuildTimeout)
)

// Server metadata keys and tags set on every server.
const (
	MetaNamespace = "rack-namespace"
	MetaPID       = "rack-pid"
	MetaDeleteAt  = "rack-delete-at" // Unix seconds
	// MetaHost is "1" on a host's server (backend.HostOption).
	MetaHost = "rack-host"
	TagRack  = "rack"
	// TagNamespacePrefix followed by the namespace tags the servers of a
	// namespace; a namespace that cannot be in a tag (too long, or with ','
	// or '/') gets TagNamespaceHashPrefix and 32 hex digits of its SHA-256.
	TagNamespacePrefix     = "rack-ns-"
	TagNamespaceHashPrefix = "rack-nsh-"
	// TagComputePrefix followed by a random id tags the servers of one
	// Compute, which its poller lists.
	TagComputePrefix = "rack-c-"
)

// ErrClosed is returned by calls on a closed Compute.
var ErrClosed = errors.New("nova: compute closed")

// Config configures a Compute. Client, Image, Flavor and Stager are
// required (Image and Flavor may come from every request's Options
// instead).
type Config struct {
	// Client is a compute (Nova) service client, e.g. from
	// openstack.Login.ComputeClient. The Compute uses a copy with its own microversion.
	Client *gophercloud.ServiceClient
	// Microversion is the compute API microversion to use; default the
	// client's, else DefaultMicroversion. Tags need 2.52 or later; without
	// them the poller finds servers by name.
	Microversion string

	// Defaults of every server, overridden per request by Options.
	Image            string   // image ID
	Flavor           string   // flavor ID
	Network          string   // network UUIDs (comma-separated), "auto" or "none"; default "auto" from 2.37
	KeyName          string   // key pair, for debugging access
	SecurityGroups   []string // security group names
	AvailabilityZone string

	// Stager stages the program's executable and returns its URL.
	Stager Stager
	// ExtraEnv, if set, returns environment variables to add to a child's
	// (they override StartRequest.Env): for example a one-time credential
	// URL. It is called once per Start, after the Start got its boot slot,
	// and what it returns serves every create attempt of that Start (quota
	// waits, retries); it is called again only after a create of unknown
	// outcome (whose server may have taken it) and for the new server that
	// replaces one that failed to boot. A Start that fails may leave what
	// it made unused. Its error, like the Stager's, is tried again only if
	// it wraps backend.ErrTransient or is a network error; any other fails
	// the Start. Whatever it returns ends up in the server's user-data,
	// which anyone who can read the server's details can read.
	ExtraEnv func(ctx context.Context, req *backend.StartRequest) (map[string]string, error)
	// ProgramStarted, if set, tells whether an instance's program started
	// (the kernel knows: its child recorded its start). When a server powers
	// off, the Compute reads its console (one extra call) to explain a
	// failure only if ProgramStarted is nil or returns false.
	ProgramStarted func(ctx context.Context, inst backend.Instance) bool

	// MaxBootsInFlight bounds the servers being created or in BUILD at
	// once; default DefaultMaxBootsInFlight.
	MaxBootsInFlight int
	// BootRetries is how many times a server that goes ERROR before it ran,
	// or outlives its build deadline, is re-created; default
	// DefaultBootRetries, negative for none.
	BootRetries int
	// BuildTimeout is the build deadline: a server still in BUILD this
	// long after its create was accepted is deleted (freeing its boot
	// slot) and counts as a failed boot; default DefaultBuildTimeout. The
	// build_timeout option overrides it per server.
	BuildTimeout time.Duration
	// PollInterval is the time between two listings of the servers;
	// default DefaultPollInterval.
	PollInterval time.Duration
	// DeleteAfter sets each server's rack-delete-at, the time after which
	// Sweep deletes it even if it still runs; default DefaultDeleteAfter.
	DeleteAfter time.Duration
	// RequestTimeout bounds each API request; default
	// DefaultRequestTimeout. CreateTimeout bounds a create request (default
	// RequestTimeout): after it, the Compute looks the name up before it
	// tries again.
	RequestTimeout, CreateTimeout time.Duration
	// Logger receives the Compute's log; default none.
	Logger *slog.Logger

	// noPowerOff leaves the power-off out of the bootstrap script (tests
	// that run the script themselves).
	noPowerOff bool
}

// Compute starts rack instances as Nova servers. Its methods are safe for
// concurrent use.
type Compute struct {
	cfg      Config
	client   *gophercloud.ServiceClient // a copy, with the microversion set
	minor    int                        // microversion 2.minor
	ownerTag string
	log      *slog.Logger
	slots    chan struct{} // boots in flight

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // Starts and background work
	kick   chan struct{}  // wakes the idle poller
	// quotaTurn is held by the one Start that retries a create refused for
	// quota; other refused Starts queue for it.
	quotaTurn chan struct{}
	hostSlots flavorSlots // HostSlots' answer

	mu       sync.Mutex
	closed   bool
	insts    map[string]*instance // by name
	failures map[string]string    // by name: why an instance ended abnormally
	deleted  map[string]time.Time // server IDs this Compute deleted
	freed    chan struct{}        // closed (and replaced) when a server is deleted
}

// state is where an instance is in its life.
type state int

const (
	stStarting state = iota // Start is creating its server
	stBuilding              // its server exists and is (or was last seen) BUILD
	stActive                // its server was seen ACTIVE
	stRetrying              // its server failed to boot; being re-created
	stEnding                // leaving: its servers are being deleted
)

// instance is one started (or starting) instance. Fields after info are
// guarded by Compute.mu.
type instance struct {
	info    backend.Instance
	create  servers.CreateOpts // without user-data, metadata and tags
	keyName string
	env     map[string]string
	build   time.Duration         // the build deadline
	req     *backend.StartRequest // for Config.ExtraEnv
	host    bool                  // a host (backend.HostOption): Close leaves it

	state    state
	id       string    // the current server, "" if none known
	idAt     time.Time // when id was learned
	missed   int       // polls in a row that did not list id
	quotaErr int       // boots in a row that lost the quota recheck
	boots    int       // servers created for it
	ran      bool      // a server of it went ACTIVE
	slot     bool      // holds a boot slot
	stopping bool      // Stop was called
	maybe    bool      // a create of unknown outcome may have made a server
	busy     bool      // a goroutine is acting on it
	reap     bool      // its program's exit is recorded: delete its server once not busy
	cancel   context.CancelFunc
}

// New returns a Compute. It contacts nothing until the first Start.
func New(cfg Config) (*Compute, error) {
	if cfg.Client == nil || cfg.Client.ProviderClient == nil {
		return nil, fmt.Errorf("nova: Config.Client is required: %w", backend.ErrInvalid)
	}
	if cfg.Stager == nil {
		return nil, fmt.Errorf("nova: Config.Stager is required: %w", backend.ErrInvalid)
	}
	client := *cfg.Client
	if client.Type == "" {
		client.Type = "compute"
	}
	mv := cfg.Microversion
	if mv == "" {
		mv = client.Microversion
	}
	if mv == "" {
		mv = DefaultMicroversion
	}
	minor, err := parseMicroversion(mv)
	if err != nil {
		return nil, err
	}
	client.Microversion = mv
	if cfg.MaxBootsInFlight <= 0 {
		cfg.MaxBootsInFlight = DefaultMaxBootsInFlight
	}
	switch {
	case cfg.BootRetries == 0:
		cfg.BootRetries = DefaultBootRetries
	case cfg.BootRetries < 0:
		cfg.BootRetries = 0
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.BuildTimeout <= 0 {
		cfg.BuildTimeout = DefaultBuildTimeout
	}
	if cfg.DeleteAfter <= 0 {
		cfg.DeleteAfter = DefaultDeleteAfter
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.CreateTimeout <= 0 {
		cfg.CreateTimeout = cfg.RequestTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	rand.Read(id[:])
	ctx, cancel := context.WithCancel(context.Background())
	c := &Compute{
		cfg: cfg, client: &client, minor: minor, ownerTag: TagComputePrefix + hex.EncodeToString(id[:]),
		log: log, slots: make(chan struct{}, cfg.MaxBootsInFlight),
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), quotaTurn: make(chan struct{}, 1),
		freed: make(chan struct{}),
		insts: map[string]*instance{}, failures: map[string]string{}, deleted: map[string]time.Time{},
	}
	c.wg.Add(1)
	go c.pollLoop()
	return c, nil
}

// parseMicroversion returns the minor version of "2.N" ("latest" is high).
func parseMicroversion(mv string) (int, error) {
	if strings.EqualFold(mv, "latest") {
		return 1 << 20, nil
	}
	maj, min, ok := strings.Cut(mv, ".")
	n, err := strconv.Atoi(min)
	if !ok || maj != "2" || err != nil || n < 1 {
		return 0, fmt.Errorf("nova: microversion %q is not 2.N: %w", mv, backend.ErrInvalid)
	}
	return n, nil
}

// tags reports whether servers get tags (microversion 2.52 or later).
func (c *Compute) tags() bool { return c.minor >= 52 }

// Start creates a server for req and returns once Nova has accepted it
// (it is building). See the package documentation for the server's
// metadata, idempotency, and what happens on quota or rate limits. Start
// blocks while MaxBootsInFlight servers are building, or while the quota
// is exhausted, for as long as ctx allows.
func (c *Compute) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	if req == nil || req.Name == "" {
		return backend.Instance{}, fmt.Errorf("nova: start: an instance needs a name: %w", backend.ErrInvalid)
	}
	name := req.Name
	if err := ctx.Err(); err != nil {
		return backend.Instance{}, fmt.Errorf("nova: start %s: %w", name, context.Cause(ctx))
	}
	in, err := c.prepare(ctx, req)
	if err != nil {
		return backend.Instance{}, fmt.Errorf("nova: start %s: %w", name, err)
	}
	octx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in.cancel = cancel
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return backend.Instance{}, fmt.Errorf("nova: start %s: %w", name, ErrClosed)
	case c.insts[name] != nil:
		c.mu.Unlock()
		return backend.Instance{}, fmt.Errorf("nova: start %s: %w", name, backend.ErrExist)
	}
	c.insts[name] = in
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	defer context.AfterFunc(c.ctx, cancel)()

	err = c.startServer(ctx, in)
	c.mu.Lock()
	if err == nil && (in.stopping || c.closed) {
		err = errors.New("stopped while starting")
	}
	if err != nil {
		switch {
		case c.closed:
			err = ErrClosed
		case in.stopping:
			err = fmt.Errorf("stopped while starting: %w", context.Canceled)
		case octx.Err() != nil && !errors.Is(err, octx.Err()):
			err = context.Cause(octx)
		}
		if in.id != "" || in.maybe {
			c.setEnding(in, false) // a server may exist: delete it
		} else {
			c.forget(in)
		}
		c.mu.Unlock()
		return backend.Instance{}, fmt.Errorf("nova: start %s: %w", name, err)
	}
	in.state = stBuilding
	in.cancel = nil
	c.mu.Unlock()
	c.wake()
	return in.info, nil
}

// wake makes an idle poller look again: an instance needs it.
func (c *Compute) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// prepare checks req and makes its instance, with the create options and
// environment resolved.
func (c *Compute) prepare(ctx context.Context, req *backend.StartRequest) (*instance, error) {
	if err := checkServerName(req.Name); err != nil {
		return nil, err
	}
	if len(req.Namespace) > 255 {
		return nil, fmt.Errorf("namespace %q is longer than 255 bytes: %w", req.Namespace, backend.ErrInvalid)
	}
	opts, err := c.createOpts(req)
	if err != nil {
		return nil, err
	}
	if sum, ok := req.Options[backend.ProgramOption]; ok {
		if !isSHA256(sum) {
			return nil, fmt.Errorf("option %s=%.70q: want a SHA-256 in lower-case hex: %w", backend.ProgramOption, sum, backend.ErrInvalid)
		}
		if _, ok := c.cfg.Stager.(PublishedStager); !ok {
			return nil, fmt.Errorf("option %s: the stager (%T) cannot boot published programs: %w", backend.ProgramOption, c.cfg.Stager, backend.ErrInvalid)
		}
	}
	build := c.cfg.BuildTimeout
	if v := strings.TrimSpace(req.Options[OptionBuildTimeout]); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("option %s=%q: want a positive duration such as 10m: %w", OptionBuildTimeout, v, backend.ErrInvalid)
		}
		build = d
	}
	env := maps.Clone(req.Env)
	if env == nil {
		env = map[string]string{}
	}
	// Check the environment now: a bad one is the caller's error. (What
	// ExtraEnv adds comes per server, just before its create: a one-time
	// credential must not wait in a queue for a boot slot, nor serve two
	// servers.)
	if _, err := (&script{name: req.Name, url: "x", sha256: strings.Repeat("0", 64), env: env}).render(); err != nil {
		return nil, err
	}
	return &instance{
		info:   backend.Instance{Name: req.Name, Namespace: req.Namespace, PID: req.PID, Created: time.Now()},
		create: opts, keyName: opt(req, OptionKeyName, c.cfg.KeyName), env: env, state: stStarting, build: build,
		req: req, host: req.Options[backend.HostOption] != "",
	}, nil
}

// checkServerName accepts Nova's server names: 1-255 printable characters,
// not starting or ending with a space.
func checkServerName(name string) error {
	if len(name) > 255 || strings.ContainsFunc(name, isControl) || strings.TrimSpace(name) != name {
		return fmt.Errorf("instance name %q is not a valid server name (printable, at most 255 bytes, no surrounding space): %w", name, backend.ErrInvalid)
	}
	return nil
}

// createOpts resolves the server options of req.
func (c *Compute) createOpts(req *backend.StartRequest) (servers.CreateOpts, error) {
	opt := func(key, def string) string { return opt(req, key, def) }
	o := servers.CreateOpts{
		Name:             req.Name,
		ImageRef:         opt(OptionImage, c.cfg.Image),
		FlavorRef:        opt(OptionFlavor, c.cfg.Flavor),
		AvailabilityZone: opt(OptionAvailabilityZone, c.cfg.AvailabilityZone),
		SecurityGroups:   c.cfg.SecurityGroups,
	}
	if o.ImageRef == "" {
		return o, fmt.Errorf("no image: set Config.Image or the %q option: %w", OptionImage, backend.ErrInvalid)
	}
	if o.FlavorRef == "" {
		return o, fmt.Errorf("no flavor: set Config.Flavor or the %q option: %w", OptionFlavor, backend.ErrInvalid)
	}
	if v, ok := req.Options[OptionSecurityGroups]; ok {
		o.SecurityGroups = splitList(v)
	}
	switch n := opt(OptionNetwork, c.cfg.Network); n {
	case "":
		if c.minor >= 37 {
			o.Networks = "auto"
		}
	case "auto", "none":
		o.Networks = n
	default:
		var nets []servers.Network
		for _, id := range splitList(n) {
			nets = append(nets, servers.Network{UUID: id})
		}
		o.Networks = nets
	}
	return o, nil
}

// opt returns req's option key, or def if it is not set.
func opt(req *backend.StartRequest, key, def string) string {
	if v := strings.TrimSpace(req.Options[key]); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// namespaceTag returns the tag of namespace ns.
func namespaceTag(ns string) string {
	if len(TagNamespacePrefix)+len(ns) <= 60 && utf8.ValidString(ns) && !strings.ContainsAny(ns, ",/") {
		return TagNamespacePrefix + ns
	}
	sum := sha256.Sum256([]byte(ns))
	return TagNamespaceHashPrefix + hex.EncodeToString(sum[:16])
}

// startServer makes in's server: it checks that the name is free, takes a
// boot slot and creates the server.
func (c *Compute) startServer(ctx context.Context, in *instance) error {
	name := in.info.Name
	taken, err := c.nameTaken(ctx, name)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("a server named %q exists: %w", name, backend.ErrExist)
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	c.mu.Lock()
	in.slot = true
	c.mu.Unlock()
	id, err := c.createServer(ctx, in)
	if err != nil {
		return err
	}
	c.mu.Lock()
	in.id, in.idAt, in.missed = id, time.Now(), 0
	in.boots++
	c.mu.Unlock()
	return nil
}

// forget drops in, releasing its boot slot. Called with c.mu held.
func (c *Compute) forget(in *instance) {
	if c.insts[in.info.Name] == in {
		delete(c.insts, in.info.Name)
	}
	c.releaseSlot(in)
}

// releaseSlot gives back in's boot slot, if it holds one. Called with c.mu
// held.
func (c *Compute) releaseSlot(in *instance) {
	if in.slot {
		in.slot = false
		<-c.slots
	}
}

// Stop deletes the instance's server. An instance this Compute does not
// know (or no longer tracks) is looked up by name among rack's servers.
// It fails with backend.ErrNotFound if there is no such server.
func (c *Compute) Stop(ctx context.Context, name string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("nova: stop %s: %w", name, ErrClosed)
	}
	in := c.insts[name]
	switch {
	case in == nil:
		c.mu.Unlock()
		return c.stopUntracked(ctx, name)
	case in.stopping || in.state == stEnding:
		c.mu.Unlock()
		return fmt.Errorf("nova: stop %s: %w", name, backend.ErrNotFound)
	case in.state == stStarting || in.state == stRetrying:
		// A create is under way: cancel it; whoever runs it cleans up.
		in.stopping = true
		if in.cancel != nil {
			in.cancel()
		}
		c.mu.Unlock()
		return nil
	}
	in.stopping, in.busy = true, true
	id := in.id
	c.mu.Unlock()
	err := c.deleteServer(ctx, name, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	in.busy = false
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		in.stopping = false
		return err
	}
	if err == nil {
		c.confirmLater(name, id)
	}
	in.id = ""
	c.forget(in)
	return err
}

// confirmTimeout bounds how long the Compute follows a deleted server
// (one soft-deleted and not force-deletable waits for its reclaim).
const confirmTimeout = time.Hour

// confirmLater sees the delete of server id through in the background
// (confirmGone). Called with c.mu held.
func (c *Compute) confirmLater(name, id string) {
	if c.closed {
		return // Close returns once its own deletes are done
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// Until the server is gone, or Close (Nova has the delete).
		ctx, cancel := context.WithTimeout(c.ctx, confirmTimeout)
		defer cancel()
		if err := c.confirmGone(ctx, name, id, true); err != nil && c.ctx.Err() == nil {
			c.log.Warn("nova: a deleted server did not go", "name", name, "server", id, "error", err)
		}
	}()
}

// Reap deletes, in the background, the server of instance name, whose
// program's exit is recorded (backend.Reaper): a server whose program
// ended stays, holding quota, until deleted, and Nova may show it SHUTOFF
// only minutes later. It does nothing for an instance this Compute does
// not track or is already deleting.
func (c *Compute) Reap(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.insts[name]
	if in == nil || c.closed || in.stopping || in.state == stEnding {
		return
	}
	in.ran = true
	switch {
	case in.state == stStarting || in.state == stRetrying:
		in.stopping = true
		if in.cancel != nil {
			in.cancel()
		}
	case in.busy:
		in.reap = true // whoever is busy with it ends it
	default:
		c.setEnding(in, false)
	}
}

var _ backend.Reaper = (*Compute)(nil)

// stopUntracked deletes the servers named name that carry rack metadata.
func (c *Compute) stopUntracked(ctx context.Context, name string) error {
	found, err := c.lookup(ctx, "stop "+name, name)
	if err != nil {
		return err
	}
	n := 0
	for _, s := range found {
		if s.Metadata[MetaNamespace] == "" && s.Metadata[MetaPID] == "" || gone(&s) {
			continue
		}
		if err := c.deleteServer(ctx, name, s.ID); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return err
		} else if err == nil {
			c.mu.Lock()
			c.confirmLater(name, s.ID)
			c.mu.Unlock()
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("nova: stop %s: no such server: %w", name, backend.ErrNotFound)
	}
	return nil
}

// List returns the instances of namespace ("" for all) whose servers are
// building, active, or being re-created after a failed boot, by PID. It
// makes no API call.
func (c *Compute) List(ctx context.Context, namespace string) ([]backend.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("nova: list: %w", ErrClosed)
	}
	var out []backend.Instance
	for _, in := range c.insts {
		if in.stopping || in.state == stStarting || in.state == stEnding {
			continue
		}
		if namespace == "" || in.info.Namespace == namespace {
			out = append(out, in.info)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PID != out[j].PID {
			return out[i].PID < out[j].PID
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// RetriesStart reports true (backend.StartRetrier): Start owns the attempts
// for starting an instance. Only it can tell, by looking the name up,
// whether a create that failed ambiguously made a server (so that a retry
// never makes a second one), and it waits out quota and rate limits
// (honouring Retry-After) for as long as its context allows; it retries a
// staging failure too. The kernel therefore calls it once per process
// instead of retrying it, which would multiply its attempts.
func (c *Compute) RetriesStart() bool { return true }

var _ backend.StartRetrier = (*Compute)(nil)

// Failure reports why the instance named name ended abnormally, if it did:
// for example "boot failed: No valid host was found. ..." once its boot
// retries are spent, or "bootstrap failed: rack-bootstrap: digest
// mismatch: ..." when its server powered off without running the program.
// An instance whose program ran and exited has no failure.
func (c *Compute) Failure(name string) (reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reason, ok = c.failures[name]
	return reason, ok
}

// fail records reason as the failure of in. Called with c.mu held.
func (c *Compute) fail(in *instance, reason string) {
	c.failures[in.info.Name] = reason
	c.log.Warn("nova: instance failed", "name", in.info.Name, "reason", reason)
}

// closeTimeout bounds how long Close (and a clean-up) tries to delete
// servers.
const closeTimeout = 2 * time.Minute

// Close stops the poller and deletes every server this Compute started
// but the hosts' (backend.HostOption) that have been created, which end
// themselves. It waits for Starts under way, which fail with ErrClosed.
func (c *Compute) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	c.mu.Lock()
	ins := make([]*instance, 0, len(c.insts))
	for _, in := range c.insts {
		if in.host && in.id != "" && !in.stopping && (in.state == stBuilding || in.state == stActive) {
			c.releaseSlot(in)
			continue // a host ends itself (backend.HostOption)
		}
		ins = append(ins, in)
	}
	c.mu.Unlock()
	errs := make([]error, len(ins))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = c.reap(ctx, in)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
