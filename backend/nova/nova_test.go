package nova_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// TestMain lets this test binary be the program the servers run: a
// computetest instance (ServeChild). A server must never run the tests
// themselves: a program started by the emulator without an instance's
// environment exits at once.
func TestMain(m *testing.M) {
	computetest.ServeChild()
	if os.Getenv("RACK_METADATA_URL") != "" {
		fmt.Fprintln(os.Stderr, "nova test: started in an emulated server without an instance's environment")
		os.Exit(3)
	}
	code := m.Run()
	staged.close()
	os.Exit(code)
}

// testToken is the token of the test clients: it must appear in no
// user-data, metadata or error.
const testToken = "gAAAAABtest-token-SECRET-0123456789abcdef"

// staged serves this test binary to the servers over HTTP, as a Swift
// TempURL would.
var staged stagedProgram

type stagedProgram struct {
	once sync.Once
	srv  *httptest.Server
	url  string
	sum  string
	err  error
}

// stagedBinary returns the URL and SHA-256 of this test binary, served
// from a local HTTP server.
func stagedBinary(t testing.TB) (url, sum string) {
	t.Helper()
	staged.once.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			staged.err = err
			return
		}
		data, err := os.ReadFile(exe)
		if err != nil {
			staged.err = err
			return
		}
		h := sha256.Sum256(data)
		staged.sum = hex.EncodeToString(h[:])
		staged.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/bin/"+staged.sum {
				http.NotFound(w, r)
				return
			}
			http.ServeContent(w, r, "program", time.Time{}, bytes.NewReader(data))
		}))
		staged.url = staged.srv.URL + "/bin/" + staged.sum + "?temp_url_sig=x&temp_url_expires=1"
	})
	if staged.err != nil {
		t.Fatalf("staging the test binary: %v", staged.err)
	}
	return staged.url, staged.sum
}

func (s *stagedProgram) close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// staticStager stages a fixed URL and digest.
type staticStager struct{ url, sum string }

func (s staticStager) Stage(context.Context) (string, string, error) { return s.url, s.sum, nil }

// startEmu starts an emulator, closed at the end of the test.
func startEmu(t testing.TB, cfg novaemu.Config) *novaemu.Emulator {
	t.Helper()
	e, err := novaemu.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// client is a compute client of e with a fixed token: no Keystone.
func client(e *novaemu.Emulator) *gophercloud.ServiceClient {
	return &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{TokenID: testToken},
		Endpoint:       e.URL() + "/",
		Type:           "compute",
	}
}

// testConfig is the Config of a compute of e that boots this test binary.
func testConfig(t testing.TB, e *novaemu.Emulator) nova.Config {
	url, sum := stagedBinary(t)
	return nova.Config{
		Client: client(e), Image: "img-1", Flavor: "1",
		Stager:       staticStager{url, sum},
		PollInterval: 25 * time.Millisecond,
		Logger:       testLogger(t),
	}
}

