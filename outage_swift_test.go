package rack_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/internal/tcpfault"
)

// The outage tests: a real Swift behind a TCP proxy (internal/tcpfault)
// that refuses every connection for a while, or accepts them and never
// answers, with the kernel's defaults (lease, retry budget, request
// timeout). Helpers start with "ot".

// otProxy starts a proxy to the Swift of SWIFT_AUTH_URL and returns it
// with a Config that goes through it (tempauth hands out storage URLs on
// the Host the client asked, so storage requests go through it too), with
// the driver's default timeouts.
func otProxy(t *testing.T) (*tcpfault.Proxy, swift.Config) {
	t.Helper()
	sfConfig(t) // skips without Swift
	if testing.Short() {
		t.Skip("outage runs take a minute or more")
	}
	cfg, err := swift.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tcpfault.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	u.Host = p.Addr()
	cfg.AuthURL = u.String()
	return p, cfg
}

// otKernel opens a kernel with the defaults on namespace ns through cfg.
func otKernel(t *testing.T, ctx context.Context, cfg swift.Config, ns string) (*rack.Kernel, *swift.Store) {
	t.Helper()
	s, err := swift.New(ctx, cfg)
	if err != nil {
		t.Fatalf("swift.New: %v", err)
	}
	opts := []rack.Option{
		rack.WithNamespace(ns),
		rack.WithRecordTTL(time.Hour),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard),
	}
	if os.Getenv("RACK_OUTAGE_LOG") != "" {
		opts = append(opts, rack.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	k, err := rack.New(ctx, s, inproc.New(), opts...)
	if err != nil {
		s.Close()
		t.Fatalf("rack.New: %v", err)
	}
	return k, s
}

// otOutage refuses every connection for d, from after seconds on.
func otOutage(t *testing.T, p *tcpfault.Proxy, after, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(after)
		if err := p.SetMode(tcpfault.Refuse); err != nil {
			t.Errorf("refuse: %v", err)
			return
		}
		time.Sleep(d)
		if err := p.SetMode(tcpfault.Pass); err != nil {
			t.Errorf("pass: %v", err)
		}
	}()
	return done
}

// otSegments lists the pipe segments left in namespace ns.
func otSegments(t *testing.T, s backend.Store, ns string) []string {
	t.Helper()
	objs, err := s.List(context.Background(), ns, backend.ListOptions{Prefix: "pipes/"})
	if err != nil {
		t.Fatalf("listing %s: %v", ns, err)
	}
	var segs []string
	for _, o := range objs {
		if strings.Contains(o.Name, "/seg/") {
			segs = append(segs, o.Name)
		}
	}
	return segs
}

// TestSwiftOutage: with every connection to Swift refused for 20 s in the
// middle of a run (the default lease, 30 s), montecarlo and a 64 MiB pipe
// finish with exact results, the stream leaves no segment behind, and one
// gc with the default options a lease later leaves only the namespace's
// pid blocks and marker.
func TestSwiftOutage(t *testing.T) {
	p, cfg := otProxy(t)
	ctx := context.Background()
	wantSum := 0
	for i := 0; i < sfWorkers; i++ {
		wantSum += sfCount(i)
	}
	wantMC := fmt.Sprintf("%d lines, sum %d", sfWorkers, wantSum)
	h := sha256.New()
	io.Copy(h, sfData(sfStreamSize))
	wantStream := fmt.Sprintf("%d bytes, sha256 %x", sfStreamSize, h.Sum(nil))

	for _, c := range []struct {
		job, want string
		after     time.Duration
	}{
		{"montecarlo", wantMC, 200 * time.Millisecond},
		{"stream", wantStream, 1500 * time.Millisecond},
	} {
		if only := os.Getenv("RACK_OUTAGE_JOB"); only != "" && only != c.job {
			continue
		}
		ns := fmt.Sprintf("rack-outage-%s-%d", c.job, time.Now().UnixNano())
		k, s := otKernel(t, ctx, cfg, ns)
		start := time.Now()
		outage := otOutage(t, p, c.after, 20*time.Second)
		got, err := sfRun(ctx, t, k, c.job, 3*time.Minute, nil)
		<-outage
		t.Logf("%s through a 20 s outage: %v", c.job, time.Since(start).Round(time.Millisecond))
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.job, got, err, c.want)
		}
		if err := k.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		raw, err := swift.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if left := otSegments(t, raw, ns); len(left) > 0 {
			t.Errorf("%s: %d pipe segments left: %v", c.job, len(left), left)
		}
		// One gc with the default options, a lease (30 s) after the
		// job, leaves only the namespace's own pid blocks and its
		// marker.
		time.Sleep(31 * time.Second)
		g, _ := otKernel(t, ctx, cfg, ns)
		if rep, err := g.GC(ctx, nil); err != nil {
			t.Errorf("%s: gc: %v", c.job, err)
		} else {
			t.Logf("%s: one gc a lease after the job: %+v", c.job, rep)
		}
		g.Close()
		objs, err := raw.List(ctx, ns, backend.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if !strings.HasPrefix(o.Name, "pids/") && o.Name != "rack-namespace" {
				t.Errorf("%s: left after gc: %s", c.job, o.Name)
			} else {
				_ = raw.Delete(ctx, ns, o.Name)
			}
		}
		_ = raw.DeleteContainer(ctx, ns)
		raw.Close()
		_ = s
	}
}

// TestSwiftNeverAnswers: with Swift accepting connections and never
// answering (hang), or refusing every connection (refuse), for good, a job
// fails with a clear error (not a hang), and the kernel closes, within a
// bound: the lease (30 s) for the operation that finds it, then one try
// per clean-up operation (a request timeout, 5 s, each when it hangs).
func TestSwiftNeverAnswers(t *testing.T) {
	p, cfg := otProxy(t)
	ctx := context.Background()
	for _, c := range []struct {
		mode tcpfault.Mode
		says []string
	}{
		{tcpfault.Hang, []string{"request timeout"}},
		{tcpfault.Refuse, []string{"connection refused", "connection reset"}},
	} {
		_ = p.SetMode(tcpfault.Pass)
		ns := fmt.Sprintf("rack-%v-%d", c.mode, time.Now().UnixNano())
		k, _ := otKernel(t, ctx, cfg, ns)
		if err := p.SetMode(c.mode); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := sfRun(ctx, t, k, "montecarlo", 5*time.Minute, nil)
		failed := time.Since(start)
		closed := make(chan error, 1)
		go func() { closed <- k.Close() }()
		select {
		case <-closed:
		case <-time.After(3 * time.Minute):
			t.Fatalf("%v: Close did not return within 3 minutes of the failure", c.mode)
		}
		t.Logf("montecarlo against a Swift that %v: failed after %v (%v), closed after %v",
			c.mode, failed.Round(time.Millisecond), err, time.Since(start).Round(time.Millisecond))
		if err == nil || strings.Contains(err.Error(), "did not end within") {
			t.Fatalf("%v: %v, want a clear error", c.mode, err)
		}
		clear := false
		for _, w := range c.says {
			clear = clear || strings.Contains(err.Error(), w)
		}
		if !clear {
			t.Errorf("%v: the error does not say what the store did (%q): %v", c.mode, c.says, err)
		}
		_ = p.SetMode(tcpfault.Pass)
		if raw, err := swift.New(ctx, cfg); err == nil {
			objs, _ := raw.List(ctx, ns, backend.ListOptions{})
			for _, o := range objs {
				_ = raw.Delete(ctx, ns, o.Name)
			}
			_ = raw.DeleteContainer(ctx, ns)
			raw.Close()
		}
	}
}
