package inproc_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/inproc"
)

func harness() computetest.HarnessMaker {
	return computetest.InProcess(func(context.Context) (backend.Compute, error) {
		return inproc.New(), nil
	})
}

func TestConformance(t *testing.T) {
	computetest.Run(t, harness())
}

func BenchmarkConformance(b *testing.B) {
	computetest.RunBenchmarks(b, harness())
}

// block returns a Run that signals started, then returns only when release
// is closed, ignoring its context, as badly behaved code would.
func block(started chan<- struct{}, release <-chan struct{}) func(context.Context) {
	return func(context.Context) {
		started <- struct{}{}
		<-release
	}
}

func req(name string, run func(context.Context)) *backend.StartRequest {
	return &backend.StartRequest{Namespace: "ns", PID: 1, Name: name, Run: run}
}

func noop(context.Context) {}

// waitGone polls List until name has left it.
func waitGone(t testing.TB, c *inproc.Compute, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		insts, err := c.List(context.Background(), "")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if !slices.ContainsFunc(insts, func(i backend.Instance) bool { return i.Name == name }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q still listed", name)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestStartInvalid(t *testing.T) {
	c := inproc.New()
	defer c.Close()
	ctx := t.Context()
	for _, tc := range []struct {
		desc     string
		req      *backend.StartRequest
		mentions string
	}{
		{"nil request", nil, "nil request"},
		{"empty name", req("", noop), "empty name"},
		{"nil Run", req("worker-7", nil), `"worker-7"`},
	} {
		_, err := c.Start(ctx, tc.req)
		if !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.desc, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.mentions) {
			t.Errorf("%s: error %q does not mention %s", tc.desc, err, tc.mentions)
		}
	}
	if insts, _ := c.List(ctx, ""); len(insts) != 0 {
		t.Errorf("List after invalid Starts = %v, want nothing", insts)
	}
}

func TestListSortedByPID(t *testing.T) {
	c := inproc.New()
	defer c.Close()
	ctx := t.Context()
	run := func(ctx context.Context) { <-ctx.Done() }
	for _, r := range []backend.StartRequest{
		{Namespace: "b", PID: 5, Name: "b-5"},
		{Namespace: "a", PID: 9, Name: "a-9"},
		{Namespace: "b", PID: 1, Name: "b-1"},
		{Namespace: "a", PID: 5, Name: "a-5"},
		{Namespace: "a", PID: 3, Name: "a-3"},
	} {
		r.Run = run
		if _, err := c.Start(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	got := func(ns string) []string {
		insts, err := c.List(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range insts {
			out = append(out, i.Name)
		}
		return out
	}
	if g, w := got(""), []string{"b-1", "a-3", "a-5", "b-5", "a-9"}; !slices.Equal(g, w) {
		t.Errorf("List(\"\") = %q, want %q", g, w)
	}
	if g, w := got("a"), []string{"a-3", "a-5", "a-9"}; !slices.Equal(g, w) {
		t.Errorf("List(\"a\") = %q, want %q", g, w)
	}
}

func TestStoppedInstanceListedUntilRunReturns(t *testing.T) {
	c := inproc.New()
	defer c.Close()
	ctx := t.Context()
	started, release := make(chan struct{}), make(chan struct{})
	if _, err := c.Start(ctx, req("stubborn", block(started, release))); err != nil {
		t.Fatal(err)
	}
	<-started
	for i := range 2 {
		if err := c.Stop(ctx, "stubborn"); err != nil {
			t.Fatalf("Stop %d of a running instance: %v", i+1, err)
		}
	}
	if insts, _ := c.List(ctx, ""); len(insts) != 1 {
		t.Errorf("List after Stop, before Run returned = %v, want the instance", insts)
	}
	if _, err := c.Start(ctx, req("stubborn", noop)); !errors.Is(err, backend.ErrExist) {
		t.Errorf("Start of a stopped instance whose Run has not returned: got %v, want ErrExist", err)
	}
	close(release)
	waitGone(t, c, "stubborn")
	if err := c.Stop(ctx, "stubborn"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stop after Run returned: got %v, want ErrNotFound", err)
	}
	// The name is free again.
	done := make(chan struct{})
	if _, err := c.Start(ctx, req("stubborn", func(context.Context) { close(done) })); err != nil {
		t.Fatalf("Start after the instance ended: %v", err)
	}
	<-done
}

func TestRunContext(t *testing.T) {
	c := inproc.New()
	defer c.Close()
	type key struct{}
	startCtx, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "secret"))
	got := make(chan context.Context, 1)
	if _, err := c.Start(startCtx, req("x", func(ctx context.Context) { got <- ctx })); err != nil {
		t.Fatal(err)
	}
	cancel()
	ctx := <-got
	if v := ctx.Value(key{}); v != nil {
		t.Errorf("Run's context carries the value %v from Start's context", v)
	}
	// Once Run has returned, its context is cancelled, so goroutines it
	// left behind see their process end.
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Run's context not cancelled after Run returned")
	}
}

