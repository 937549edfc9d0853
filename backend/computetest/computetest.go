package computetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// Run runs the conformance tests against the compute made by each Harness
// that newHarness makes, one Harness and one compute per test, one test at a
// time. It checks that:
//
//   - Start returns the instance (Name, Namespace, PID, a non-zero Created)
//     and its program runs exactly once; a RunUntilStopped one keeps running;
//   - a second Start of a live Name, sequential or concurrent, fails with
//     backend.ErrExist and runs nothing; an empty Name fails with
//     backend.ErrInvalid;
//   - List shows a started instance as soon as Start returns, filters by
//     namespace exactly (not by prefix), and drops an instance that exited
//     or was stopped within the wait limit;
//   - an instance outlives the context passed to Start;
//   - Stop ends a running instance and only it, and fails with
//     backend.ErrNotFound for a name never started or already gone;
//   - 50 concurrent Starts of distinct names all run, and 50 concurrent
//     Stops end them;
//   - Start with a cancelled context fails within PromptLimit with an error
//     wrapping context.Canceled, and leaves nothing behind;
//   - Close ends every instance, and a later Start fails;
//   - a compute that reports backend.SameMachine starts an instance as an
//     OS process of this machine (the Harness must be a ProcessFinder)
//     whose environment holds StartRequest.Env, a 16 KiB value included,
//     and is not also backend.InProcess;
//   - a backend.SelfDeleter's DeleteSelf, called from the test program,
//     which runs in no instance, fails and deletes no instance;
//   - a backend.Reaper's Reap of an instance whose program ended returns
//     within PromptLimit and the instance leaves List; Reap of a name never
//     started does nothing to a running instance;
//   - a backend.Pauser pauses and resumes a running instance, either twice
//     in a row without error, leaves it listed while paused, fails with
//     backend.ErrNotFound for a name never started, and Stop ends a paused
//     instance;
//   - a backend.StartRetrier that owns its attempts answers the same every
//     time, and retries only what may succeed: a Start of a live name
//     (ErrExist) or of an empty one (ErrInvalid) fails within PromptLimit,
//     however long its context would let it try.
//
// After every test the suite closes the compute, unless the test did, and
// checks that every run it caused has ended.
//
// Instance names are "ct-<namespace>-<pid>" and namespaces are short words
// ("main", "a", "ab", "b", and "bench" in RunBenchmarks), all lower-case
// ASCII letters, digits and '-'.
func Run(t *testing.T, newHarness HarnessMaker) {
	tests := []struct {
		name string
		test func(*fixture)
	}{
		{"StartRunsOnce", testStartRunsOnce},
		{"RunsUntilStopped", testRunsUntilStopped},
		{"DuplicateNameWhileLive", testDuplicateNameWhileLive},
		{"ConcurrentDuplicateStarts", testConcurrentDuplicateStarts},
		{"InvalidName", testInvalidName},
		{"ListFiltersByNamespace", testListFiltersByNamespace},
		{"InstanceOutlivesStartContext", testInstanceOutlivesStartContext},
		{"ExitedInstanceLeavesList", testExitedInstanceLeavesList},
		{"StopEndsInstance", testStopEndsInstance},
		{"StopUnknown", testStopUnknown},
		{"ConcurrentStarts", testConcurrentStarts},
		{"StartCancelledContext", testStartCancelledContext},
		{"CloseStopsEverything", testCloseStopsEverything},
		{"SameMachine", testSameMachine},
		{"SelfDeleteOutsideInstance", testSelfDeleteOutsideInstance},
		{"StartRetrierFailsPermanentAtOnce", testStartRetrierFailsPermanentAtOnce},
		{"ReaperEndsExited", testReaperEndsExited},
		{"PauserPausesAndResumes", testPauserPausesAndResumes},
		{"PowerlessRefusesHosts", testPowerlessRefusesHosts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.test(newFixture(t, newHarness))
		})
	}
}

// Namespaces the tests use. "a" and "ab" catch prefix matching in List.
const (
	nsMain = "main"
	nsA    = "a"
	nsAB   = "ab"
	nsB    = "b"
)

// instanceName derives a name as the kernel would: lower case letters,
// digits and '-', acceptable to any compute.
func instanceName(namespace string, pid int64) string {
	return fmt.Sprintf("ct-%s-%d", namespace, pid)
}