// testLogger logs to t when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newCompute returns a compute of e, closed at the end of the test.
func newCompute(t testing.TB, e *novaemu.Emulator, mod func(*nova.Config)) *nova.Compute {
	t.Helper()
	cfg := testConfig(t, e)
	if mod != nil {
		mod(&cfg)
	}
	c, err := nova.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// emuCompute is a compute with its own emulator; Close checks that the
// compute deleted every server before the emulator goes.
type emuCompute struct {
	*nova.Compute
	emu *novaemu.Emulator
}

func (c *emuCompute) Close() error {
	err := c.Compute.Close()
	if left := c.emu.Servers(); len(left) > 0 && err == nil {
		err = fmt.Errorf("%d servers left after Close, e.g. %s (%s)", len(left), left[0].Name, left[0].Status)
	}
	c.emu.Close()
	return err
}

// TestConformance runs the compute suite: each instance is a server of an
// emulator whose user-data fetches this test binary, checks its digest and
// runs it as a computetest instance.
func TestConformance(t *testing.T) {
	computetest.Run(t, computetest.Separate(func(ctx context.Context) (backend.Compute, error) {
		emu, err := novaemu.Start(novaemu.Config{Faults: novaemu.Faults{BootDelay: 10 * time.Millisecond}})
		if err != nil {
			return nil, err
		}
		c, err := nova.New(testConfig(t, emu))
		if err != nil {
			emu.Close()
			return nil, err
		}
		return &emuCompute{c, emu}, nil
	},
		computetest.WithPatience(45*time.Second, 100*time.Millisecond),
		computetest.WithOptions(map[string]string{"exe": "/for/another/compute"})))
}

// BenchmarkConformance runs the shared compute benchmarks against the
// emulator (boot delay 0, a poll every 25 ms).
func BenchmarkConformance(b *testing.B) {
	computetest.RunBenchmarks(b, computetest.Separate(func(ctx context.Context) (backend.Compute, error) {
		emu, err := novaemu.Start(novaemu.Config{})
		if err != nil {
			return nil, err
		}
		c, err := nova.New(testConfig(b, emu))
		if err != nil {
			emu.Close()
			return nil, err
		}
		return &emuCompute{c, emu}, nil
	}, computetest.WithPatience(45*time.Second, 0)))
}

// request returns a request for instance name of namespace ns, recording
// its runs in markers.
func request(m *computetest.Markers, ns string, pid int64, b computetest.Behaviour) *backend.StartRequest {
	name := fmt.Sprintf("t-%s-%d", ns, pid)
	return &backend.StartRequest{Namespace: ns, PID: pid, Name: name, Env: computetest.ChildEnv(m.Dir(), name, b)}
}

func newMarkers(t *testing.T) *computetest.Markers { return computetest.NewMarkers(t.TempDir()) }

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func observe(t testing.TB, m *computetest.Markers, name string) computetest.Observation {
	t.Helper()
	o, err := m.Observe(name)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func waitStarted(t testing.TB, m *computetest.Markers, names ...string) {
	t.Helper()
	for _, n := range names {
		waitFor(t, 60*time.Second, n+" to start", func() bool { return observe(t, m, n).Started >= 1 })
	}
}

func waitEnded(t testing.TB, m *computetest.Markers, names ...string) {
	t.Helper()
	for _, n := range names {
		waitFor(t, 60*time.Second, n+" to end", func() bool {
			o := observe(t, m, n)
			return o.Started >= 1 && o.Ended == o.Started
		})
	}
}

// serversNamed returns the emulator's servers of name that are not being
// deleted.
func serversNamed(e *novaemu.Emulator, name string) []novaemu.ServerInfo {
	var out []novaemu.ServerInfo
	for _, s := range e.Servers() {
		if s.Name == name && s.TaskState != "deleting" && s.Status != "DELETED" {
			out = append(out, s)
		}
	}
	return out
}

// startAll starts reqs concurrently and fails the test on any error.
func startAll(t testing.TB, c backend.Compute, reqs []*backend.StartRequest) {
	t.Helper()
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Start(context.Background(), r)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Start(%s): %v", reqs[i].Name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func names(reqs []*backend.StartRequest) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Name
	}
	return out
}

// TestIdempotentCreate: a create whose response comes after the client
// gave up is followed by a look-up that finds the server: one server, one
// run.
func TestIdempotentCreate(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{CreateResponseDelay: 2 * time.Second}})
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.CreateTimeout = 300 * time.Millisecond })
	m := newMarkers(t)
	req := request(m, "idem", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatalf("Start: %v", err)
	}
	e.SetFaults(novaemu.Faults{})
	waitStarted(t, m, req.Name)
	time.Sleep(300 * time.Millisecond)
	if n := len(serversNamed(e, req.Name)); n != 1 {
		t.Errorf("%d servers named %s, want 1", n, req.Name)
	}
	if o := observe(t, m, req.Name); o.Started != 1 {
		t.Errorf("instance ran %d times, want 1", o.Started)
	}
	calls := e.Calls()
	if calls["POST /servers"] != 1 {
		t.Errorf("%d creates, want 1 (then a look-up found the server)", calls["POST /servers"])
	}
	if _, err := c.Start(context.Background(), req); !errors.Is(err, backend.ErrExist) {
		t.Errorf("second Start: %v, want ErrExist", err)
	}
}

