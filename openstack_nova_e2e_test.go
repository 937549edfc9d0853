package rack_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/novaemu"
)

// Kernel-level tests of forks on a Nova that behaves as real clouds do
// (the emulator's knobs; see the backend/nova tests for one per knob).

// openNova starts an emulator with faults and opens a namespace on it with
// the URL options opts (after image and flavor).
func openNova(t *testing.T, ctx context.Context, faults novaemu.Faults, opts string) (*novaemu.Emulator, *rack.Kernel) {
	t.Helper()
	cloud, addr := openstackEnv(t)
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	var b [4]byte
	_, _ = rand.Read(b[:])
	k, err := rack.Open(ctx, "openstack://"+cloud+"/rack-real-"+hex.EncodeToString(b[:])+"?image=cirros&flavor=m1.tiny"+opts,
		rack.WithPolling(10*time.Millisecond, 500*time.Millisecond),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return emu, k
}

// live returns the emulator's servers that are not being deleted.
func live(emu *novaemu.Emulator) []novaemu.ServerInfo {
	var out []novaemu.ServerInfo
	for _, s := range emu.Servers() {
		if s.TaskState != "deleting" && s.Status != "DELETED" {
			out = append(out, s)
		}
	}
	return out
}

// TestOpenStackQuotaOneShutoffLate: with an instance quota of 1 and Nova
// showing SHUTOFF 600 s after a VM powers off, five children forked one
// after another all finish in about five boots and runs: the forker
// deletes each server as soon as it reads the child's exit.
func TestOpenStackQuotaOneShutoffLate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emu, k := openNova(t, ctx, novaemu.Faults{BootDelay: 200 * time.Millisecond, InstanceQuota: 1, ShutoffDelay: 600 * time.Second}, "&network=none")
	var lifetimes, outlived []time.Duration
	t0 := time.Now()
	root, err := k.Start(ctx, rack.Spec{Name: "quota-root"}, func(ctx context.Context, self *rack.Self) error {
		for range 5 {
			ts := time.Now()
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
			if err != nil {
				return err
			}
			if err := c.Wait(ctx); err != nil {
				return err
			}
			exited := time.Now()
			lifetimes = append(lifetimes, exited.Sub(ts).Round(time.Millisecond))
			for len(live(emu)) > 0 && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			outlived = append(outlived, time.Since(exited).Round(time.Millisecond))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("quota 1, SHUTOFF 600 s late: 5 children forked one after another finished in %v (fork to Wait: %v); "+
		"each server gone %v after Wait returned; Nova calls %v",
		time.Since(t0).Round(time.Millisecond), lifetimes, outlived, emu.Calls())
}

// TestOpenStackStuckBuild: with every boot stuck in BUILD and max_boots=2,
// Wait on each child returns ErrLost naming the build deadline, nothing
// hangs, and no server is left.
func TestOpenStackStuckBuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emu, k := openNova(t, ctx, novaemu.Faults{StuckBuild: true}, "&network=none&max_boots=2&build_timeout=500ms")
	t0 := time.Now()
	root, err := k.Start(ctx, rack.Spec{Name: "stuck-root"}, func(ctx context.Context, self *rack.Self) error {
		var kids []*rack.Process
		for range 3 {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
			if err != nil {
				return err
			}
			kids = append(kids, c)
		}
		for i, c := range kids {
			err := c.Wait(ctx)
			if !errors.Is(err, rack.ErrLost) || !strings.Contains(err.Error(), "build deadline") {
				t.Errorf("child %d: Wait = %v, want ErrLost naming the build deadline", i, err)
			} else if i == 0 {
				t.Logf("Wait: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("3 children, every boot stuck, max_boots=2, build_timeout=500ms: all lost in %v (%d creates)",
		time.Since(t0).Round(time.Millisecond), emu.Calls()["POST /servers"])
	deadline := time.Now().Add(10 * time.Second)
	for len(live(emu)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if left := live(emu); len(left) > 0 {
		t.Errorf("%d servers left, e.g. %s (%s)", len(left), left[0].Name, left[0].Status)
	}
}

// TestOpenStackNetworkAmbiguous: a fork on a cloud where the project sees
// several networks and no network= is set fails at once, naming the
// option to set.
func TestOpenStackNetworkAmbiguous(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emu, k := openNova(t, ctx, novaemu.Faults{NetworkAmbiguous: true}, "")
	root, err := k.Start(ctx, rack.Spec{Name: "net-root"}, func(ctx context.Context, self *rack.Self) error {
		for i := range 2 {
			t0 := time.Now()
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
			if err == nil {
				err = c.Wait(ctx)
			}
			elapsed := time.Since(t0)
			if err == nil || !strings.Contains(err.Error(), "network=") {
				t.Errorf("fork %d with an ambiguous network: %v, want an error naming network=", i, err)
			}
			t.Logf("fork %d failed in %v: %v", i, elapsed.Round(time.Millisecond), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := emu.Calls()["POST /servers"]; n != 2 {
		t.Errorf("%d creates, want 2 (one per fork)", n)
	}
}