// fixture is one test's harness and compute.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	h      Harness
	c      backend.Compute
	wait   time.Duration
	settle time.Duration
	closed bool // the test closed c itself

	mu    sync.Mutex
	names []string // every name requested, to check at cleanup
}

func newFixture(t *testing.T, newHarness HarnessMaker) *fixture {
	t.Helper()
	// The harness and compute outlive t.Context, which ends before the
	// cleanups run.
	h, err := newHarness(context.Background(), t)
	if err != nil {
		t.Fatalf("making harness: %v", err)
	}
	if h == nil {
		t.Fatal("HarnessMaker returned a nil Harness")
	}
	t.Cleanup(h.Close) // runs last
	f := &fixture{t: t, ctx: t.Context(), h: h}
	f.wait, f.settle = patience(h)
	c, err := h.MakeCompute(context.Background())
	if err != nil {
		t.Fatalf("MakeCompute: %v", err)
	}
	if c == nil {
		t.Fatal("MakeCompute returned a nil Compute")
	}
	f.c = c
	t.Cleanup(f.cleanup)
	return f
}

func patience(h Harness) (wait, settle time.Duration) {
	wait, settle = DefaultWait, DefaultSettle
	if p, ok := h.(Patient); ok {
		w, s := p.Patience()
		if w > 0 {
			wait = w
		}
		if s > 0 {
			settle = s
		}
	}
	return wait, settle
}