// TestExistingServer: a server of the name, made by someone else, makes
// Start fail with ErrExist without a create.
func TestExistingServer(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	c := newCompute(t, e, nil)
	other := newCompute(t, e, nil)
	m := newMarkers(t)
	req := request(m, "exist", 100, computetest.RunUntilStopped)
	if _, err := other.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, req.Name)
	e.ResetCalls()
	if _, err := c.Start(context.Background(), req); !errors.Is(err, backend.ErrExist) || !strings.Contains(err.Error(), req.Name) {
		t.Errorf("Start of an existing name: %v, want ErrExist naming it", err)
	}
	if n := e.Calls()["POST /servers"]; n != 0 {
		t.Errorf("%d creates, want none", n)
	}
	// Stop finds a server it did not start by its name.
	if err := c.Stop(context.Background(), req.Name); err != nil {
		t.Errorf("Stop of another compute's server: %v", err)
	}
	waitEnded(t, m, req.Name)
}

// TestBootFailuresRetried: servers that go ERROR are replaced under the
// same name until one boots; each instance runs once and has one server.
func TestBootFailuresRetried(t *testing.T) {
	e := startEmu(t, novaemu.Config{Seed: 7, Faults: novaemu.Faults{BootDelay: 20 * time.Millisecond, BootFailureRate: 0.5}})
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.BootRetries = 30 })
	m := newMarkers(t)
	var reqs []*backend.StartRequest
	for i := range 8 {
		reqs = append(reqs, request(m, "retry", int64(100+i), computetest.RunUntilStopped))
	}
	startAll(t, c, reqs)
	waitStarted(t, m, names(reqs)...)
	waitFor(t, 30*time.Second, "every server ACTIVE", func() bool {
		for _, r := range reqs {
			s := serversNamed(e, r.Name)
			if len(s) != 1 || s[0].Status != "ACTIVE" {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond)
	for _, r := range reqs {
		if o := observe(t, m, r.Name); o.Started != 1 || o.Ended != 0 {
			t.Errorf("%s: started %d, ended %d, want 1 and 0", r.Name, o.Started, o.Ended)
		}
		if n := len(serversNamed(e, r.Name)); n != 1 {
			t.Errorf("%s: %d servers, want 1", r.Name, n)
		}
		if reason, ok := c.Failure(r.Name); ok {
			t.Errorf("%s: failure %q", r.Name, reason)
		}
	}
	insts, _ := c.List(context.Background(), "retry")
	if len(insts) != len(reqs) {
		t.Errorf("List: %d instances, want %d", len(insts), len(reqs))
	}
	calls := e.Calls()
	t.Logf("%d instances: %d creates, %d deletes", len(reqs), calls["POST /servers"], calls["DELETE /servers/{id}"])
	if calls["POST /servers"] <= len(reqs) {
		t.Errorf("%d creates for %d instances: no boot failed (the seed should make some fail)", calls["POST /servers"], len(reqs))
	}
}

// TestPermanentBootFailure: once the retries are spent, the instance
// fails with the fault's reason and leaves nothing behind.
func TestPermanentBootFailure(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: 10 * time.Millisecond, BootFailureRate: 1}})
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.BootRetries = 2 })
	m := newMarkers(t)
	req := request(m, "novalid", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitFor(t, 30*time.Second, "the failure", func() bool {
		var ok bool
		reason, ok = c.Failure(req.Name)
		return ok
	})
	if !strings.Contains(reason, "boot failed") || !strings.Contains(reason, "No valid host was found") {
		t.Errorf("Failure = %q, want a boot failure with Nova's fault", reason)
	}
	t.Logf("Failure(%s) = %q", req.Name, reason)
	waitFor(t, 10*time.Second, "the server to go", func() bool { return len(e.Servers()) == 0 })
	if insts, _ := c.List(context.Background(), ""); len(insts) != 0 {
		t.Errorf("List = %v, want nothing", insts)
	}
	if n := e.Calls()["POST /servers"]; n != 3 {
		t.Errorf("%d creates, want 3 (1 + 2 retries)", n)
	}
	if o := observe(t, m, req.Name); o.Started != 0 {
		t.Errorf("instance ran %d times, want 0", o.Started)
	}
}

