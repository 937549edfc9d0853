package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/novaemu"
)

// TestMain lets this test binary serve as the program that file://
// namespaces start for each worker.
func TestMain(m *testing.M) {
	if rack.Launched() {
		rack.Main(parent) // a forked worker (or parent): runs it and exits
	}
	os.Exit(m.Run())
}

// run starts the montecarlo parent on a fresh mem:// namespace.
func runMontecarlo(t testing.TB, args ...string) (stdout, stderr string, k *rack.Kernel, err error) {
	t.Helper()
	return runMontecarloAt(t, "mem://", args...)
}

// runMontecarloAt starts the montecarlo parent in the namespace url.
func runMontecarloAt(t testing.TB, url string, args ...string) (stdout, stderr string, k *rack.Kernel, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	k, err = rack.Open(ctx, url, rack.WithConsole(strings.NewReader(""), &out, &errb),
		rack.WithPolling(5*time.Millisecond, 200*time.Millisecond), rack.WithRecordTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	p, err := k.Start(ctx, rack.Spec{Name: "montecarlo", Args: args}, parent)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait(ctx)
	return out.String(), errb.String(), k, err
}

// expected computes the points the workers must find, without rack.
func expected(trials int64, workers int, seed uint64) int64 {
	per := trials / int64(workers)
	var sum int64
	for i := 0; i < workers; i++ {
		n := per
		if i == 0 {
			n += trials % int64(workers)
		}
		sum += CountInside(seed+uint64(i), n)
	}
	return sum
}

func TestReportIsExact(t *testing.T) {
	out, _, _, err := runMontecarlo(t, "--trials", "1000003", "--workers", "7", "--seed", "42")
	if err != nil {
		t.Fatal(err)
	}
	want := expected(1000003, 7, 42)
	for _, row := range []string{
		"| trials   | 1000003",
		"| workers  | 7 ",
		fmt.Sprintf("| points   | %d ", want),
		"| pi       | 3.14159265359",
	} {
		if !strings.Contains(out, row) {
			t.Errorf("report lacks %q:\n%s", row, out)
		}
	}
	for _, prop := range []string{"result", "error", "time"} {
		if !strings.Contains(out, "| "+prop) {
			t.Errorf("report lacks row %s:\n%s", prop, out)
		}
	}
}

// TestOnSwift runs the sample with a real Swift as the only coordination
// store: the same points as the bare computation.
func TestOnSwift(t *testing.T) {
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			t.Fatal("Swift required (RACK_REQUIRE_SWIFT=1) but SWIFT_AUTH_URL is unset")
		}
		t.Skip("no Swift: SWIFT_AUTH_URL unset (scripts/swift-saio.sh starts one)")
	}
	url := fmt.Sprintf("swift+v1:///montecarlo-test-%d", time.Now().UnixNano())
	out, stderr, _, err := runMontecarloAt(t, url, "--trials", "2000000", "--workers", "10", "--seed", "7")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if want := fmt.Sprintf("| points   | %d ", expected(2000000, 10, 7)); !strings.Contains(out, want) {
		t.Fatalf("report lacks %q:\n%s", want, out)
	}
}

// openstackEnv returns the Keystone cloud and the Nova emulator's address
// that .ci/run sets, skipping t without them, and holds the address
// (novaemu.LockAddr: the root package's tests use it too) until t ends.
func openstackEnv(t *testing.T) (cloud, addr string) {
	t.Helper()
	cloud, addr = os.Getenv("RACK_KEYSTONE_CLOUD"), os.Getenv("RACK_NOVA_ADDR")
	if os.Getenv("RACK_KEYSTONE") != "1" || cloud == "" || addr == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" && os.Getenv("RACK_KEYSTONE") == "1" {
			t.Fatal("RACK_KEYSTONE=1 needs RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR")
		}
		t.Skip("no OpenStack: RACK_KEYSTONE=1, RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR select it (.ci/run sets them)")
	}
	unlock, err := novaemu.LockAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	return cloud, addr
}