// cleanup closes the compute, unless the test did, and checks that every
// run the test caused has ended: Close must stop everything.
func (f *fixture) cleanup() {
	if !f.closed {
		if err := f.c.Close(); err != nil {
			f.t.Errorf("Close: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.wait)
	defer cancel()
	var live []string
	err := poll(f.wait, func() (bool, error) {
		live = live[:0]
		for _, name := range f.names {
			o, err := f.h.Observe(ctx, name)
			if err != nil {
				return false, fmt.Errorf("Observe(%q): %w", name, err)
			}
			if o.Ended < o.Started {
				live = append(live, name)
			}
		}
		return len(live) == 0, nil
	})
	if err != nil {
		f.t.Errorf("after Close: %v; instances still running: %q", err, live)
	}
}

// request asks the harness for a request and records its name.
func (f *fixture) request(namespace string, pid int64, b Behaviour) *backend.StartRequest {
	f.t.Helper()
	name := instanceName(namespace, pid)
	req := f.h.Request(f.t, namespace, name, pid, b)
	if req == nil {
		f.t.Fatalf("harness Request(%q, %q, %d, %v) returned nil", namespace, name, pid, b)
	}
	if req.Namespace != namespace || req.Name != name || req.PID != pid {
		f.t.Fatalf("harness Request(%q, %q, %d, %v) returned namespace %q, name %q, pid %d",
			namespace, name, pid, b, req.Namespace, req.Name, req.PID)
	}
	f.mu.Lock()
	if !slices.Contains(f.names, name) {
		f.names = append(f.names, name)
	}
	f.mu.Unlock()
	return req
}

// start starts req, which must succeed, and checks the instance returned.
func (f *fixture) start(req *backend.StartRequest) backend.Instance {
	f.t.Helper()
	inst, err := f.c.Start(f.ctx, req)
	if err != nil {
		f.t.Fatalf("Start(%q): %v", req.Name, err)
	}
	checkInstance(f.t, "Start", inst, req)
	return inst
}

func checkInstance(t testing.TB, op string, inst backend.Instance, req *backend.StartRequest) {
	t.Helper()
	if inst.Name != req.Name || inst.Namespace != req.Namespace || inst.PID != req.PID {
		t.Errorf("%s returned instance (name %q, namespace %q, pid %d), want (%q, %q, %d)",
			op, inst.Name, inst.Namespace, inst.PID, req.Name, req.Namespace, req.PID)
	}
	if inst.Created.IsZero() {
		t.Errorf("%s returned instance %q with zero Created", op, inst.Name)
	}
}

// observe returns the harness's observation of name.
func (f *fixture) observe(name string) Observation {
	f.t.Helper()
	o, err := f.h.Observe(f.ctx, name)
	if err != nil {
		f.t.Fatalf("harness Observe(%q): %v", name, err)
	}
	if o.Started < 0 || o.Ended < 0 || o.Ended > o.Started {
		f.t.Fatalf("harness Observe(%q) = %+v: impossible", name, o)
	}
	return o
}

// waitFor polls the observation of name until cond holds, failing the test
// after the wait limit.
func (f *fixture) waitFor(name, what string, cond func(Observation) bool) Observation {
	f.t.Helper()
	var o Observation
	var obsErr error
	err := poll(f.wait, func() (bool, error) {
		o, obsErr = f.h.Observe(f.ctx, name)
		if obsErr != nil {
			return false, obsErr
		}
		return cond(o), nil
	})
	if err != nil {
		f.t.Fatalf("waiting for %q %s: %v (last observation %+v)", name, what, err, o)
	}
	return o
}

func (f *fixture) waitStarted(name string) {
	f.t.Helper()
	f.waitFor(name, "to start", func(o Observation) bool { return o.Started >= 1 })
}

func (f *fixture) waitEnded(name string) {
	f.t.Helper()
	f.waitFor(name, "to end", func(o Observation) bool { return o.Started >= 1 && o.Ended >= o.Started })
}

// pause waits long enough for unwanted runs to show.
func (f *fixture) pause() { time.Sleep(f.settle) }

// wantRuns checks the observation of name, after the caller paused.
func (f *fixture) wantRuns(name string, started, ended int) {
	f.t.Helper()
	o := f.observe(name)
	if o.Started != started || o.Ended != ended {
		f.t.Errorf("instance %q: started %d times and ended %d times, want %d and %d", name, o.Started, o.Ended, started, ended)
	}
}

// list calls List, which must succeed.
func (f *fixture) list(namespace string) []backend.Instance {
	f.t.Helper()
	insts, err := f.c.List(f.ctx, namespace)
	if err != nil {
		f.t.Fatalf("List(%q): %v", namespace, err)
	}
	return insts
}

func names(insts []backend.Instance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.Name
	}
	slices.Sort(out)
	return out
}

// wantListed checks that List(namespace) holds exactly reqs, once each,
// with the right identities.
func (f *fixture) wantListed(namespace string, reqs ...*backend.StartRequest) {
	f.t.Helper()
	insts := f.list(namespace)
	want := make([]string, len(reqs))
	for i, r := range reqs {
		want[i] = r.Name
	}
	slices.Sort(want)
	if got := names(insts); !slices.Equal(got, want) {
		f.t.Errorf("List(%q) = %q, want %q", namespace, got, want)
		return
	}
	for _, inst := range insts {
		for _, r := range reqs {
			if r.Name == inst.Name {
				checkInstance(f.t, fmt.Sprintf("List(%q)", namespace), inst, r)
			}
		}
	}
}

// waitUnlisted polls List("") until name is gone from it.
func (f *fixture) waitUnlisted(name string) {
	f.t.Helper()
	var insts []backend.Instance
	err := poll(f.wait, func() (bool, error) {
		var err error
		insts, err = f.c.List(f.ctx, "")
		if err != nil {
			return false, fmt.Errorf("listing the instances: %w", err)
		}
		return !slices.ContainsFunc(insts, func(i backend.Instance) bool { return i.Name == name }), nil
	})
	if err != nil {
		f.t.Fatalf("waiting for %q to leave List: %v (listed: %q)", name, err, names(insts))
	}
}

var errTimedOut = errors.New("timed out")

// poll calls check until it reports done or fails, or limit passes. It
// yields for the first few rounds, so that fast computes are observed with
// little delay, then sleeps with exponential backoff.
func poll(limit time.Duration, check func() (bool, error)) error {
	const (
		spins    = 64
		minSleep = 20 * time.Microsecond
		maxSleep = 5 * time.Millisecond
	)
	deadline := time.Now().Add(limit)
	sleep := minSleep
	for i := 0; ; i++ {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errTimedOut, limit)
		}
		if i < spins {
			runtime.Gosched()
			continue
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, maxSleep)
	}
}

// startAll starts reqs concurrently, released together, and returns each
// Start's error.
func (f *fixture) startAll(reqs []*backend.StartRequest) []error {
	errs := make([]error, len(reqs))
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			_, errs[i] = f.c.Start(f.ctx, req)
		}()
	}
	close(release)
	wg.Wait()
	return errs
}