// TestQuotaQueues: with a quota of 3 servers, 8 instances that exit all
// run, Start waiting for quota instead of failing.
func TestQuotaQueues(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: 10 * time.Millisecond, InstanceQuota: 3}})
	c := newCompute(t, e, nil)
	m := newMarkers(t)
	var reqs []*backend.StartRequest
	for i := range 8 {
		reqs = append(reqs, request(m, "quota", int64(100+i), computetest.ExitAtOnce))
	}
	startAll(t, c, reqs)
	waitEnded(t, m, names(reqs)...)
	for _, r := range reqs {
		if o := observe(t, m, r.Name); o.Started != 1 {
			t.Errorf("%s ran %d times, want 1", r.Name, o.Started)
		}
	}
	waitFor(t, 10*time.Second, "every server deleted", func() bool { return len(e.Servers()) == 0 })
	t.Logf("8 instances, quota 3: %d creates (the refused ones included)", e.Calls()["POST /servers"])
}

// TestQuotaWaitEndsWithContext: a Start queued for quota gives up when its
// context ends, leaving nothing behind.
func TestQuotaWaitEndsWithContext(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{InstanceQuota: 1}})
	waiting := make(chan struct{}, 1)
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.Logger = slog.New(&onMessage{msg: "nova: quota exceeded; waiting", hit: waiting})
	})
	m := newMarkers(t)
	first := request(m, "q", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	// The context ends once the Start waits for quota, not at a fixed
	// time: on a loaded machine a fixed deadline can end the create
	// itself, a different path (a server may exist: it is looked up and
	// deleted).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-waiting:
			cancel()
		case <-ctx.Done():
		}
	}()
	second := request(m, "q", 101, computetest.RunUntilStopped)
	_, err := c.Start(ctx, second)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "quota") {
		t.Errorf("Start beyond the quota: %v, want a quota wait ended by the context", err)
	}
	if n := len(serversNamed(e, second.Name)); n != 0 {
		t.Errorf("%d servers of the abandoned Start", n)
	}
	if insts, _ := c.List(context.Background(), ""); len(insts) != 1 {
		t.Errorf("List = %v, want the first instance only", insts)
	}
	// Once the first is gone, the second fits.
	if err := c.Stop(context.Background(), first.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(context.Background(), second); err != nil {
		t.Errorf("Start within the quota: %v", err)
	}
	waitStarted(t, m, second.Name)
}

// onMessage is a slog.Handler that signals hit (without blocking) for each
// record whose message is msg.
type onMessage struct {
	msg string
	hit chan<- struct{}
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onMessage) WithGroup(string) slog.Handler            { return h }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.hit <- struct{}{}:
		default:
		}
	}
	return nil
}

// TestDigestMismatch: a program whose digest does not match is not run;
// the console says why and Failure reports it.
func TestDigestMismatch(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	url, _ := stagedBinary(t)
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.Stager = staticStager{url, strings.Repeat("0", 64)}
	})
	m := newMarkers(t)
	req := request(m, "digest", 100, computetest.ExitAtOnce)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitFor(t, 30*time.Second, "the failure", func() bool {
		var ok bool
		reason, ok = c.Failure(req.Name)
		return ok
	})
	if !strings.Contains(reason, "rack-bootstrap: digest mismatch") {
		t.Errorf("Failure = %q, want the bootstrap's digest mismatch", reason)
	}
	t.Logf("Failure(%s) = %q", req.Name, reason)
	waitFor(t, 10*time.Second, "the server to go", func() bool { return len(e.Servers()) == 0 })
	if o := observe(t, m, req.Name); o.Started != 0 {
		t.Errorf("the program ran %d times, want 0", o.Started)
	}
	if n := e.Calls()["POST /servers/{id}/action"]; n != 1 {
		t.Errorf("%d console reads, want 1", n)
	}
}

// TestDownloadFailure: an unreachable program is reported the same way.
func TestDownloadFailure(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	_, sum := stagedBinary(t)
	url := staged.srv.URL + "/bin/missing"
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.Stager = staticStager{url, sum} })
	m := newMarkers(t)
	req := request(m, "dl", 100, computetest.ExitAtOnce)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitFor(t, 60*time.Second, "the failure", func() bool {
		var ok bool
		reason, ok = c.Failure(req.Name)
		return ok
	})
	if !strings.Contains(reason, "rack-bootstrap: download failed") {
		t.Errorf("Failure = %q, want a download failure", reason)
	}
}

