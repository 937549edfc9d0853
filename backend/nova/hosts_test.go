package nova_test

import (
	"context"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// A host's server (backend.HostOption) carries rack-host=1, and Close
// leaves it running while it deletes an ordinary child's server; Sweep
// deletes it once its namespace is dead.
func TestHostOutlivesClose(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{BootDelay: 20 * time.Millisecond}})
	m := newMarkers(t)
	c, err := nova.New(testConfig(t, e))
	if err != nil {
		t.Fatal(err)
	}
	host := request(m, "hostns", 0, computetest.RunUntilStopped)
	host.Options = map[string]string{backend.HostOption: "1"}
	child := request(m, "hostns", 2, computetest.RunUntilStopped)
	startAll(t, c, []*backend.StartRequest{host, child})
	waitStarted(t, m, host.Name, child.Name)
	if s := serversNamed(e, host.Name); len(s) != 1 || s[0].Metadata[nova.MetaHost] != "1" {
		t.Fatalf("host server: %+v, want one with %s=1", s, nova.MetaHost)
	}
	if s := serversNamed(e, child.Name); len(s) != 1 || s[0].Metadata[nova.MetaHost] != "" {
		t.Fatalf("child server: %+v, want one without %s", s, nova.MetaHost)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(serversNamed(e, child.Name)); n != 0 {
		t.Errorf("Close left the child's server (%d)", n)
	}
	if n := len(serversNamed(e, host.Name)); n != 1 {
		t.Fatalf("Close deleted the host's server: %d left, want 1", n)
	}
	if o := observe(t, m, host.Name); o.Ended != 0 {
		t.Errorf("the host's program ended at Close: %+v", o)
	}
	swept, err := nova.Sweep(context.Background(), client(e), time.Now(), func(_ context.Context, ns string) (bool, error) {
		return ns == "hostns", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(swept) != 1 || swept[0].Name != host.Name || swept[0].Reason != "dead namespace" {
		t.Errorf("Sweep of the dead namespace: %+v, want the host's server", swept)
	}
	if n := len(serversNamed(e, host.Name)); n != 0 {
		t.Errorf("Sweep left the host's server")
	}
}

// HostSlots is the configured flavor's vCPUs (one GET /flavors/{id},
// cached), by id or, on the emulator, by name; an unknown flavor fails.
func TestHostSlots(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		flavor string
		want   int
	}{{"1", 1}, {"3", 2}, {"m1.xlarge", 8}, {"10", 10}} {
		c := newCompute(t, e, func(cfg *nova.Config) { cfg.Flavor = tc.flavor })
		e.ResetCalls()
		for i := 0; i < 2; i++ {
			n, err := c.HostSlots(ctx)
			if err != nil || n != tc.want {
				t.Errorf("flavor %s: HostSlots = %d, %v; want %d", tc.flavor, n, err, tc.want)
			}
		}
		if got := e.Calls()["GET /flavors/{id}"]; got != 1 {
			t.Errorf("flavor %s: %d GET /flavors/{id}, want 1 (cached)", tc.flavor, got)
		}
	}
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.Flavor = "no-such" })
	if n, err := c.HostSlots(ctx); err == nil {
		t.Errorf("unknown flavor: HostSlots = %d, nil; want an error", n)
	}
}