func testStartRunsOnce(f *fixture) {
	req := f.request(nsMain, 1, ExitAtOnce)
	f.start(req)
	f.waitEnded(req.Name)
	f.pause()
	f.wantRuns(req.Name, 1, 1)
}

func testRunsUntilStopped(f *fixture) {
	req := f.request(nsMain, 1, RunUntilStopped)
	f.start(req)
	f.wantListed(nsMain, req)
	f.waitStarted(req.Name)
	f.pause()
	f.wantRuns(req.Name, 1, 0)
	f.wantListed(nsMain, req)
}

func testDuplicateNameWhileLive(f *fixture) {
	req := f.request(nsMain, 1, RunUntilStopped)
	f.start(req)
	f.waitStarted(req.Name)
	// Once started, and at once (the instance may still be starting).
	for _, b := range []Behaviour{RunUntilStopped, ExitAtOnce} {
		dup := f.request(nsMain, 1, b)
		if _, err := f.c.Start(f.ctx, dup); !errors.Is(err, backend.ErrExist) {
			f.t.Errorf("second Start(%q) with %v while live: got %v, want ErrExist", dup.Name, b, err)
		}
	}
	req2 := f.request(nsMain, 2, RunUntilStopped)
	f.start(req2)
	if _, err := f.c.Start(f.ctx, f.request(nsMain, 2, RunUntilStopped)); !errors.Is(err, backend.ErrExist) {
		f.t.Errorf("Start(%q) right after its first Start: got %v, want ErrExist", req2.Name, err)
	}
	f.waitStarted(req2.Name)
	f.pause()
	f.wantRuns(req.Name, 1, 0)
	f.wantRuns(req2.Name, 1, 0)
	f.wantListed(nsMain, req, req2)
}

func testConcurrentDuplicateStarts(f *fixture) {
	const n = 8
	reqs := make([]*backend.StartRequest, n)
	for i := range reqs {
		reqs[i] = f.request(nsMain, 1, RunUntilStopped)
	}
	ok := 0
	for i, err := range f.startAll(reqs) {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, backend.ErrExist):
			f.t.Errorf("concurrent Start %d of %q: got %v, want nil or ErrExist", i, reqs[i].Name, err)
		}
	}
	if ok != 1 {
		f.t.Errorf("%d concurrent Starts of %q succeeded, want exactly 1", ok, reqs[0].Name)
	}
	f.waitStarted(reqs[0].Name)
	f.pause()
	f.wantRuns(reqs[0].Name, 1, 0)
	f.wantListed(nsMain, reqs[0])
}

func testInvalidName(f *fixture) {
	req := f.request(nsMain, 1, ExitAtOnce)
	name := req.Name
	req.Name = ""
	if _, err := f.c.Start(f.ctx, req); !errors.Is(err, backend.ErrInvalid) {
		f.t.Errorf("Start with an empty Name: got %v, want ErrInvalid", err)
	}
	f.pause()
	f.wantRuns(name, 0, 0)
	f.wantListed("")
}

func testListFiltersByNamespace(f *fixture) {
	if got := f.list(""); len(got) != 0 {
		f.t.Fatalf("List(\"\") of a new compute = %q, want nothing", names(got))
	}
	a1 := f.request(nsA, 1, RunUntilStopped)
	a2 := f.request(nsA, 2, RunUntilStopped)
	ab3 := f.request(nsAB, 3, RunUntilStopped)
	b2 := f.request(nsB, 2, RunUntilStopped) // same PID as a2, other namespace
	for _, r := range []*backend.StartRequest{a2, b2, ab3, a1} {
		f.start(r)
	}
	// A started instance is listed as soon as Start returns.
	f.wantListed(nsA, a1, a2)
	f.wantListed(nsAB, ab3)
	f.wantListed(nsB, b2)
	f.wantListed("", a1, a2, ab3, b2)
	f.wantListed("none")
}

func testInstanceOutlivesStartContext(f *fixture) {
	req := f.request(nsMain, 1, RunUntilStopped)
	ctx, cancel := context.WithCancel(f.ctx)
	inst, err := f.c.Start(ctx, req)
	cancel()
	if err != nil {
		f.t.Fatalf("Start: %v", err)
	}
	checkInstance(f.t, "Start", inst, req)
	f.waitStarted(req.Name)
	f.pause()
	f.wantRuns(req.Name, 1, 0) // not stopped by the end of Start's ctx
	f.wantListed(nsMain, req)
}