// TestOnOpenStack runs the workers as Nova servers (the emulator of
// internal/novaemu, registered in a real Keystone's catalog) that fetch
// this test binary from a real Swift through a TempURL, with a fifth of
// the boots failing (retried): the points must be exactly those of the
// same seeds computed here, and no server may be left.
func TestOnOpenStack(t *testing.T) {
	cloud, addr := openstackEnv(t)
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 5,
		Faults: novaemu.Faults{BootDelay: 200 * time.Millisecond, BootFailureRate: 0.2}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	url := fmt.Sprintf("openstack://%s/montecarlo-os-%d?image=cirros&flavor=m1.tiny&network=none", cloud, time.Now().UnixNano())
	start := time.Now()
	out, stderr, k, err := runMontecarloAt(t, url, "--trials", "2000000", "--workers", "5", "--seed", "11")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if want := fmt.Sprintf("| points   | %d ", expected(2000000, 5, 11)); !strings.Contains(out, want) {
		t.Fatalf("report lacks %q:\n%s", want, out)
	}
	t.Logf("5 workers on emulated servers, a fifth of boots failing: %v; Nova calls %v", time.Since(start).Round(time.Millisecond), emu.Calls())
	k.Close()
	for _, s := range emu.Servers() {
		t.Errorf("after Close, server %s (%s) is left", s.Name, s.Status)
	}
}

// TestOnOSProcesses runs the workers as OS processes sharing a file://
// namespace, several times: every worker's count must arrive.
func TestOnOSProcesses(t *testing.T) {
	for i := 0; i < 5; i++ {
		url := "file://" + t.TempDir()
		out, stderr, _, err := runMontecarloAt(t, url, "--trials", "100000", "--workers", "10", "--seed", "3")
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, stderr)
		}
		if want := fmt.Sprintf("| points   | %d ", expected(100000, 10, 3)); !strings.Contains(out, want) {
			t.Fatalf("run %d: report lacks %q:\n%s", i, want, out)
		}
	}
}

func TestReportToRackFile(t *testing.T) {
	out, _, k, err := runMontecarlo(t, "--trials", "10000", "--workers", "3", "--seed", "1", "--stdout", "/output/result.txt")
	if err != nil {
		t.Fatal(err)
	}
	if out != "" {
		t.Errorf("stdout should be empty with --stdout, got %q", out)
	}
	f, err := k.Open(context.Background(), "/output/result.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	if !strings.Contains(string(data), fmt.Sprintf("| points   | %d ", expected(10000, 3, 1))) {
		t.Errorf("report file:\n%s", data)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--workers", "0", "--trials", "10"},
		{"--workers", "10", "--trials", "5"},
		{"--workers", "x", "--trials", "5"},
		{"--trials", "1e9x", "--workers", "2"},
		{"extra", "--trials", "10", "--workers", "2"},
		{},
	} {
		_, stderr, _, err := runMontecarlo(t, args...)
		var ee *rack.ExitError
		if !errors.As(err, &ee) || ee.Code() != 2 {
			t.Errorf("%q: want exit code 2, got %v", args, err)
		}
		if !strings.Contains(stderr, "montecarlo:") {
			t.Errorf("%q: stderr lacks a usage message: %q", args, stderr)
		}
	}
}

