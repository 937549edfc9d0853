// Package novaemu is an in-process emulator of the OpenStack Compute (Nova)
// API v2.1, for testing a Nova compute driver without a cloud.
//
// It serves the subset of the API that a driver built on gophercloud uses:
// version documents and microversion negotiation, server create (with
// user_data, metadata, tags and multi-create), show, list (index and
// detail, with Nova's name, status, reservation_id and tag filters and
// limit/marker pagination), delete, server metadata, and the
// os-getConsoleOutput, os-stop and os-start actions, and flavor show
// (GET /flavors/{id}, from Config.Flavors). Bodies, status codes
// and error messages follow Nova's own (nova/api/openstack/compute), so a
// driver that works here meets the same shapes on a real cloud.
//
// A server's "VM" is a local OS process: once the server goes ACTIVE, its
// decoded user_data, if it starts with "#!", is run with that interpreter in
// a process group of its own, in a per-server home directory, with an
// environment of only PATH, HOME, RACK_METADATA_URL and RACK_CLOUD_DIR
// (what cloud-init keeps in /var/lib/cloud; with a config drive also
// RACK_CONFIG_DRIVE, see Faults.NoMetadataService); its stdout and
// stderr are the console log. When the process exits the server goes
// SHUTOFF, like a VM whose OS powered off. Other user_data (cloud-config,
// none) boots a VM that runs nothing and stays ACTIVE.
//
// Real VMs find their metadata service at http://169.254.169.254; an
// emulated one finds it at RACK_METADATA_URL, which code run in a VM should
// prefer when it is set. Under it: /openstack/latest/meta_data.json,
// /openstack/latest/user_data and the EC2-style /latest/meta-data/instance-id
// and /latest/user-data.
//
// Faults can be injected (see Faults): failed boots, slow boots, 500, 503
// and 429 answers, an instance quota, killed VMs, and a create whose
// response is delayed past the client's timeout although the server was
// made. Other knobs of Faults model how a real cloud differs from the
// emulator's kind defaults, each citing the Nova source it follows: a late
// SHUTOFF, quota wordings, the conductor's quota recheck, builds stuck in
// BUILD, servers missing from listings, 409 NetworkAmbiguous, 501 on the
// console, deletes that fail into ERROR, soft deletes, and no metadata
// service. Random choices come from a math/rand/v2 PCG seeded by Config.Seed,
// so a single client issuing requests one at a time sees the same faults on
// every run.
package novaemu

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Microversions served: the 2.1 API up to MaxMicroversion.
const (
	MinMicroversion = "2.1"
	MaxMicroversion = "2.96"
	maxMinor        = 96
)

// Config configures an Emulator. The zero value is usable.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:0" (a free port).
	Addr string
	// WorkDir holds one directory per server (home directory, user-data,
	// console log). Default: a temporary directory removed by Close.
	WorkDir string
	// ProjectID and UserID are reported as the owner of every server
	// (tenant_id, user_id). Defaults are fixed 32-hex strings.
	ProjectID, UserID string
	// AvailabilityZone is the zone of servers created without one; default
	// "nova".
	AvailabilityZone string
	// MetadataItems is the metadata_items quota: the most metadata keys a
	// server may have. Default 128, Nova's default.
	MetadataItems int
	// ValidateToken checks the X-Auth-Token of API requests; nil accepts any
	// non-empty token. See KeystoneValidator.
	ValidateToken TokenValidator
	// EnableInstancePassword makes create return a generated adminPass when
	// the request gave none, as Nova does with [api]enable_instance_password
	// (its default). Off by default here: a password the driver does not
	// need is a secret it might log.
	EnableInstancePassword bool
	// Flavors are the flavors GET /flavors/{id} shows and servers of
	// that flavorRef report (from microversion 2.47, embedded in the
	// server). Default DefaultFlavors. A create does not check its
	// flavorRef against them: a server of an unknown flavor reports
	// zero sizes.
	Flavors []Flavor
	// Seed seeds the random choices of fault injection and boot jitter.
	Seed uint64
	// Faults are the initial fault-injection settings; see SetFaults.
	Faults Faults
}