func testExitedInstanceLeavesList(f *fixture) {
	req := f.request(nsMain, 1, ExitAtOnce)
	f.start(req)
	f.waitEnded(req.Name)
	f.waitUnlisted(req.Name)
	if err := f.c.Stop(f.ctx, req.Name); !errors.Is(err, backend.ErrNotFound) {
		f.t.Errorf("Stop of exited instance %q: got %v, want ErrNotFound", req.Name, err)
	}
	f.wantRuns(req.Name, 1, 1)
}

func testStopEndsInstance(f *fixture) {
	victim := f.request(nsMain, 1, RunUntilStopped)
	other := f.request(nsMain, 2, RunUntilStopped)
	f.start(victim)
	f.start(other)
	f.waitStarted(victim.Name)
	f.waitStarted(other.Name)
	if err := f.c.Stop(f.ctx, victim.Name); err != nil {
		f.t.Fatalf("Stop(%q): %v", victim.Name, err)
	}
	f.waitEnded(victim.Name)
	f.waitUnlisted(victim.Name)
	if err := f.c.Stop(f.ctx, victim.Name); !errors.Is(err, backend.ErrNotFound) {
		f.t.Errorf("second Stop(%q) once gone: got %v, want ErrNotFound", victim.Name, err)
	}
	f.pause()
	f.wantRuns(victim.Name, 1, 1)
	f.wantRuns(other.Name, 1, 0)
	f.wantListed(nsMain, other)
}

func testStopUnknown(f *fixture) {
	name := instanceName(nsMain, 404)
	if err := f.c.Stop(f.ctx, name); !errors.Is(err, backend.ErrNotFound) {
		f.t.Errorf("Stop(%q) of a name never started: got %v, want ErrNotFound", name, err)
	}
}

func testConcurrentStarts(f *fixture) {
	const n = 50
	reqs := make([]*backend.StartRequest, n)
	for i := range reqs {
		reqs[i] = f.request(nsMain, int64(i+1), RunUntilStopped)
	}
	for i, err := range f.startAll(reqs) {
		if err != nil {
			f.t.Errorf("concurrent Start(%q): %v", reqs[i].Name, err)
		}
	}
	if f.t.Failed() {
		f.t.FailNow()
	}
	for _, r := range reqs {
		f.waitStarted(r.Name)
	}
	f.wantListed(nsMain, reqs...)
	f.pause()
	for _, r := range reqs {
		f.wantRuns(r.Name, 1, 0)
	}

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.c.Stop(f.ctx, r.Name)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			f.t.Errorf("concurrent Stop(%q): %v", reqs[i].Name, err)
		}
	}
	for _, r := range reqs {
		f.waitEnded(r.Name)
	}
	for _, r := range reqs {
		f.waitUnlisted(r.Name)
	}
}

func testStartCancelledContext(f *fixture) {
	req := f.request(nsMain, 1, ExitAtOnce)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	t0 := time.Now()
	_, err := f.c.Start(ctx, req)
	if elapsed := time.Since(t0); elapsed > PromptLimit {
		f.t.Errorf("Start with a cancelled context took %v, want at most %v", elapsed, PromptLimit)
	}
	if !errors.Is(err, context.Canceled) {
		f.t.Errorf("Start with a cancelled context: got %v, want context.Canceled", err)
	}
	f.pause()
	f.wantRuns(req.Name, 0, 0)
	f.wantListed("")

	// Nothing was left behind to hold the name.
	f.start(f.request(nsMain, 1, ExitAtOnce))
	f.waitEnded(req.Name)
	f.pause()
	f.wantRuns(req.Name, 1, 1)
}

func testCloseStopsEverything(f *fixture) {
	reqs := []*backend.StartRequest{
		f.request(nsA, 1, RunUntilStopped),
		f.request(nsA, 2, RunUntilStopped),
		f.request(nsB, 3, RunUntilStopped),
	}
	for _, r := range reqs {
		f.start(r)
	}
	for _, r := range reqs {
		f.waitStarted(r.Name)
	}
	f.closed = true
	if err := f.c.Close(); err != nil {
		f.t.Errorf("Close: %v", err)
	}
	for _, r := range reqs {
		f.waitEnded(r.Name)
	}
	late := f.request(nsA, 4, ExitAtOnce)
	if _, err := f.c.Start(f.ctx, late); err == nil {
		f.t.Errorf("Start(%q) after Close succeeded, want an error", late.Name)
	}
	f.pause()
	f.wantRuns(late.Name, 0, 0)
	for _, r := range reqs {
		f.wantRuns(r.Name, 1, 1)
	}
}