// TestAPICallsPerChild counts the Nova calls of many children: a look-up,
// a create, a delete and the GET that confirms it each, plus polls that do
// not grow with the number of children. It also reports how long they all
// take to run, with a boot delay of 500 ms.
func TestAPICallsPerChild(t *testing.T) {
	const (
		bootDelay = 500 * time.Millisecond
		poll      = 100 * time.Millisecond
	)
	// RACK_NOVA_CHILDREN=100 measures the figure (100 children
	// downloading the test binary take a while on one machine).
	n := 30
	if v, err := strconv.Atoi(os.Getenv("RACK_NOVA_CHILDREN")); err == nil && v > 0 {
		n = v
	}
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: bootDelay}})
	m := newMarkers(t)
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.MaxBootsInFlight = n
		cfg.PollInterval = poll
		cfg.ProgramStarted = func(ctx context.Context, inst backend.Instance) bool {
			o, err := m.Observe(inst.Name)
			return err == nil && o.Started > 0
		}
	})
	check := func(phase string, elapsed time.Duration) {
		t.Helper()
		calls := e.Calls()
		perChild := float64(calls["GET /servers"]+calls["POST /servers"]+calls["DELETE /servers/{id}"]+
			calls["GET /servers/{id}"]+calls["POST /servers/{id}/action"]) / float64(n)
		polls := calls["GET /servers/detail"]
		t.Logf("%s: %d children in %v: %.2f calls per child (%v); %d polls", phase, n, elapsed.Round(time.Millisecond), perChild, calls, polls)
		if perChild > 4 {
			t.Errorf("%s: %.2f calls per child, want at most 4", phase, perChild)
		}
		if limit := int(elapsed/poll) + 3; polls > limit {
			t.Errorf("%s: %d polls in %v, want at most %d (one per poll interval)", phase, polls, elapsed, limit)
		}
	}

	// Children that run until stopped.
	var reqs []*backend.StartRequest
	for i := range n {
		reqs = append(reqs, request(m, "calls", int64(100+i), computetest.RunUntilStopped))
	}
	t0 := time.Now()
	startAll(t, c, reqs)
	waitStarted(t, m, names(reqs)...)
	running := time.Since(t0)
	t.Logf("%d children running %v after the Starts (boot delay %v)", n, running.Round(time.Millisecond), bootDelay)
	for _, r := range reqs {
		if err := c.Stop(context.Background(), r.Name); err != nil {
			t.Errorf("Stop(%s): %v", r.Name, err)
		}
	}
	waitEnded(t, m, names(reqs)...)
	// Each delete is confirmed by a GET, in the background.
	waitFor(t, 30*time.Second, "the deletes confirmed", func() bool { return e.Calls()["GET /servers/{id}"] >= n })
	check("run until stopped", time.Since(t0))

	// Children that exit: their servers power off and are deleted.
	e.ResetCalls()
	reqs = reqs[:0]
	for i := range n {
		reqs = append(reqs, request(m, "calls", int64(200+i), computetest.ExitAtOnce))
	}
	t0 = time.Now()
	startAll(t, c, reqs)
	waitEnded(t, m, names(reqs)...)
	waitFor(t, 30*time.Second, "every server deleted", func() bool { return len(e.Servers()) == 0 })
	waitFor(t, 30*time.Second, "the deletes confirmed", func() bool { return e.Calls()["GET /servers/{id}"] >= n })
	check("exit", time.Since(t0))

	// Children that exit and are reaped as the kernel does once it reads
	// their exit records, before any SHUTOFF: the happy path.
	e.ResetCalls()
	reqs = reqs[:0]
	for i := range n {
		reqs = append(reqs, request(m, "calls", int64(300+i), computetest.ExitAtOnce))
	}
	t0 = time.Now()
	startAll(t, c, reqs)
	for _, r := range reqs {
		waitEnded(t, m, r.Name)
		c.Reap(r.Name)
	}
	waitFor(t, 30*time.Second, "every server deleted", func() bool { return len(e.Servers()) == 0 })
	waitFor(t, 30*time.Second, "the deletes confirmed", func() bool { return e.Calls()["GET /servers/{id}"] >= n })
	check("exit, reaped", time.Since(t0))
}