// Faults are the fault-injection and timing knobs. They can be changed at
// any time with (*Emulator).SetFaults; a change applies to requests and
// boots that start after it.
type Faults struct {
	// BootDelay is how long a server stays BUILD before it goes ACTIVE (or
	// ERROR); BootJitter adds a uniformly random extra in [0, BootJitter).
	BootDelay, BootJitter time.Duration
	// BootFailureRate is the fraction of boots that end in ERROR with the
	// fault "No valid host was found. ...".
	BootFailureRate float64
	// ServerErrorRate and UnavailableRate are the fractions of API requests
	// (under /v2.1/, after authentication) answered 500 and 503 without
	// being acted on. RateLimitRate is the fraction answered 429 with
	// Retry-After: RetryAfter (default 1s), as a rate-limiting proxy in
	// front of Nova does.
	ServerErrorRate, UnavailableRate, RateLimitRate float64
	RetryAfter                                      time.Duration
	// CreateResponseDelay delays the response of every POST /servers by
	// this much after the servers were created: a client with a shorter
	// timeout sees a failure although the create took effect.
	CreateResponseDelay time.Duration
	// DeleteDelay keeps a deleted server visible for this long: first with
	// task_state "deleting", for the second half with status DELETED; then
	// it is gone (404). Its process is killed at once. It counts against
	// the quota until gone. Default 0: gone at once.
	DeleteDelay time.Duration
	// InstanceQuota is the most servers that may exist at once (in any
	// state, until deleted, soft-deleted ones included); 0 means no limit.
	InstanceQuota int

	// The knobs below model how a real cloud behaves where the defaults
	// above are kinder; each cites the Nova source it follows.

	// ShutoffDelay keeps a server whose VM powered off (its script ended)
	// ACTIVE, with power_state SHUTDOWN, this long before it shows SHUTOFF.
	// Nova learns of a guest that stopped from a lifecycle event, which the
	// libvirt driver holds back 15 s (LIFECYCLE_DELAY in
	// nova/virt/libvirt/host.py) before the compute manager stops the
	// instance; drivers without lifecycle events (Ironic, VMware, zVM)
	// notice at the next power-state sync, every sync_power_state_interval,
	// default 600 s (nova/conf/compute.py).
	ShutoffDelay time.Duration
	// QuotaStyle is the wording of a create refused for quota (403):
	// QuotaClassic, QuotaUnified or QuotaPorts.
	QuotaStyle QuotaStyle
	// RecheckQuota lets a create over InstanceQuota through the API's
	// check, as when two creates race, and the server goes ERROR with a
	// quota fault when the conductor re-checks the quota before the build
	// ([quota]recheck_quota, default true, nova/conf/quota.py; the recheck
	// in schedule_and_build_instances, nova/conductor/manager.py).
	RecheckQuota bool
	// StuckBuild leaves every server created from now on in BUILD for
	// good, as a lost RPC cast does: Nova gives up on a build only after
	// instance_build_timeout, default 0, never (nova/conf/compute.py).
	StuckBuild bool
	// HideFromListings leaves a server out of listings (GET /servers and
	// /servers/detail) for this long after it went ACTIVE, as Nova skips
	// the servers of a cell that does not respond ("Cell %s is not
	// responding and hence skipped from the results",
	// nova/compute/multi_cell_list.py; below microversion 2.69 nothing
	// marks them). GET /servers/{id} still finds it.
	HideFromListings time.Duration
	// NetworkAmbiguous answers a create with networks "auto" (or with no
	// networks, below 2.37) 409 "Multiple possible networks found, use a
	// Network ID to be more specific.", as Nova does when the project sees
	// more than one network (NetworkAmbiguous in nova/exception.py, a
	// HTTPConflict in nova/api/openstack/compute/servers.py).
	NetworkAmbiguous bool
	// ConsoleNotImplemented answers os-getConsoleOutput 501, as on a
	// driver without a console log, Ironic
	// (nova/api/openstack/compute/console_output.py turns
	// NotImplementedError into HTTPNotImplemented).
	ConsoleNotImplemented bool
	// DeleteFailures makes the next so many deletes fail on the compute
	// host: the DELETE is accepted (204), the VM dies, and the server goes
	// ERROR (task_state none) with a fault instead of going away, as the
	// compute manager leaves an instance whose terminate failed
	// (_delete_instance and _set_instance_obj_error_state in
	// nova/compute/manager.py). Each such delete decrements it.
	DeleteFailures int
	// ReclaimInterval, when positive, makes the delete of a server that
	// was ever ACTIVE a soft delete, as with reclaim_instance_interval > 0
	// (nova/conf/compute.py; _delete in
	// nova/api/openstack/compute/servers.py calls soft_delete): the server
	// shows SOFT_DELETED, still counts against the quota, and is reclaimed
	// this long after, or at once by the forceDelete action.
	ReclaimInterval time.Duration
	// NoMetadataService makes the metadata service answer 404, as on a
	// cloud without one: a VM then learns who it is from its config drive
	// (RACK_CONFIG_DRIVE, the mounted config-2 filesystem, with
	// openstack/latest/meta_data.json, written as with force_config_drive,
	// nova/conf/configdrive.py) or from what cloud-init wrote
	// (RACK_CLOUD_DIR, i.e. /var/lib/cloud, with data/instance-id).
	NoMetadataService bool
}