func TestClose(t *testing.T) {
	c := inproc.New()
	ctx := t.Context()
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	if _, err := c.Start(ctx, req("stubborn", block(started, release))); err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan struct{})
	if _, err := c.Start(ctx, req("polite", func(ctx context.Context) { <-ctx.Done(); close(cancelled) })); err != nil {
		t.Fatal(err)
	}
	<-started

	// Close neither waits for the stubborn instance nor fails.
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for an instance ignoring its context")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cancel the polite instance")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	_, err := c.Start(ctx, req("late", noop))
	if !errors.Is(err, inproc.ErrClosed) || err.Error() != "inproc: compute closed" {
		t.Errorf("Start after Close: got %v, want ErrClosed", err)
	}
	if err := c.Stop(ctx, "stubborn"); !errors.Is(err, inproc.ErrClosed) {
		t.Errorf("Stop after Close: got %v, want ErrClosed", err)
	}
	if _, err := c.List(ctx, ""); !errors.Is(err, inproc.ErrClosed) {
		t.Errorf("List after Close: got %v, want ErrClosed", err)
	}
}

func TestContextDone(t *testing.T) {
	c := inproc.New()
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Start(ctx, req("x", noop)); !errors.Is(err, context.Canceled) {
		t.Errorf("Start: got %v, want context.Canceled", err)
	}
	if err := c.Stop(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop: got %v, want context.Canceled", err)
	}
	if _, err := c.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List: got %v, want context.Canceled", err)
	}
}

// failurePattern starts n instances one after another on a compute with
// injected failures and returns which Starts failed.
func failurePattern(t *testing.T, n int, rate float64, seed int64) []bool {
	t.Helper()
	c := inproc.New(inproc.WithStartFailures(rate, seed))
	defer c.Close()
	ctx := t.Context()
	var mu sync.Mutex
	ran := map[string]bool{}
	var wg sync.WaitGroup
	failed := make([]bool, n)
	for i := range failed {
		name := fmt.Sprintf("w-%d", i)
		wg.Add(1)
		_, err := c.Start(ctx, req(name, func(context.Context) {
			defer wg.Done()
			mu.Lock()
			ran[name] = true
			mu.Unlock()
		}))
		switch {
		case err == nil:
		case errors.Is(err, backend.ErrTransient):
			failed[i] = true
			wg.Done()
		default:
			t.Fatalf("Start(%q): %v", name, err)
		}
	}
	wg.Wait()
	for i, f := range failed {
		if name := fmt.Sprintf("w-%d", i); f == ran[name] {
			t.Fatalf("Start(%q) failed=%v but ran=%v", name, f, ran[name])
		}
	}
	return failed
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func TestStartFailures(t *testing.T) {
	const n = 2000
	a := failurePattern(t, n, 0.3, 42)
	if b := failurePattern(t, n, 0.3, 42); !slices.Equal(a, b) {
		t.Error("same seed, different failures")
	}
	if b := failurePattern(t, n, 0.3, 43); slices.Equal(a, b) {
		t.Error("different seeds, same failures")
	}
	if got := count(a); got < n*2/10 || got > n*4/10 {
		t.Errorf("%d of %d Starts failed at rate 0.3", got, n)
	}
	if got := count(failurePattern(t, n, 0, 42)); got != 0 {
		t.Errorf("%d Starts failed at rate 0", got)
	}
	if got := count(failurePattern(t, 100, 1, 42)); got != 100 {
		t.Errorf("%d of 100 Starts failed at rate 1", got)
	}
}

// A failed Start reserves nothing: the name can be started at once.
func TestStartFailureReservesNothing(t *testing.T) {
	c := inproc.New(inproc.WithStartFailures(0.5, 7))
	defer c.Close()
	ctx := t.Context()
	done := make(chan struct{})
	run := func(context.Context) { close(done) }
	for attempt := 1; ; attempt++ {
		_, err := c.Start(ctx, req("retried", run))
		if err == nil {
			break
		}
		if !errors.Is(err, backend.ErrTransient) || attempt > 100 {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	<-done
}

func TestWithStartFailuresBadRate(t *testing.T) {
	for _, rate := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("WithStartFailures(%v, 1) did not panic", rate)
				}
			}()
			inproc.WithStartFailures(rate, 1)
		}()
	}
}

// BenchmarkStart measures Start alone, goroutine creation included: the
// instances are started in batches, and the timer is stopped while a batch
// of them runs to the end.
func BenchmarkStart(b *testing.B) {
	c := inproc.New()
	defer c.Close()
	ctx := context.Background()
	const batch = 256
	names := make([]string, batch)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d", i)
	}
	var wg sync.WaitGroup
	r := backend.StartRequest{Namespace: "bench", Run: func(context.Context) { wg.Done() }}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 && i > 0 {
			b.StopTimer()
			wg.Wait()
			for _, n := range names { // the names leave List just after Run
				waitGone(b, c, n)
			}
			b.StartTimer()
		}
		r.Name = names[i%batch]
		r.PID = int64(i)
		wg.Add(1)
		if _, err := c.Start(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}

// BenchmarkForkWait measures Start plus waiting for Run to return, as the
// kernel's fork+wait does (without polling).
func BenchmarkForkWait(b *testing.B) {
	c := inproc.New()
	defer c.Close()
	ctx := context.Background()
	done := make(chan struct{}, 1)
	r := backend.StartRequest{Namespace: "bench", Name: "bench", Run: func(context.Context) { done <- struct{}{} }}
	b.ReportAllocs()
	for b.Loop() {
		r.PID++
		r.Name = "bench-" + strconv.FormatInt(r.PID, 10)
		if _, err := c.Start(ctx, &r); err != nil {
			b.Fatal(err)
		}
		<-done
	}
}