// largeEnv is the size of the environment value the SameMachine test
// passes: the kernel hands a child on the same machine its process record
// of up to 16 KiB in one variable.
const largeEnv = 16 << 10

// largeEnvName names that variable.
const largeEnvName = "RACK_COMPUTETEST_LARGE"

func testSameMachine(f *fixture) {
	sm, ok := f.c.(backend.SameMachine)
	if !ok || !sm.SameMachine() {
		f.t.Skip("compute does not report backend.SameMachine")
	}
	if ip, ok := f.c.(backend.InProcess); ok && ip.InProcess() {
		f.t.Fatal("compute reports both SameMachine (new OS processes) and InProcess (StartRequest.Run in this one)")
	}
	pf, ok := f.h.(ProcessFinder)
	if !ok {
		f.t.Fatal("compute reports backend.SameMachine, but the harness cannot show its OS processes (implement computetest.ProcessFinder, as Separate does)")
	}
	req := f.request(nsMain, 1, RunUntilStopped)
	if req.Env == nil {
		req.Env = map[string]string{}
	}
	large := make([]byte, largeEnv)
	for i := range large {
		large[i] = 'a' + byte(i%26)
	}
	req.Env[largeEnvName] = string(large)
	f.start(req)
	f.waitStarted(req.Name)
	pids, err := pf.OSPIDs(req.Name)
	if err != nil {
		f.t.Fatalf("harness OSPIDs(%q): %v", req.Name, err)
	}
	if len(pids) != 1 {
		f.t.Fatalf("instance %q: live OS processes %v, want one", req.Name, pids)
	}
	if pids[0] == os.Getpid() {
		f.t.Fatalf("instance %q runs in the test's own OS process", req.Name)
	}
	if runtime.GOOS == "linux" {
		// The instance is a process of this machine, and its environment
		// holds the request's, the large value whole.
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids[0]))
		if err != nil {
			f.t.Fatalf("instance %q: OS process %d is not one of this machine: %v", req.Name, pids[0], err)
		}
		for k, v := range req.Env {
			if !slices.Contains(strings.Split(string(environ), "\x00"), k+"="+v) {
				f.t.Errorf("instance %q: its environment lacks %s (%d bytes) from StartRequest.Env", req.Name, k, len(v))
			}
		}
	}
	if err := f.c.Stop(f.ctx, req.Name); err != nil {
		f.t.Fatalf("Stop(%q): %v", req.Name, err)
	}
	f.waitEnded(req.Name)
}

func testSelfDeleteOutsideInstance(f *fixture) {
	sd, ok := f.c.(backend.SelfDeleter)
	if !ok {
		f.t.Skip("compute does not implement backend.SelfDeleter")
	}
	req := f.request(nsMain, 1, RunUntilStopped)
	f.start(req)
	f.waitStarted(req.Name)
	ctx, cancel := context.WithTimeout(f.ctx, f.wait)
	defer cancel()
	if err := sd.DeleteSelf(ctx); err == nil {
		f.t.Error("DeleteSelf from the test program, which runs in no instance, succeeded")
	}
	f.pause()
	f.wantRuns(req.Name, 1, 0)
	f.wantListed(nsMain, req)
}

func testReaperEndsExited(f *fixture) {
	r, ok := f.c.(backend.Reaper)
	if !ok {
		f.t.Skip("compute does not implement backend.Reaper")
	}
	running := f.request(nsMain, 1, RunUntilStopped)
	f.start(running)
	exited := f.request(nsMain, 2, ExitAtOnce)
	f.start(exited)
	f.waitEnded(exited.Name)
	t0 := time.Now()
	r.Reap(exited.Name)
	r.Reap(f.request(nsMain, 3, ExitAtOnce).Name) // never started
	if d := time.Since(t0); d > PromptLimit {
		f.t.Errorf("Reap took %v, want it in the background (at most %v)", d, PromptLimit)
	}
	f.waitUnlisted(exited.Name)
	f.waitStarted(running.Name)
	f.pause()
	f.wantRuns(running.Name, 1, 0)
	f.wantListed(nsMain, running)
}

