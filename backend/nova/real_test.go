package nova_test

// Tests of the driver against the emulator's knobs that model how a real
// Nova behaves (novaemu.Faults: ShutoffDelay, QuotaStyle, RecheckQuota,
// StuckBuild, HideFromListings, NetworkAmbiguous, ConsoleNotImplemented,
// DeleteFailures, ReclaimInterval), one test per knob, with the figures
// logged where time matters.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// TestReapAtExitShutoffLate: with an instance quota of 1 and Nova showing
// SHUTOFF 600 s after a VM powers off (an Ironic-like cloud), five
// children started one after another all run: each server goes when its
// program's exit is known (Reap, which the kernel calls once it reads the
// exit record), not when Nova shows it SHUTOFF.
func TestReapAtExitShutoffLate(t *testing.T) {
	const poll = 25 * time.Millisecond
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: 50 * time.Millisecond,
		InstanceQuota: 1, ShutoffDelay: 600 * time.Second}})
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.PollInterval = poll })
	m := newMarkers(t)
	t0 := time.Now()
	var runs, outlived []time.Duration
	for i := range 5 {
		req := request(m, "reap", int64(100+i), computetest.ExitAtOnce)
		ts := time.Now()
		// A minute is far below the 600 s a SHUTOFF would take.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := c.Start(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("Start(%s): %v", req.Name, err)
		}
		waitEnded(t, m, req.Name)
		ended := time.Now()
		c.Reap(req.Name) // as the kernel does on reading the exit record
		waitFor(t, 30*time.Second, req.Name+"'s server to go", func() bool { return len(e.Servers()) == 0 })
		outlived = append(outlived, time.Since(ended))
		runs = append(runs, ended.Sub(ts))
	}
	t.Logf("quota 1, SHUTOFF 600 s late: 5 children one after another in %v (start to exit: %v); each server gone %v after its exit was seen",
		time.Since(t0).Round(time.Millisecond), roundAll(runs), roundAll(outlived))
	if n := e.Calls()["POST /servers"]; n != 5 {
		t.Errorf("%d creates, want 5 (none refused for quota)", n)
	}
	for i := range 5 {
		if _, failed := c.Failure(request(m, "reap", int64(100+i), computetest.ExitAtOnce).Name); failed {
			t.Errorf("child %d has a failure", i)
		}
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestQuotaWordings: each wording of a quota refusal (the DbQuotaDriver's,
// unified limits', Neutron's port quota) makes Start wait, and it succeeds
// once quota frees; none fails as invalid.
func TestQuotaWordings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		style novaemu.QuotaStyle
	}{{"classic", novaemu.QuotaClassic}, {"unified-limits", novaemu.QuotaUnified}, {"ports", novaemu.QuotaPorts}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{InstanceQuota: 1, QuotaStyle: tc.style}})
			c := newCompute(t, e, nil)
			m := newMarkers(t)
			first := request(m, "qw", 100, computetest.RunUntilStopped)
			if _, err := c.Start(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			second := request(m, "qw", 101, computetest.RunUntilStopped)
			done := make(chan error, 1)
			go func() {
				_, err := c.Start(context.Background(), second)
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("Start over the quota returned %v, want it to wait", err)
			case <-time.After(500 * time.Millisecond):
			}
			refused := e.Calls()["POST /servers"] - 1
			if err := c.Stop(context.Background(), first.Name); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if err := <-done; err != nil {
				t.Fatalf("Start once quota freed: %v", err)
			}
			t.Logf("%s: %d creates refused while waiting; Start succeeded %v after the Stop",
				tc.name, refused, time.Since(t0).Round(time.Millisecond))
			if refused < 1 {
				t.Errorf("no create was refused for quota")
			}
			waitStarted(t, m, second.Name)
		})
	}
}

// TestRecheckQuotaNotABootFailure: a server that loses the conductor's
// quota recheck goes ERROR with a quota fault; that is a wait for quota,
// not a failed boot, however often it happens.
func TestRecheckQuotaNotABootFailure(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: 10 * time.Millisecond,
		InstanceQuota: 1, RecheckQuota: true, QuotaStyle: novaemu.QuotaUnified}})
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.BootRetries = 1 })
	m := newMarkers(t)
	first := request(m, "rq", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, first.Name)
	second := request(m, "rq", 101, computetest.ExitAtOnce)
	if _, err := c.Start(context.Background(), second); err != nil {
		t.Fatalf("Start (accepted by the API, refused by the recheck): %v", err)
	}
	// Several recheck failures, more than BootRetries allows for boots.
	waitFor(t, 30*time.Second, "three creates of the second", func() bool { return e.Calls()["POST /servers"] >= 4 })
	if reason, failed := c.Failure(second.Name); failed {
		t.Fatalf("a lost quota recheck counted as a failed boot: %s", reason)
	}
	if err := c.Stop(context.Background(), first.Name); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, m, second.Name)
	if reason, failed := c.Failure(second.Name); failed {
		t.Errorf("Failure(%s) = %q", second.Name, reason)
	}
	t.Logf("creates: %d (one accepted and refused by the recheck per wait)", e.Calls()["POST /servers"])
}

