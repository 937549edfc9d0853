package computetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// RunBenchmarks runs the benchmarks against the compute made by each
// Harness that newHarness makes, one Harness per benchmark run:
//
//   - StartExit: the latency of starting an ExitAtOnce instance and
//     observing that it ended (fork+wait);
//   - StartStop: starting a RunUntilStopped instance, observing it start,
//     stopping it and observing it end;
//   - StartExitParallel: StartExit from GOMAXPROCS goroutines at once
//     (throughput).
//
// Observations go through Harness.Observe, polled as the suite polls, so
// the figures include the harness's cost and the polling delay.
func RunBenchmarks(b *testing.B, newHarness HarnessMaker) {
	b.Run("StartExit", func(b *testing.B) { benchStartExit(b, newHarness) })
	b.Run("StartStop", func(b *testing.B) { benchStartStop(b, newHarness) })
	b.Run("StartExitParallel", func(b *testing.B) { benchStartExitParallel(b, newHarness) })
}

// bench is one benchmark run's harness and compute.
type bench struct {
	b    *testing.B
	h    Harness
	c    backend.Compute
	wait time.Duration
}

func newBench(b *testing.B, newHarness HarnessMaker) *bench {
	b.Helper()
	ctx := context.Background()
	h, err := newHarness(ctx, b)
	if err != nil {
		b.Fatalf("making harness: %v", err)
	}
	if h == nil {
		b.Fatal("HarnessMaker returned a nil Harness")
	}
	b.Cleanup(h.Close)
	c, err := h.MakeCompute(ctx)
	if err != nil {
		b.Fatalf("MakeCompute: %v", err)
	}
	if c == nil {
		b.Fatal("MakeCompute returned a nil Compute")
	}
	b.Cleanup(func() {
		if err := c.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	wait, _ := patience(h)
	return &bench{b: b, h: h, c: c, wait: wait}
}

// request builds the request for the i'th instance. It returns errors
// rather than failing, for use from RunParallel goroutines.
func (bn *bench) request(i int64, beh Behaviour) (*backend.StartRequest, error) {
	const ns = "bench"
	name := instanceName(ns, i)
	req := bn.h.Request(bn.b, ns, name, i, beh)
	if req == nil {
		return nil, fmt.Errorf("harness Request(%q) returned nil", name)
	}
	return req, nil
}

// waitFor polls the observation of name until cond holds.
func (bn *bench) waitFor(ctx context.Context, name string, cond func(Observation) bool) error {
	var o Observation
	err := poll(bn.wait, func() (bool, error) {
		var err error
		o, err = bn.h.Observe(ctx, name)
		return err == nil && cond(o), err
	})
	if err != nil {
		return fmt.Errorf("observing %q: %w (last observation %+v)", name, err, o)
	}
	return nil
}

func started(o Observation) bool { return o.Started >= 1 }
func ended(o Observation) bool   { return o.Started >= 1 && o.Ended >= o.Started }

// startExit starts instance i, ExitAtOnce, and waits until it has ended.
func (bn *bench) startExit(ctx context.Context, i int64) error {
	req, err := bn.request(i, ExitAtOnce)
	if err != nil {
		return err
	}
	if _, err := bn.c.Start(ctx, req); err != nil {
		return fmt.Errorf("Start(%q): %w", req.Name, err)
	}
	return bn.waitFor(ctx, req.Name, ended)
}

func benchStartExit(b *testing.B, newHarness HarnessMaker) {
	bn := newBench(b, newHarness)
	ctx := context.Background()
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		i++
		if err := bn.startExit(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStartStop(b *testing.B, newHarness HarnessMaker) {
	bn := newBench(b, newHarness)
	ctx := context.Background()
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		i++
		req, err := bn.request(i, RunUntilStopped)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bn.c.Start(ctx, req); err != nil {
			b.Fatalf("Start(%q): %v", req.Name, err)
		}
		if err := bn.waitFor(ctx, req.Name, started); err != nil {
			b.Fatal(err)
		}
		if err := bn.c.Stop(ctx, req.Name); err != nil {
			b.Fatalf("Stop(%q): %v", req.Name, err)
		}
		if err := bn.waitFor(ctx, req.Name, ended); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStartExitParallel(b *testing.B, newHarness HarnessMaker) {
	bn := newBench(b, newHarness)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bn.startExit(ctx, next.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