// QuotaStyle is a wording of Nova's quota refusal.
type QuotaStyle int

// Quota wordings.
const (
	// QuotaClassic is the DbQuotaDriver's "Quota exceeded for instances:
	// Requested 1, but already used 10 of 10 instances" (TooManyInstances,
	// nova/exception.py).
	QuotaClassic QuotaStyle = iota
	// QuotaUnified is unified limits' "Project P is over a limit for
	// [Resource servers is over limit of 10 due to current usage 10 and
	// delta 1]" (ProjectOverLimit, raised from nova/limit/placement.py and
	// nova/limit/local.py).
	QuotaUnified
	// QuotaPorts is Neutron's port quota as Nova passes it on: "Maximum
	// number of ports exceeded" (PortLimitExceeded, nova/exception.py).
	QuotaPorts
)

// Flavor is one flavor: a server's size.
type Flavor struct {
	ID, Name string
	VCPUs    int
	RAM      int // MiB
	Disk     int // GiB
}

// DefaultFlavors are the m1 flavors a cloud had by default up to Mitaka
// (nova's flavor migrations created them; since Newton devstack's
// lib/nova creates the same), with their ids 1 to 5, and one of 10 vCPUs,
// "c1.ten" (id 10), for hosts of 10 slots.
var DefaultFlavors = []Flavor{
	{ID: "1", Name: "m1.tiny", VCPUs: 1, RAM: 512, Disk: 1},
	{ID: "2", Name: "m1.small", VCPUs: 1, RAM: 2048, Disk: 20},
	{ID: "3", Name: "m1.medium", VCPUs: 2, RAM: 4096, Disk: 40},
	{ID: "4", Name: "m1.large", VCPUs: 4, RAM: 8192, Disk: 80},
	{ID: "5", Name: "m1.xlarge", VCPUs: 8, RAM: 16384, Disk: 160},
	{ID: "10", Name: "c1.ten", VCPUs: 10, RAM: 8192, Disk: 20},
}

// TokenValidator checks an auth token. It returns nil if the token is valid,
// an error wrapping ErrInvalidToken if it is not (the request gets 401), or
// another error if it cannot tell (the request gets 503, as
// keystonemiddleware answers when Keystone is unreachable).
type TokenValidator func(ctx context.Context, token string) error

// ErrInvalidToken is wrapped by TokenValidator errors for a token that is
// not valid.
var ErrInvalidToken = errors.New("novaemu: invalid token")

// Emulator is a running Nova API emulator. Its methods are safe for
// concurrent use.
type Emulator struct {
	cfg     Config
	ln      net.Listener
	srv     *http.Server
	base    string // http://127.0.0.1:PORT
	root    string // work root
	ownRoot bool
	closing chan struct{}

	mu      sync.Mutex
	faults  Faults
	rng     *mrand.Rand
	servers map[string]*server
	seq     int64
	calls   map[string]int
	closed  bool
}

// ServerInfo is a snapshot of one server, for tests.
type ServerInfo struct {
	ID, Name      string
	Status        string // BUILD, ACTIVE, SHUTOFF, ERROR or DELETED
	TaskState     string // "" or "deleting"
	Metadata      map[string]string
	Tags          []string
	UserData      []byte // decoded
	Console       string // everything the process wrote so far
	Created       time.Time
	ReservationID string
	LaunchIndex   int
	// PID is the process group leader of the server's process while it
	// runs, else 0. ExitCode is its exit status once it exited (-1 if it
	// was killed by a signal), or -1 before.
	PID, ExitCode int
	Dir           string // the server's home directory
}

// Start starts an emulator listening on cfg.Addr.
func Start(cfg Config) (*Emulator, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = "6f70656e737461636b20342065766572"
	}
	if cfg.UserID == "" {
		cfg.UserID = "a6f7f2b0c4e84b0c9b1b6e1c1d2e3f40"
	}
	if cfg.AvailabilityZone == "" {
		cfg.AvailabilityZone = "nova"
	}
	if cfg.Flavors == nil {
		cfg.Flavors = DefaultFlavors
	}
	if cfg.MetadataItems == 0 {
		cfg.MetadataItems = 128
	}
	e := &Emulator{
		cfg:     cfg,
		root:    cfg.WorkDir,
		closing: make(chan struct{}),
		faults:  cfg.Faults,
		rng:     mrand.New(mrand.NewPCG(cfg.Seed, 0x6e6f7661656d75)),
		servers: map[string]*server{},
		calls:   map[string]int{},
	}
	if e.root == "" {
		d, err := os.MkdirTemp("", "novaemu-")
		if err != nil {
			return nil, err
		}
		e.root, e.ownRoot = d, true
	} else if err := os.MkdirAll(e.root, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if e.ownRoot {
			os.RemoveAll(e.root)
		}
		return nil, err
	}
	e.ln = ln
	e.base = "http://" + ln.Addr().String()
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serveHTTP), ReadHeaderTimeout: 30 * time.Second}
	go e.srv.Serve(ln)
	return e, nil
}