// bare runs the same worker code on plain goroutines: the baseline.
func bare(trials int64, workers int, seed uint64) int64 {
	var mu sync.Mutex
	var sum int64
	var wg sync.WaitGroup
	per := trials / int64(workers)
	for i := 0; i < workers; i++ {
		n := per
		if i == 0 {
			n += trials % int64(workers)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := CountInside(seed+uint64(i), n)
			mu.Lock()
			sum += c
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sum
}

// BenchmarkMontecarlo runs the bare goroutine loop and the rack version
// side by side, alternating, and reports their ratio (rack/bare time:
// 1.0 is no overhead).
func BenchmarkMontecarlo(b *testing.B) {
	const trials, workers = 50_000_000, 10
	var bareTime, rackTime time.Duration
	for i := 0; i < b.N; i++ {
		seed := uint64(i + 1)
		t0 := time.Now()
		want := bare(trials, workers, seed)
		bareTime += time.Since(t0)
		t0 = time.Now()
		out, _, _, err := runMontecarlo(b, "--trials", fmt.Sprint(trials), "--workers", fmt.Sprint(workers), "--seed", fmt.Sprint(seed))
		rackTime += time.Since(t0)
		if err != nil || !strings.Contains(out, fmt.Sprintf("| points   | %d ", want)) {
			b.Fatalf("rack run: %v\n%s", err, out)
		}
	}
	b.ReportMetric(float64(trials)*float64(b.N)/bareTime.Seconds()/1e6, "bare-Mtrials/s")
	b.ReportMetric(float64(trials)*float64(b.N)/rackTime.Seconds()/1e6, "rack-Mtrials/s")
	b.ReportMetric(bareTime.Seconds()/rackTime.Seconds(), "rack/bare-speed")
}

// pollOnly hides the mem store's notifications, so that the kernel polls
// as it does on Swift.
type pollOnly struct{ backend.Store }

// runWithLatency runs the sample on an in-memory store that answers every
// request after latency (mem.WithLatency) and cannot notify: a Swift far
// away. It returns the report and how long the run took.
func runWithLatency(t testing.TB, latency time.Duration, args ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	k, err := rack.New(ctx, pollOnly{mem.New(mem.WithLatency(latency), mem.WithVersionETags())}, inproc.New(),
		rack.WithConsole(strings.NewReader(""), &out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	start := time.Now()
	p, err := k.Start(ctx, rack.Spec{Name: "montecarlo", Args: args}, parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	return out.String(), time.Since(start)
}

// BenchmarkLatency runs the job, 20,000,000 trials on 10 workers,
// with 200 ms added to every store request (in-process), and reports its
// time and that time in round trips.
//
//	go test -run '^$' -bench Latency -benchtime 1x ./examples/montecarlo
func BenchmarkLatency(b *testing.B) {
	const latency = 200 * time.Millisecond
	for i := 0; i < b.N; i++ {
		out, took := runWithLatency(b, latency, "--trials", "20000000", "--workers", "10", "--seed", "3")
		if want := fmt.Sprintf("| points   | %d ", expected(20000000, 10, 3)); !strings.Contains(out, want) {
			b.Fatalf("report lacks %q:\n%s", want, out)
		}
		b.ReportMetric(took.Seconds(), "s/run")
		b.ReportMetric(float64(took)/float64(latency), "latencies/run")
	}
}

// TestOnOpenStackHosts runs the sample twice on Nova hosts (hosts=1;
// flavor c1.ten: 10 vCPUs, so 10 slots) against the emulator with real
// Swift and Keystone: N workers (30, or RACK_E2E_WORKERS: the run
// is 100), 10 to a server, boot N/10 servers in the first run, not N (the
// parent, a root process, runs here); the second run, while they are
// warm, boots none.
// Both reports are exact. The hosts delete their servers once no kernel
// of the namespace is left.
func TestOnOpenStackHosts(t *testing.T) {
	cloud, addr := openstackEnv(t)
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 15,
		Faults: novaemu.Faults{BootDelay: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	workers := 30
	if n, err := strconv.Atoi(os.Getenv("RACK_E2E_WORKERS")); err == nil && n > 0 && n%10 == 0 {
		workers = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("montecarlo-hosts-%d", time.Now().UnixNano())
	// A 10 s lease: a store call may take seconds on a shared machine's
	// one Keystone-backed Swift proxy, and the retry budget is the lease.
	var out, errb bytes.Buffer
	k, err := rack.Open(ctx, "openstack://"+cloud+"/"+ns+"?image=cirros&flavor=c1.ten&network=none&hosts=1&idle=3m",
		rack.WithLease(10*time.Second), rack.WithPolling(10*time.Millisecond, 500*time.Millisecond),
		rack.WithConsole(strings.NewReader(""), &out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const trials = 10_000_000
	for run := range 2 {
		emu.ResetCalls()
		out.Reset()
		errb.Reset()
		start := time.Now()
		p, err := k.Start(ctx, rack.Spec{Name: "montecarlo", Args: []string{"--trials", fmt.Sprint(trials),
			"--workers", fmt.Sprint(workers), "--seed", fmt.Sprint(run + 1)}}, parent)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("run %d: %v\n%s", run+1, err, errb.String())
		}
		if w := fmt.Sprintf("| points   | %d ", expected(trials, workers, uint64(run+1))); !strings.Contains(out.String(), w) {
			t.Fatalf("run %d: report lacks %q:\n%s", run+1, w, out.String())
		}
		boots := emu.Calls()["POST /servers"]
		t.Logf("run %d: %d workers, %d servers created, %v", run+1, workers, boots, time.Since(start).Round(time.Millisecond))
		// The parent's ForkAll starts the hosts its workers need at
		// once: a worker ending frees its slot too late to spare one.
		if want := workers / 10; run == 0 && boots != want {
			t.Errorf("run 1: %d workers on 10-slot hosts: %d servers created, want %d", workers, boots, want)
		}
		if run == 1 && boots != 0 {
			t.Errorf("run 2, within the idle time: %d servers created, want 0", boots)
		}
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); len(emu.Servers()) > 0; time.Sleep(200 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("%d servers left a minute after the forker closed", len(emu.Servers()))
		}
	}
}
