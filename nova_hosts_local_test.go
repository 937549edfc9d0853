package rack_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/file"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// staticStager stages this test binary from a local HTTP server (as a
// Swift TempURL would serve it).
type staticStager struct{ url, sum string }

func (s staticStager) Stage(context.Context) (string, string, error) { return s.url, s.sum, nil }

// serveThisBinary serves this test binary over HTTP and returns a stager
// of it.
func serveThisBinary(t testing.TB) staticStager {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bin/"+sum {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return staticStager{srv.URL + "/bin/" + sum, sum}
}

// novaHostsLocal starts an emulator (boot delay 300 ms) and opens a
// kernel with hosts on (idle time 1 minute, lease 3 s) whose servers boot
// this test binary with flavor and share a file:// store with it.
func novaHostsLocal(t *testing.T, ctx context.Context, flavor string) (*novaemu.Emulator, *rack.Kernel) {
	return novaHostsLocalBoot(t, ctx, flavor, 300*time.Millisecond)
}

// novaHostsLocalBoot is novaHostsLocal with a boot delay of boot.
func novaHostsLocalBoot(t *testing.T, ctx context.Context, flavor string, boot time.Duration) (*novaemu.Emulator, *rack.Kernel) {
	t.Helper()
	emu, err := novaemu.Start(novaemu.Config{WorkDir: t.TempDir(), Faults: novaemu.Faults{BootDelay: boot}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	compute, err := nova.New(nova.Config{
		Client: &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{TokenID: "token"},
			Endpoint: emu.URL() + "/", Type: "compute"},
		Image: "img", Flavor: flavor, Network: "none", Stager: serveThisBinary(t), PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := file.New(dir, file.WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	k, err := rack.New(ctx, store, compute, rack.WithURL("file://"+dir+"?hosts=1&idle=1m"), rack.WithHosts(0, time.Minute),
		rack.WithLease(3*time.Second), rack.WithPolling(10*time.Millisecond, 500*time.Millisecond),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return emu, k
}

// TestNovaHostsLocalStore: hosts on Nova servers (the emulator, with a
// boot delay) without Keystone or Swift: the namespace is a file://
// store the emulated servers share with the forker. 40 workers forked at
// once on hosts whose slots come from the flavor (c1.ten: 10 vCPUs) boot
// 4 servers; a second batch while they are warm boots none; the forker's
// Close leaves the hosts' servers, whose programs then end by themselves
// (the namespace has no kernel left).
func TestNovaHostsLocalStore(t *testing.T) {
	if testing.Short() {
		t.Skip("boots emulated servers running this binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emu, k := novaHostsLocal(t, ctx, "c1.ten")
	const workers = 40
	run := func(arg string) map[int]bool {
		ospids := map[int]bool{}
		root, err := k.Start(ctx, rack.Spec{Name: "many"}, func(ctx context.Context, self *rack.Self) error {
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			specs := make([]rack.Spec, workers)
			for i := range specs {
				specs[i] = rack.Spec{Program: "os-child", Args: []string{arg}, Stdout: w}
			}
			kids, err := self.ForkAll(ctx, specs)
			if err != nil {
				return err
			}
			w.Close()
			sc := bufio.NewScanner(r)
			for lines := 0; lines < workers && sc.Scan(); lines++ {
				f := strings.Fields(sc.Text())
				ospid, _ := strconv.Atoi(f[len(f)-1])
				ospids[ospid] = true
			}
			for _, c := range kids {
				if arg == "block" {
					if err := c.Kill(ctx); err != nil {
						return err
					}
				}
				if err := c.Wait(ctx); err != nil && arg != "block" {
					return err
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
		return ospids
	}
	first := run("block")
	if n := emu.Calls()["POST /servers"]; n != 4 || len(first) != 4 {
		t.Errorf("%d workers on hosts of 10 slots: %d servers created, %d OS processes; want 4 and 4", workers, n, len(first))
	}
	hosts, err := k.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if h.Slots != 10 {
			t.Errorf("host %s has %d slots, want the flavor's 10 vCPUs", h.Kernel, h.Slots)
		}
	}
	emu.ResetCalls()
	second := run("ok")
	if n := emu.Calls()["POST /servers"]; n != 0 {
		t.Errorf("the second batch, within the idle time, created %d servers, want 0", n)
	}
	for ospid := range second {
		if !first[ospid] {
			t.Errorf("the second batch ran in OS process %d, not one of the warm hosts", ospid)
		}
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(live(emu)); n != 4 {
		t.Errorf("Close left %d servers, want the 4 hosts' (they end themselves)", n)
	}
	// The namespace has no kernel but hosts: they end (their programs
	// exit; here, with a file:// store, they have no server to delete).
	deadline := time.Now().Add(30 * time.Second)
	for {
		running := 0
		for _, s := range emu.Servers() {
			if s.PID != 0 {
				running++
			}
		}
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hosts still run 30 s after the namespace's last kernel closed", running)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range emu.Servers() {
		if s.ExitCode != 0 {
			t.Errorf("host server %s: exit status %d, console:\n%s", s.Name, s.ExitCode, s.Console)
		}
	}
}

// TestNovaHostsOwnFlavor: with hosts on, a fork that asks for its own
// flavor (Spec.Options) gets a server of its own, deleted once it has
// exited; one without options goes to a host.
func TestNovaHostsOwnFlavor(t *testing.T) {
	if testing.Short() {
		t.Skip("boots emulated servers running this binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emu, k := novaHostsLocal(t, ctx, "m1.medium")
	// A fork that asks for its own flavor gets its own server.
	own, err := k.Start(ctx, rack.Spec{Name: "own"}, func(ctx context.Context, self *rack.Self) error {
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}, Options: map[string]string{"flavor": "1"}})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := own.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := emu.Calls()["POST /servers"]; n != 1 {
		t.Errorf("a fork with its own flavor created %d servers, want 1", n)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left := ""
		for _, s := range live(emu) {
			if s.Metadata[nova.MetaHost] != "1" {
				left = s.Name
			}
		}
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s of a fork with its own flavor left 10 s after its exit", left)
		}
	}
	c, err := k.Start(ctx, rack.Spec{Name: "hosted"}, func(ctx context.Context, self *rack.Self) error {
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(live(emu)); n != 1 || live(emu)[0].Metadata[nova.MetaHost] != "1" {
		t.Errorf("a fork without options: %d servers, want one host's", n)
	}
}

// TestNovaHostsSlowBoot: a host whose server boots for longer than two
// leases (7 s against 3 s) runs the processes placed on it: its forker
// keeps its lease and record alive while it boots, so they are not taken
// for lost, and a second fork meanwhile goes to the same booting host.
func TestNovaHostsSlowBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an emulated server for 7 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emu, k := novaHostsLocalBoot(t, ctx, "m1.medium", 7*time.Second)
	root, err := k.Start(ctx, rack.Spec{Name: "slow"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		var kids []*rack.Process
		for i := 0; i < 2; i++ {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"ok"}, Stdout: w})
			if err != nil {
				return err
			}
			kids = append(kids, c)
			time.Sleep(4 * time.Second) // the second fork past the first's lease
		}
		w.Close()
		for _, c := range kids {
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		out, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if n := strings.Count(string(out), "ok "); n != 2 {
			return fmt.Errorf("the children wrote %q, want 2 lines", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := emu.Calls()["POST /servers"]; n != 1 {
		t.Errorf("2 forks on a host of 2 slots booting for 7 s created %d servers, want 1", n)
	}
}

// TestNovaHostsHostDies: once a host runs, its forker no longer keeps its
// lease: a host whose VM dies (kill -9 of its process group) has its
// processes reported lost within a few leases.
func TestNovaHostsHostDies(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an emulated server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emu, k := novaHostsLocal(t, ctx, "m1.medium")
	root, err := k.Start(ctx, rack.Spec{Name: "dies"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
			return err
		}
		servers := live(emu)
		if len(servers) != 1 || servers[0].PID == 0 {
			return fmt.Errorf("servers %+v, want one running host", servers)
		}
		if err := syscall.Kill(-servers[0].PID, syscall.SIGKILL); err != nil {
			return err
		}
		killed := time.Now()
		err = c.Wait(ctx)
		if !errors.Is(err, rack.ErrLost) {
			return fmt.Errorf("the child of a host killed -9: Wait = %v, want ErrLost", err)
		}
		if took := time.Since(killed); took > 15*time.Second {
			return fmt.Errorf("the child of a host killed -9 was reported lost %v after the kill (lease 3 s)", took)
		}
		t.Logf("lost %v after its host's kill -9: %v", time.Since(killed).Round(100*time.Millisecond), err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkNovaHostForkLocal is BenchmarkOpenStackHostFork on emulated
// servers sharing a file:// store (no Keystone, no Swift): the boot and
// placement costs without Swift's latency.
//
//	go test -run '^$' -bench NovaHostForkLocal -benchtime 3x .
func BenchmarkNovaHostForkLocal(b *testing.B) {
	boot := benchBootDelay(b)
	emu, err := novaemu.Start(novaemu.Config{WorkDir: b.TempDir(), Faults: novaemu.Faults{BootDelay: boot}})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	stager := serveThisBinary(b)
	benchHostForks(b, boot, func() *rack.Kernel {
		compute, err := nova.New(nova.Config{
			Client: &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{TokenID: "token"},
				Endpoint: emu.URL() + "/", Type: "compute"},
			Image: "img", Flavor: "m1.medium", Network: "none", Stager: stager, PollInterval: 100 * time.Millisecond,
		})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		store, err := file.New(dir, file.WithoutSync())
		if err != nil {
			b.Fatal(err)
		}
		k, err := rack.New(context.Background(), store, compute, rack.WithURL("file://"+dir+"?hosts=1&idle=1m"), rack.WithHosts(0, time.Minute),
			rack.WithLease(3*time.Second), rack.WithPolling(10*time.Millisecond, 500*time.Millisecond),
			rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			b.Fatal(err)
		}
		return k
	})
}
