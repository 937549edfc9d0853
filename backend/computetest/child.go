package computetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/osfile"
)

// Computes whose instances are separate programs.
//
// A compute that starts a new copy of a program (an OS process, a server
// booted from an image that runs the test binary) cannot run
// StartRequest.Run. For such computes the suite provides the two halves of
// a file-based harness:
//
//   - the child half, ServeChild, which the program calls first thing in
//     TestMain (or main): when its environment names a test instance, it
//     acts as that instance and exits, instead of running tests;
//   - the parent half, Separate, a HarnessMaker whose requests carry that
//     environment (ChildEnv) and whose Observe reads what the children
//     recorded (Markers).
//
// A child records its start as a file, dir/<name>/<OS pid>.start, which it
// creates under another name, locks exclusively with flock(2), and only
// then renames into place; it holds the lock for life. The operating
// system releases the lock when the program ends, however it ends (exit,
// SIGKILL, a crash), so a start file that can be locked belongs to an
// ended run. The observer never mistakes a starting run for an ended one,
// because a start file is visible only once locked. The directory must be
// shared by the harness and the children: the same machine, or a file
// system both mount.
//
// In a driver's test:
//
//	func TestMain(m *testing.M) {
//		computetest.ServeChild() // returns unless started as a test instance
//		os.Exit(m.Run())
//	}
//
//	func TestConformance(t *testing.T) {
//		computetest.Run(t, computetest.Separate(func(ctx context.Context) (backend.Compute, error) {
//			return mycompute.New(...) // starts copies of os.Args[0]
//		}))
//	}

// Environment variables that ChildEnv sets and ServeChild reads.
const (
	// ChildDirEnv names the directory where the instance records its runs.
	ChildDirEnv = "RACK_COMPUTETEST_DIR"
	// ChildNameEnv is the instance's name (StartRequest.Name).
	ChildNameEnv = "RACK_COMPUTETEST_NAME"
	// ChildBehaviourEnv is the Behaviour, as Behaviour.String writes it.
	ChildBehaviourEnv = "RACK_COMPUTETEST_BEHAVIOUR"
)

// ChildEnv returns the environment (for StartRequest.Env) that makes a
// program calling ServeChild act as instance name with behaviour b,
// recording its runs under dir.
func ChildEnv(dir, name string, b Behaviour) map[string]string {
	return map[string]string{ChildDirEnv: dir, ChildNameEnv: name, ChildBehaviourEnv: b.String()}
}

// IsChild reports whether this program's environment asks it to act as a
// test instance (ServeChild would not return).
func IsChild() bool {
	return os.Getenv(ChildDirEnv) != "" || os.Getenv(ChildNameEnv) != "" || os.Getenv(ChildBehaviourEnv) != ""
}

// ServeChild acts as the test instance that the environment (see ChildEnv)
// names, if any, and then exits: with status 0 once an ExitAtOnce instance
// has recorded its start; a RunUntilStopped instance blocks until it is
// killed (or, as a safety net against leaked children, until its start
// file is removed, as Separate's harness does when it closes). Without
// those variables it returns at once. A malformed environment, or a
// failure to record the start, ends the program with status 3 and a
// message on stderr.
func ServeChild() {
	if !IsChild() {
		return
	}
	path, err := recordStart(os.Getenv(ChildDirEnv), os.Getenv(ChildNameEnv), os.Getenv(ChildBehaviourEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "computetest: test instance: %v\n", err)
		os.Exit(3)
	}
	if b, _ := ParseBehaviour(os.Getenv(ChildBehaviourEnv)); b == RunUntilStopped {
		for {
			time.Sleep(time.Second)
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				os.Exit(0) // the harness is gone: do not outlive it
			}
		}
	}
	os.Exit(0)
}

// heldStart keeps the locked start file of this program open (and so
// locked) for its life: an unreachable *os.File would be closed by its
// finalizer. Written, never read: that is its use.
//
//lint:ignore U1000 it holds the file for the program's life
var heldStart *os.File

// recordStart creates, locks and publishes this run's start file and
// returns its path.
func recordStart(dir, name, behaviour string) (string, error) {
	if _, err := ParseBehaviour(behaviour); err != nil {
		return "", err
	}
	if dir == "" || !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s=%q: want an absolute directory", ChildDirEnv, dir)
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(d, ".starting-*")
	if err != nil {
		return "", err
	}
	if err := osfile.Lock(f, true); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("locking the start file: %w", err)
	}
	path := filepath.Join(d, strconv.Itoa(os.Getpid())+startSuffix)
	if err := os.Rename(f.Name(), path); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	heldStart = f
	return path, nil
}

const startSuffix = ".start"

// checkName accepts instance names that are one path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("instance name %q cannot name a directory", name)
	}
	return nil
}

// Markers observes the runs that ServeChild recorded in a directory. It is
// safe for concurrent use.
type Markers struct {
	dir string

	mu    sync.Mutex
	ended map[string]bool // start files known to belong to ended runs
}

