// Package computetest is the conformance suite that every backend.Compute
// driver must pass, in the style of the Go CDK drivertest packages.
//
// A driver's test hands Run a HarnessMaker; Run makes a fresh Harness and
// Compute for every test and drives the compute only through the
// backend.Compute interface. Because many computes never call
// StartRequest.Run (an OS-process compute re-executes a program, a cloud
// compute boots a server), the suite does not build requests itself: the
// Harness builds a request for a named Behaviour and reports what it has
// observed of the instances, however the driver runs them.
//
// For a compute that runs StartRequest.Run in the test's own process, the
// InProcess harness is ready made:
//
//	func TestConformance(t *testing.T) {
//		computetest.Run(t, computetest.InProcess(func(ctx context.Context) (backend.Compute, error) {
//			return inproc.New(), nil
//		}))
//	}
//
//	func BenchmarkConformance(b *testing.B) {
//		computetest.RunBenchmarks(b, computetest.InProcess(...))
//	}
//
// For a compute whose instances are new copies of the test binary (or of
// another program that calls ServeChild), Separate is ready made, with
// ServeChild as its child half:
//
//	func TestMain(m *testing.M) {
//		computetest.ServeChild() // acts as a test instance and exits, if started as one
//		os.Exit(m.Run())
//	}
//
//	func TestConformance(t *testing.T) {
//		computetest.Run(t, computetest.Separate(func(ctx context.Context) (backend.Compute, error) {
//			return osproc.New()
//		}))
//	}
package computetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// Behaviour is what the program of a test instance does once started.
type Behaviour int

const (
	// ExitAtOnce: the instance records that it started and ends at once,
	// successfully, without being stopped.
	ExitAtOnce Behaviour = iota + 1
	// RunUntilStopped: the instance records that it started and then runs
	// until the compute ends it (Stop or Close): an in-process instance
	// waits for its context to be cancelled, a separate program blocks
	// until it is killed.
	RunUntilStopped
)

// String returns "exit-at-once" or "run-until-stopped", a form meant to be
// passed to a child program in StartRequest.Env and read back with
// ParseBehaviour.
func (b Behaviour) String() string {
	switch b {
	case ExitAtOnce:
		return "exit-at-once"
	case RunUntilStopped:
		return "run-until-stopped"
	}
	return fmt.Sprintf("Behaviour(%d)", int(b))
}

// ParseBehaviour is the inverse of Behaviour.String.
func ParseBehaviour(s string) (Behaviour, error) {
	for _, b := range []Behaviour{ExitAtOnce, RunUntilStopped} {
		if s == b.String() {
			return b, nil
		}
	}
	return 0, fmt.Errorf("computetest: unknown behaviour %q", s)
}

// Observation is what a Harness has seen of the instances started from the
// requests it built for one name.
type Observation struct {
	// Started counts the runs of the instance's program that have begun.
	// A conforming compute makes it at most 1 per name in the suite.
	Started int
	// Ended counts the runs that have ended, whichever way: the program
	// returned or exited, or the compute stopped or killed it. Ended never
	// exceeds Started; Started - Ended runs are live.
	Ended int
}

// Harness adapts one Compute driver to the suite. The suite makes a new
// Harness for every test, calls MakeCompute once, closes the compute
// itself, and then calls Close.
//
// Request and Observe must be safe for concurrent use (benchmarks call them
// from several goroutines).
//
// # Implementing a Harness for a compute that ignores Run
//
// Request puts into StartRequest.Env whatever the new program needs to
// report back: the behaviour (Behaviour.String), the name, and a place
// the harness watches, such as a directory made with t.TempDir. The program,
// typically the test binary re-executed by the compute, looks for those
// variables in TestMain and, when they are present, acts as the instance
// instead of running tests: it records that it started, then exits at once
// or blocks until it is killed.
//
// Starts are easy to record with marker files: the child creates
// dir/<name>.<its OS pid>.start, and Observe counts the files, so a second
// run of one name shows as Started == 2. Ends are harder, because Stop
// kills without grace and a killed program writes nothing. The end must
// therefore be something the operating system releases when the program
// dies: the child takes an exclusive flock on its start file and holds it
// for life, and Observe counts as ended the start files it can lock itself
// (LOCK_EX|LOCK_NB, then unlock, remembering which have ended); or the child
// dials a Unix socket the harness listens on, and the harness counts
// connections as starts and closed connections as ends. An exiting
// ExitAtOnce program releases its lock or connection the same way, so no
// separate exit marker is needed. Separate and ServeChild implement the
// flock scheme; a harness for another kind of compute can reuse their
// parts: ChildEnv for the request's environment, Markers for Observe.
//
// A harness for a cloud compute backed by an emulator that runs nothing
// can observe through the emulator instead: Started counts the servers of
// the name that were created, Ended those deleted or shut off; for
// ExitAtOnce it asks the emulator to shut the server off once it is active.
type Harness interface {
	// MakeCompute returns the compute under test, empty.
	MakeCompute(ctx context.Context) (backend.Compute, error)

	// Request returns a request for an instance with the given identity
	// whose program behaves as b. It must set Namespace, PID and Name as
	// given, and whatever else the driver needs (Run, Env, Options).
	//
	// The suite may call Request more than once for one name (to check
	// that a second Start of a live name runs nothing): Observe then adds
	// up the runs of all requests of that name. The suite never reuses a
	// name for a different instance within one Harness.
	Request(t testing.TB, namespace, name string, pid int64, b Behaviour) *backend.StartRequest

	// Observe reports the runs seen so far of the requests named name; a
	// name never requested, or never started, has the zero Observation.
	// The suite polls it, so it should be cheap and not block for long.
	Observe(ctx context.Context, name string) (Observation, error)

	// Close releases the harness's resources. The compute has been closed
	// already.
	Close()
}

// HarnessMaker makes a Harness for one test or benchmark.
type HarnessMaker func(ctx context.Context, t testing.TB) (Harness, error)

// Patient may be implemented by a Harness whose instances take long to
// start or end (a booting server), to change how long the suite waits.
type Patient interface {
	// Patience returns how long the suite waits for something expected to
	// happen (an instance to start, to end, to leave List) before failing,
	// and how long it watches for something that must not happen (a second
	// run) before passing. Zero keeps DefaultWait or DefaultSettle.
	Patience() (wait, settle time.Duration)
}

// ProcessFinder may be implemented by a Harness whose instances are OS
// processes of this machine (Separate's are). The suite needs it to check
// a compute that reports backend.SameMachine.
type ProcessFinder interface {
	// OSPIDs returns the OS process ids of the live runs of instance name.
	OSPIDs(name string) ([]int, error)
}

// Defaults for Patient.
const (
	DefaultWait   = 10 * time.Second
	DefaultSettle = 20 * time.Millisecond
)

// PromptLimit bounds how long Start may take to fail when its context is
// already cancelled.
const PromptLimit = time.Second