// TestBuildDeadline: servers stuck in BUILD for good are deleted at their
// build deadline, their slots released; after the boot retries the
// instance fails naming the deadline, no Start hangs and no server is
// left.
func TestBuildDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{StuckBuild: true}})
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.MaxBootsInFlight = 2
		cfg.BootRetries = 1
		cfg.BuildTimeout = deadline
	})
	m := newMarkers(t)
	var reqs []*backend.StartRequest
	for i := range 4 {
		reqs = append(reqs, request(m, "stuck", int64(100+i), computetest.ExitAtOnce))
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, len(reqs))
	for _, r := range reqs {
		go func() {
			_, err := c.Start(ctx, r)
			errs <- err
		}()
	}
	for range reqs {
		if err := <-errs; err != nil {
			t.Errorf("Start: %v", err)
		}
	}
	for _, r := range reqs {
		var reason string
		waitFor(t, 30*time.Second, r.Name+"'s failure", func() bool {
			var ok bool
			reason, ok = c.Failure(r.Name)
			return ok
		})
		if !strings.Contains(reason, "build deadline") || !strings.Contains(reason, "build_timeout") {
			t.Errorf("Failure(%s) = %q, want it to name the build deadline", r.Name, reason)
		}
	}
	elapsed := time.Since(t0)
	waitFor(t, 10*time.Second, "no server left", func() bool { return len(e.Servers()) == 0 })
	if insts, _ := c.List(context.Background(), ""); len(insts) != 0 {
		t.Errorf("List = %v after every instance failed", insts)
	}
	r, _ := c.Failure(reqs[0].Name)
	t.Logf("4 instances, every boot stuck, max_boots 2, deadline %v, 1 retry: all failed in %v (%d creates): %q",
		deadline, elapsed.Round(time.Millisecond), e.Calls()["POST /servers"], r)
}

// TestHiddenFromListings: a server left out of listings (a cell that does
// not respond) while it runs is confirmed by a GET, not reported lost, and
// deleted normally; a server truly deleted outside rack is reported lost
// within two polls and one GET.
func TestHiddenFromListings(t *testing.T) {
	const (
		poll   = 50 * time.Millisecond
		hidden = 1500 * time.Millisecond // 30 s scaled down
	)
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{HideFromListings: hidden}})
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.PollInterval = poll })
	m := newMarkers(t)
	req := request(m, "hide", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, req.Name)
	time.Sleep(hidden + 4*poll)
	if reason, failed := c.Failure(req.Name); failed {
		t.Fatalf("a server hidden from listings was reported: %s", reason)
	}
	if insts, _ := c.List(context.Background(), ""); len(insts) != 1 {
		t.Fatalf("List = %v, want the hidden instance", insts)
	}
	gets := e.Calls()["GET /servers/{id}"]
	t.Logf("hidden %v with a poll every %v: %d GETs confirmed it", hidden, poll, gets)
	if gets == 0 {
		t.Error("no GET confirmed the hidden server")
	}
	if err := c.Stop(context.Background(), req.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the server to go", func() bool { return len(e.Servers()) == 0 })

	// Truly deleted outside rack (and never listed, as when hidden).
	other := request(m, "hide", 101, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, other.Name)
	id := serversNamed(e, other.Name)[0].ID
	if err := servers.Delete(context.Background(), client(e), id).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var reason string
	waitFor(t, 10*time.Second, "the loss to be reported", func() bool {
		var ok bool
		reason, ok = c.Failure(other.Name)
		return ok
	})
	t.Logf("a server deleted outside rack reported lost %v after (poll %v): %q", time.Since(t0).Round(time.Millisecond), poll, reason)
	if !strings.Contains(reason, "deleted outside rack") {
		t.Errorf("Failure = %q", reason)
	}
}