// TestChaos: with injected 500s, 503s, 429s and failed boots, every
// instance runs exactly once, on one server, and Close leaves nothing.
func TestChaos(t *testing.T) {
	e := startEmu(t, novaemu.Config{Seed: 11, Faults: novaemu.Faults{
		BootDelay: 20 * time.Millisecond, BootFailureRate: 0.2,
		ServerErrorRate: 0.1, UnavailableRate: 0.05, RateLimitRate: 0.03,
	}})
	cfg := testConfig(t, e)
	cfg.BootRetries = 20
	c, err := nova.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := newMarkers(t)
	var reqs []*backend.StartRequest
	for i := range 8 {
		reqs = append(reqs, request(m, "chaos", int64(100+i), computetest.RunUntilStopped))
	}
	startAll(t, c, reqs)
	waitStarted(t, m, names(reqs)...)
	time.Sleep(500 * time.Millisecond)
	for _, r := range reqs {
		if o := observe(t, m, r.Name); o.Started != 1 {
			t.Errorf("%s ran %d times, want 1", r.Name, o.Started)
		}
		if n := len(serversNamed(e, r.Name)); n != 1 {
			t.Errorf("%s: %d servers, want 1", r.Name, n)
		}
	}
	t.Logf("calls: %v", e.Calls())
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if left := e.Servers(); len(left) != 0 {
		t.Errorf("%d servers left after Close", len(left))
	}
	waitEnded(t, m, names(reqs)...)
}

// TestServerOptions: defaults, per-request overrides, metadata and tags.
func TestServerOptions(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.Image, cfg.Flavor, cfg.KeyName = "img-default", "flavor-default", "kp-default"
		cfg.SecurityGroups = []string{"sg-default"}
		cfg.AvailabilityZone = "az-default"
		cfg.DeleteAfter = time.Hour
	})
	m := newMarkers(t)
	def := request(m, "opts", 100, computetest.RunUntilStopped)
	over := request(m, "opts", 101, computetest.RunUntilStopped)
	over.Options = map[string]string{
		"image": "img-2", "flavor": "flavor-2", "key_name": "kp-2", "security_groups": "sg-a, sg-b",
		"availability_zone": "az-2", "network": "net-1,net-2", "exe": "/not/for/nova",
	}
	for _, r := range []*backend.StartRequest{def, over} {
		if _, err := c.Start(context.Background(), r); err != nil {
			t.Fatalf("Start(%s): %v", r.Name, err)
		}
	}
	check := client(e)
	check.Microversion = "2.46" // flavor ids, and tags
	for _, tc := range []struct {
		req                    *backend.StartRequest
		image, flavor, key, az string
		groups                 []string
	}{
		{def, "img-default", "flavor-default", "kp-default", "az-default", []string{"sg-default"}},
		{over, "img-2", "flavor-2", "kp-2", "az-2", []string{"sg-a", "sg-b"}},
	} {
		s := getServer(t, check, e, tc.req.Name)
		if s.Image["id"] != tc.image || s.Flavor["id"] != tc.flavor || s.KeyName != tc.key || s.AvailabilityZone != tc.az {
			t.Errorf("%s: image %v, flavor %v, key %q, zone %q; want %s, %s, %s, %s", tc.req.Name,
				s.Image["id"], s.Flavor["id"], s.KeyName, s.AvailabilityZone, tc.image, tc.flavor, tc.key, tc.az)
		}
		var groups []string
		for _, g := range s.SecurityGroups {
			groups = append(groups, fmt.Sprint(g["name"]))
		}
		if fmt.Sprint(groups) != fmt.Sprint(tc.groups) {
			t.Errorf("%s: security groups %v, want %v", tc.req.Name, groups, tc.groups)
		}
		md := s.Metadata
		if md["rack-namespace"] != "opts" || md["rack-pid"] != fmt.Sprint(tc.req.PID) {
			t.Errorf("%s: metadata %v", tc.req.Name, md)
		}
		var at int64
		fmt.Sscan(md["rack-delete-at"], &at)
		if d := time.Until(time.Unix(at, 0)); d < 55*time.Minute || d > 61*time.Minute {
			t.Errorf("%s: rack-delete-at %q is %v from now, want about an hour", tc.req.Name, md["rack-delete-at"], d)
		}
		if s.Tags == nil || !containsAll(*s.Tags, "rack", "rack-ns-opts") || len(*s.Tags) != 3 {
			t.Errorf("%s: tags %v, want rack, rack-ns-opts and the compute's", tc.req.Name, s.Tags)
		}
	}
	// A missing image is the caller's error.
	cNo := newCompute(t, e, func(cfg *nova.Config) { cfg.Image = "" })
	if _, err := cNo.Start(context.Background(), request(m, "opts", 102, computetest.ExitAtOnce)); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("Start without an image: %v, want ErrInvalid", err)
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, x := range list {
			found = found || x == w
		}
		if !found {
			return false
		}
	}
	return true
}