// URL returns the compute endpoint to register in a service catalog (or to
// use as a gophercloud ServiceClient endpoint, with a trailing slash):
// http://127.0.0.1:PORT/v2.1.
func (e *Emulator) URL() string { return e.base + "/v2.1" }

// BaseURL returns the root of the emulator, http://127.0.0.1:PORT.
func (e *Emulator) BaseURL() string { return e.base }

// Faults returns the current fault settings.
func (e *Emulator) Faults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults
}

// SetFaults replaces the fault settings.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	e.faults = f
	e.mu.Unlock()
}

// Servers returns a snapshot of every server not yet gone, oldest first.
func (e *Emulator) Servers() []ServerInfo {
	e.mu.Lock()
	list := make([]*server, 0, len(e.servers))
	for _, s := range e.servers {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	out := make([]ServerInfo, len(list))
	for i, s := range list {
		out[i] = ServerInfo{
			ID: s.id, Name: s.name, Status: s.status(), TaskState: s.taskState,
			Metadata: copyMap(s.metadata), Tags: append([]string(nil), s.tags...),
			UserData: append([]byte(nil), s.userData...), Created: s.created,
			ReservationID: s.reservationID, LaunchIndex: s.launchIndex,
			PID: s.pid, ExitCode: s.exitCode, Dir: s.home(),
		}
	}
	e.mu.Unlock()
	for i := range out { // read console files outside the lock
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(out[i].Dir), "console.log"))
		out[i].Console = string(b)
	}
	return out
}

// Calls returns how many requests each route received, keyed by method and
// route template with the /v2.1 prefix removed, e.g. "POST /servers",
// "GET /servers/{id}", "GET /servers/detail", "POST /servers/{id}/action",
// "DELETE /servers/{id}"; the version documents are "GET /" and
// "GET /v2.1". Requests that failed (auth, injected faults) count too: they
// are calls the client made. Metadata-service requests are not API calls and
// are not counted.
func (e *Emulator) Calls() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return copyMap(e.calls)
}

// ResetCalls zeroes the call counts.
func (e *Emulator) ResetCalls() {
	e.mu.Lock()
	e.calls = map[string]int{}
	e.mu.Unlock()
}

// Kill makes server id's VM die as if its host lost it: its process group
// gets SIGKILL and the server goes SHUTOFF, or ERROR (with a fault) if
// toError. It is an error if the server does not exist or is not ACTIVE.
func (e *Emulator) Kill(id string, toError bool) error {
	e.mu.Lock()
	s := e.servers[id]
	if s == nil || s.deleting || s.vmState != vmActive {
		e.mu.Unlock()
		return fmt.Errorf("novaemu: server %s is not active", id)
	}
	if toError {
		s.setError(500, "Instance lost: the hypervisor reported the VM crashed (injected by novaemu).")
	} else {
		s.setStopped()
	}
	done, pid := s.done, s.pid
	e.mu.Unlock()
	killAndWait(pid, done)
	return nil
}

// Close kills every server's process, stops the HTTP server and removes
// the work directory if Start made it.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.closing)
	type victim struct {
		pid  int
		done chan struct{}
	}
	var vs []victim
	for _, s := range e.servers {
		if s.timer != nil {
			s.timer.Stop()
		}
		vs = append(vs, victim{s.pid, s.done})
	}
	e.mu.Unlock()
	for _, v := range vs {
		killAndWait(v.pid, v.done)
	}
	err := e.srv.Close()
	if e.ownRoot {
		os.RemoveAll(e.root)
	}
	return err
}

// killAndWait SIGKILLs process group pid (if pid > 0) and waits until its
// leader is reaped, so no zombie or orphan outlives the call. A process that
// moved itself out of the group (setsid) escapes, as it would from nothing
// short of a VM teardown.
func killAndWait(pid int, done chan struct{}) {
	if pid <= 0 || done == nil {
		return
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newUUID returns a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// randomString returns n random characters from alphabet.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}