// TestNetworkAmbiguous: a create refused with 409 NetworkAmbiguous fails
// the Start at once as invalid, naming the option to set, after one
// create.
func TestNetworkAmbiguous(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{NetworkAmbiguous: true}})
	c := newCompute(t, e, nil)
	m := newMarkers(t)
	t0 := time.Now()
	_, err := c.Start(context.Background(), request(m, "net", 100, computetest.ExitAtOnce))
	elapsed := time.Since(t0)
	if !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "network=") {
		t.Fatalf("Start = %v, want ErrInvalid naming network=", err)
	}
	if n := e.Calls()["POST /servers"]; n != 1 {
		t.Errorf("%d creates, want 1 (no retry)", n)
	}
	t.Logf("NetworkAmbiguous: Start failed in %v: %v", elapsed.Round(time.Microsecond), err)
	// With a network named, it boots.
	req := request(m, "net", 101, computetest.ExitAtOnce)
	req.Options = map[string]string{nova.OptionNetwork: "6a8d2e7c-0000-4000-8000-000000000001"}
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Errorf("Start with network=: %v", err)
	}
}

// TestConsoleNotImplemented: a 501 on the console (Ironic) is read once,
// not retried, and the server is deleted all the same.
func TestConsoleNotImplemented(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{ConsoleNotImplemented: true}})
	url, _ := stagedBinary(t)
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.Stager = staticStager{url, strings.Repeat("0", 64)} })
	m := newMarkers(t)
	req := request(m, "console", 100, computetest.ExitAtOnce)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the server to go", func() bool {
		return e.Calls()["DELETE /servers/{id}"] > 0 && len(e.Servers()) == 0
	})
	if n := e.Calls()["POST /servers/{id}/action"]; n != 1 {
		t.Errorf("%d console reads, want 1 (a 501 is not retried)", n)
	}
}

// TestFailedDeleteRetried: a delete that fails on the compute host (the
// server goes ERROR) is seen by the GET that confirms it, and repeated
// until the GET answers 404.
func TestFailedDeleteRetried(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{DeleteFailures: 2}})
	c := newCompute(t, e, nil)
	m := newMarkers(t)
	req := request(m, "del", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, req.Name)
	if err := c.Stop(context.Background(), req.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the server to go", func() bool { return len(e.Servers()) == 0 })
	calls := e.Calls()
	if calls["DELETE /servers/{id}"] != 3 {
		t.Errorf("%d deletes, want 3 (two failed)", calls["DELETE /servers/{id}"])
	}
	t.Logf("two deletes failing into ERROR: %d deletes, %d GETs", calls["DELETE /servers/{id}"], calls["GET /servers/{id}"])
}

// TestSoftDelete: with reclaim_instance_interval > 0 a delete is a soft
// delete that keeps the quota; the driver force-deletes the server, so
// the next Start within a quota of 1 goes ahead.
func TestSoftDelete(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{InstanceQuota: 1, ReclaimInterval: time.Hour}})
	c := newCompute(t, e, nil)
	m := newMarkers(t)
	first := request(m, "soft", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, m, first.Name)
	if err := c.Stop(context.Background(), first.Name); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := request(m, "soft", 101, computetest.RunUntilStopped)
	if _, err := c.Start(ctx, second); err != nil {
		t.Fatalf("Start after a soft delete: %v", err)
	}
	t.Logf("after a soft delete, the next Start within quota 1 went ahead in %v (calls %v)", time.Since(t0).Round(time.Millisecond), e.Calls())
	for _, s := range e.Servers() {
		if s.Name == first.Name {
			t.Errorf("server %s still there, %s", s.Name, s.Status)
		}
	}
}

// TestRecheckQuotaAlone: the only instance of a Compute, refused by the
// quota recheck while a server of someone else holds the quota, runs once
// that server goes (the poller keeps following it between retries).
func TestRecheckQuotaAlone(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: 10 * time.Millisecond,
		InstanceQuota: 1, RecheckQuota: true}})
	other, err := servers.Create(context.Background(), client(e), servers.CreateOpts{Name: "someone-else", ImageRef: "i", FlavorRef: "1"}, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	c := newCompute(t, e, nil)
	m := newMarkers(t)
	req := request(m, "rqa", 100, computetest.ExitAtOnce)
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "two refused creates", func() bool { return e.Calls()["POST /servers"] >= 3 })
	if err := servers.Delete(context.Background(), client(e), other.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitEnded(t, m, req.Name)
	t.Logf("ran %v after the other server went (%d creates)", time.Since(t0).Round(time.Millisecond), e.Calls()["POST /servers"])
	if reason, failed := c.Failure(req.Name); failed {
		t.Errorf("Failure = %q", reason)
	}
}