// TestNoCredentials: no token in user-data, metadata or errors; env values
// with NUL are refused.
func TestNoCredentials(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.ExtraEnv = func(ctx context.Context, req *backend.StartRequest) (map[string]string, error) {
			return map[string]string{"RACK_BOOTSTRAP_URL": "https://swift.example/v1/AUTH_x/c/boot-" + req.Name + "?temp_url_sig=abc"}, nil
		}
	})
	m := newMarkers(t)
	req := request(m, "cred", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, req.Name)
	for _, s := range e.Servers() {
		ud := string(s.UserData)
		if strings.Contains(ud, testToken) || strings.Contains(fmt.Sprint(s.Metadata), testToken) {
			t.Errorf("server %s: the token is in its user-data or metadata", s.Name)
		}
		for _, bad := range []string{"X-Auth-Token", "password", "OS_"} {
			if strings.Contains(ud, bad) {
				t.Errorf("server %s: user-data mentions %q", s.Name, bad)
			}
		}
		if !strings.HasPrefix(ud, "#!/bin/sh\n") || !strings.Contains(ud, "RACK_BOOTSTRAP_URL=") {
			t.Errorf("server %s: unexpected user-data:\n%s", s.Name, ud)
		}
		t.Logf("user-data of %s (%d bytes):\n%s", s.Name, len(ud), ud)
	}

	bad := request(m, "cred", 101, computetest.ExitAtOnce)
	bad.Env["X"] = "a\x00b"
	if _, err := c.Start(context.Background(), bad); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("Start with a NUL in the environment: %v, want ErrInvalid", err)
	}
	bad.Env = map[string]string{"NOT-A-NAME": "x"}
	if _, err := c.Start(context.Background(), bad); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("Start with a bad variable name: %v, want ErrInvalid", err)
	}

	// A rejected token: the error names the server, not the token.
	e2 := startEmu(t, novaemu.Config{ValidateToken: func(ctx context.Context, token string) error {
		return fmt.Errorf("%w: %s", novaemu.ErrInvalidToken, token)
	}})
	c2 := newCompute(t, e2, nil)
	_, err := c2.Start(context.Background(), request(m, "cred", 102, computetest.ExitAtOnce))
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "t-cred-102") {
		t.Errorf("Start with a rejected token: %v", err)
	}
}

// TestStopWhileBooting: Stop of an instance whose server is still
// building deletes it; the program never runs.
func TestStopWhileBooting(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: time.Second}})
	c := newCompute(t, e, nil)
	m := newMarkers(t)
	req := request(m, "early", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(context.Background(), req.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(context.Background(), req.Name); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("second Stop: %v, want ErrNotFound", err)
	}
	if len(e.Servers()) != 0 {
		t.Errorf("servers left: %v", e.Servers())
	}
	time.Sleep(1500 * time.Millisecond)
	if o := observe(t, m, req.Name); o.Started != 0 {
		t.Errorf("stopped instance ran %d times", o.Started)
	}
}

// getServer returns the details of the server named name.
func getServer(t testing.TB, c *gophercloud.ServiceClient, e *novaemu.Emulator, name string) *serverDetail {
	t.Helper()
	list := serversNamed(e, name)
	if len(list) != 1 {
		t.Fatalf("%d servers named %s", len(list), name)
	}
	var s serverDetail
	resp, err := c.Get(context.Background(), c.ServiceURL("servers", list[0].ID), &struct {
		Server *serverDetail `json:"server"`
	}{&s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	return &s
}

// serverDetail is the part of a server's details the tests check.
type serverDetail struct {
	Image            map[string]any    `json:"image"`
	Flavor           map[string]any    `json:"flavor"`
	KeyName          string            `json:"key_name"`
	AvailabilityZone string            `json:"OS-EXT-AZ:availability_zone"`
	SecurityGroups   []map[string]any  `json:"security_groups"`
	Metadata         map[string]string `json:"metadata"`
	Tags             *[]string         `json:"tags"`
}