// NewMarkers returns a Markers reading dir, the directory passed to
// ChildEnv.
func NewMarkers(dir string) *Markers {
	return &Markers{dir: dir, ended: make(map[string]bool)}
}

// Dir returns the directory the children record their runs in.
func (m *Markers) Dir() string { return m.dir }

// Observe counts the recorded runs of instance name: Started counts start
// files, Ended those whose lock is free (the run ended). It does not block.
func (m *Markers) Observe(name string) (Observation, error) {
	if err := checkName(name); err != nil {
		return Observation{}, err
	}
	d := filepath.Join(m.dir, name)
	entries, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) {
		return Observation{}, nil
	}
	if err != nil {
		return Observation{}, err
	}
	var o Observation
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), startSuffix) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		o.Started++
		path := filepath.Join(d, e.Name())
		m.mu.Lock()
		known := m.ended[path]
		m.mu.Unlock()
		if known {
			o.Ended++
			continue
		}
		free, err := lockFree(path)
		if err != nil {
			return Observation{}, err
		}
		if free {
			m.mu.Lock()
			m.ended[path] = true
			m.mu.Unlock()
			o.Ended++
		}
	}
	return o, nil
}

// OSPIDs returns the OS process ids of the recorded runs of instance name
// that are still live (their start file is locked).
func (m *Markers) OSPIDs(name string) ([]int, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	d := filepath.Join(m.dir, name)
	entries, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), startSuffix)
		if !ok || strings.HasPrefix(base, ".") {
			continue
		}
		pid, err := strconv.Atoi(base)
		if err != nil {
			return nil, fmt.Errorf("start file %s names no OS pid", filepath.Join(d, e.Name()))
		}
		free, err := lockFree(filepath.Join(d, e.Name()))
		if err != nil {
			return nil, err
		}
		if !free {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// lockFree reports whether nobody holds a lock on the file at path.
func lockFree(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return osfile.TryLock(f)
}

// SeparateOption configures the harness that Separate makes.
type SeparateOption func(*separate)

// WithOptions sets StartRequest.Options for every request (an image, a
// flavor...). The map is copied.
func WithOptions(opts map[string]string) SeparateOption {
	return func(h *separate) { h.options = maps.Clone(opts) }
}

// WithPatience sets what the harness's Patience returns (see Patient):
// how long the suite waits for an instance to start or end, and how long
// it watches for unwanted runs. Zero keeps the default.
func WithPatience(wait, settle time.Duration) SeparateOption {
	return func(h *separate) { h.wait, h.settle = wait, settle }
}

// Separate returns a HarnessMaker for computes whose instances are new
// copies of a program that calls ServeChild (typically the test binary,
// which the compute starts again). makeCompute returns a new, empty
// compute each time it is called.
//
// Each harness records runs in a new temporary directory, removed by its
// Close. Its requests carry Namespace, PID, Name, Env (ChildEnv: the
// directory, the name and the behaviour) and the options given with
// WithOptions; they leave Run nil. Observe reads the start files (see
// Markers).
//
// It needs flock(2); on systems without it the HarnessMaker fails.
func Separate(makeCompute func(ctx context.Context) (backend.Compute, error), opts ...SeparateOption) HarnessMaker {
	return func(ctx context.Context, t testing.TB) (Harness, error) {
		if !osfile.HaveLocks {
			return nil, fmt.Errorf("computetest: Separate: %w: no flock(2) on this system", errors.ErrUnsupported)
		}
		dir, err := os.MkdirTemp("", "computetest-")
		if err != nil {
			return nil, fmt.Errorf("computetest: Separate: %w", err)
		}
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("computetest: Separate: %w", err)
		}
		h := &separate{makeCompute: makeCompute, markers: NewMarkers(dir)}
		for _, o := range opts {
			o(h)
		}
		return h, nil
	}
}

// separate is the Harness made by Separate.
type separate struct {
	makeCompute  func(ctx context.Context) (backend.Compute, error)
	markers      *Markers
	options      map[string]string
	wait, settle time.Duration
}

func (h *separate) MakeCompute(ctx context.Context) (backend.Compute, error) {
	return h.makeCompute(ctx)
}

func (h *separate) Request(t testing.TB, namespace, name string, pid int64, b Behaviour) *backend.StartRequest {
	if err := checkName(name); err != nil {
		t.Errorf("computetest: Separate: %v", err)
		return nil
	}
	return &backend.StartRequest{
		Namespace: namespace, PID: pid, Name: name,
		Env:     ChildEnv(h.markers.Dir(), name, b),
		Options: maps.Clone(h.options),
	}
}

func (h *separate) Observe(ctx context.Context, name string) (Observation, error) {
	return h.markers.Observe(name)
}

func (h *separate) Patience() (wait, settle time.Duration) { return h.wait, h.settle }

func (h *separate) OSPIDs(name string) ([]int, error) { return h.markers.OSPIDs(name) }

// Close removes the directory; a RunUntilStopped child that outlived the
// compute notices and exits.
func (h *separate) Close() { os.RemoveAll(h.markers.Dir()) }