func testStartRetrierFailsPermanentAtOnce(f *fixture) {
	sr, ok := f.c.(backend.StartRetrier)
	if !ok || !sr.RetriesStart() {
		f.t.Skip("compute does not implement backend.StartRetrier")
	}
	for i := 0; i < 3; i++ {
		if !sr.RetriesStart() {
			f.t.Fatal("RetriesStart changed its answer: the kernel reads it once")
		}
	}
	req := f.request(nsMain, 1, RunUntilStopped)
	f.start(req)
	f.waitStarted(req.Name)
	// The context would allow minutes of retries: a permanent failure
	// must not use them.
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	unnamed := f.request(nsMain, 2, ExitAtOnce)
	unnamed.Name = ""
	for _, tc := range []struct {
		what string
		req  *backend.StartRequest
		want error
	}{
		{"a live name", f.request(nsMain, 1, ExitAtOnce), backend.ErrExist},
		{"an empty name", unnamed, backend.ErrInvalid},
	} {
		t0 := time.Now()
		_, err := f.c.Start(ctx, tc.req)
		if elapsed := time.Since(t0); elapsed > PromptLimit {
			f.t.Errorf("Start of %s took %v, want at most %v: a permanent failure was retried", tc.what, elapsed, PromptLimit)
		}
		if !errors.Is(err, tc.want) {
			f.t.Errorf("Start of %s: got %v, want %v", tc.what, err, tc.want)
		}
	}
	f.pause()
	f.wantRuns(req.Name, 1, 0)
	f.wantListed(nsMain, req)
}

func testPauserPausesAndResumes(f *fixture) {
	pa, ok := f.c.(backend.Pauser)
	if !ok {
		f.t.Skip("compute does not implement backend.Pauser")
	}
	req := f.request(nsMain, 1, RunUntilStopped)
	f.start(req)
	f.waitStarted(req.Name)
	for _, op := range []struct {
		name string
		f    func(context.Context, string) error
	}{{"Pause", pa.Pause}, {"Pause", pa.Pause}, {"Resume", pa.Resume}, {"Resume", pa.Resume}, {"Pause", pa.Pause}} {
		if err := op.f(f.ctx, req.Name); err != nil {
			f.t.Fatalf("%s of a running instance: %v", op.name, err)
		}
	}
	f.wantListed(nsMain, req)
	unknown := f.request(nsMain, 2, ExitAtOnce).Name
	if err := pa.Pause(f.ctx, unknown); !errors.Is(err, backend.ErrNotFound) {
		f.t.Errorf("Pause of a name never started: %v, want backend.ErrNotFound", err)
	}
	if err := pa.Resume(f.ctx, unknown); !errors.Is(err, backend.ErrNotFound) {
		f.t.Errorf("Resume of a name never started: %v, want backend.ErrNotFound", err)
	}
	if err := f.c.Stop(f.ctx, req.Name); err != nil {
		f.t.Fatalf("Stop of a paused instance: %v", err)
	}
	f.waitUnlisted(req.Name)
}

// testPowerlessRefusesHosts: a compute that reports backend.HostStarter
// false (it cannot start instances) refuses a host's Start with an error,
// and lists nothing for it: the kernel then asks for hosts by request.
func testPowerlessRefusesHosts(f *fixture) {
	hs, ok := f.c.(backend.HostStarter)
	if !ok || hs.StartsHosts() {
		f.t.Skip("compute starts hosts (backend.HostStarter absent or true)")
	}
	req := f.request(nsMain, 1, RunUntilStopped)
	req.Options = map[string]string{backend.HostOption: "1"}
	if _, err := f.c.Start(f.ctx, req); err == nil {
		f.t.Fatalf("Start(%q) of a host by a compute that reports it cannot start hosts: no error", req.Name)
	}
	insts, err := f.c.List(f.ctx, nsMain)
	if err != nil {
		f.t.Fatalf("List(%q): %v", nsMain, err)
	}
	for _, in := range insts {
		if in.Name == req.Name {
			f.t.Errorf("List shows %q, whose Start failed", req.Name)
		}
	}
}
