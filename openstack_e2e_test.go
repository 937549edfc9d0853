package rack_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/novaemu"
	"github.com/rackfork/rack/internal/record"
)

// openstackEnv returns the clouds.yaml cloud and the address the Nova
// emulator must listen on (Keystone's catalog names it as the compute
// endpoint), or skips; .ci/run provides both.
func openstackEnv(t testing.TB) (cloud, addr string) {
	t.Helper()
	cloud, addr = os.Getenv("RACK_KEYSTONE_CLOUD"), os.Getenv("RACK_NOVA_ADDR")
	if os.Getenv("RACK_KEYSTONE") != "1" || cloud == "" || addr == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" && os.Getenv("RACK_KEYSTONE") == "1" {
			t.Fatal("RACK_KEYSTONE=1 needs RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR (the compute endpoint in Keystone's catalog)")
		}
		t.Skip("no OpenStack: RACK_KEYSTONE=1, RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR select Keystone, Swift and the Nova emulator (.ci/run sets them)")
	}
	// Other packages' tests use the same address: take turns.
	unlock, err := novaemu.LockAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	return cloud, addr
}

// TestOpenStackEndToEnd forks processes as (emulated) Nova servers that
// boot the way a stock cloud-init image does: their user-data script
// fetches this test binary from the real Swift through a TempURL, checks
// its digest and runs it; the child then opens the namespace with a
// one-time application credential from real Keystone. A quarter of the
// boots fail (NoValidHost) and are retried. It checks exit statuses, the
// children's output through a pipe, ps, that every server is deleted, and
// that the user's password is nowhere in user-data, server metadata, the
// namespace's objects or the kernel's debug log.
func TestOpenStackEndToEnd(t *testing.T) {
	cloud, addr := openstackEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 7,
		Faults: novaemu.Faults{BootDelay: 200 * time.Millisecond, BootJitter: 200 * time.Millisecond, BootFailureRate: 0.25,
			DeleteDelay: 10 * time.Minute}}) // deleted servers stay visible, DELETED
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "rack-os-" + hex.EncodeToString(b[:])
	var logs syncLog
	k, err := rack.Open(ctx, "openstack://"+cloud+"/"+ns+"?image=cirros&flavor=m1.tiny&network=none",
		rack.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		rack.WithPolling(10*time.Millisecond, 500*time.Millisecond),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	want := map[string]int{"ok": 0, "exit3": 3, "error": 1, "quiet": 0}
	started := time.Now()
	root, err := k.Start(ctx, rack.Spec{Name: "os-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		kids := map[string]*rack.Process{}
		for arg := range want {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{arg}, Stdout: w})
			if err != nil {
				return err
			}
			kids[arg] = c
		}
		w.Close()
		sc := bufio.NewScanner(r)
		lines := map[string]bool{}
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				return fmt.Errorf("bad line %q", sc.Text())
			}
			lines[f[0]] = true
		}
		if err := sc.Err(); err != nil {
			return err
		}
		for arg, code := range want {
			err := kids[arg].Wait(ctx)
			var ee *rack.ExitError
			if code == 0 && err != nil || code != 0 && (!errors.As(err, &ee) || ee.Code() != code) {
				return fmt.Errorf("%s: Wait = %v, want code %d", arg, err, code)
			}
			if arg != "quiet" && !lines[arg] {
				return fmt.Errorf("no line from %s (got %v)", arg, lines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		for _, s := range emu.Servers() {
			t.Logf("server %s %s exit %d: console:\n%s\nuser-data:\n%s", s.Name, s.Status, s.ExitCode, s.Console, s.UserData)
		}
		t.Fatal(err)
	}
	t.Logf("%d children on emulated servers, a quarter of boots failing: all ended in %v; Nova calls %v",
		len(want), time.Since(started).Round(time.Millisecond), emu.Calls())

	infos, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exited := 0
	for _, in := range infos {
		if in.State == rack.Exited && in.Name == "os-child" {
			exited++
		}
	}
	if exited != len(want) {
		t.Errorf("ps shows %d children exited, want %d: %+v", exited, len(want), infos)
	}

	// Boots that failed were retried under the same name: never two
	// servers of one name alive at once, and one success per child.
	byName := map[string]int{}
	for _, s := range emu.Servers() {
		if s.Status != "ERROR" && s.Status != "DELETED" {
			byName[s.Name]++
		}
	}
	for name, n := range byName {
		if n > 1 {
			t.Errorf("%d live servers named %s", n, name)
		}
	}

	// Nothing the user holds leaks to the servers, the store or the log.
	secret := keystonePassword(t)
	var where []string
	for _, s := range emu.Servers() {
		if bytes.Contains(s.UserData, []byte(secret)) {
			where = append(where, "user-data of "+s.Name)
		}
		for key, v := range s.Metadata {
			if strings.Contains(v, secret) || strings.Contains(key, secret) {
				where = append(where, "metadata of "+s.Name)
			}
		}
		if strings.Contains(s.Console, secret) {
			where = append(where, "console of "+s.Name)
		}
	}
	if strings.Contains(logs.String(), secret) {
		where = append(where, "the kernel's debug log")
	}
	if leak := scanNamespace(ctx, t, k, secret); leak != "" {
		where = append(where, leak)
	}
	if len(where) > 0 {
		t.Errorf("the user's password is in %v", where)
	}

	// Close deletes every server the kernel started.
	if err := k.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, s := range emu.Servers() {
		if s.Status != "DELETED" && s.TaskState != "deleting" {
			t.Errorf("after Close, server %s is %s, not being deleted", s.Name, s.Status)
		}
	}
}

// keystonePassword returns the test user's password (OS_PASSWORD of the
// file RACK_KEYSTONE_ENV names, written by scripts/keystone-dev.sh).
func keystonePassword(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(os.Getenv("RACK_KEYSTONE_ENV"))
	if err != nil {
		t.Fatalf("RACK_KEYSTONE_ENV: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "OS_PASSWORD="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	t.Fatal("no OS_PASSWORD in RACK_KEYSTONE_ENV")
	return ""
}

// scanNamespace reads every file of the namespace's container through the
// kernel's FS and says where secret appears, if anywhere.
func scanNamespace(ctx context.Context, t *testing.T, k *rack.Kernel, secret string) string {
	t.Helper()
	entries, err := k.DumpForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range entries {
		if bytes.Contains(data, []byte(secret)) {
			return "object " + name
		}
	}
	return ""
}

// syncLog is a log buffer safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// blockingParent is the parent that TestOpenStackKilledParent kills with
// SIGKILL: it forks two blocking children on servers, prints "ready" once
// both have joined, and waits for its end.
func blockingParent(url string) int {
	ctx := context.Background()
	k, err := rack.Open(ctx, url, rack.WithLease(2*time.Second), rack.WithConsole(strings.NewReader(""), io.Discard, os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := k.Start(ctx, rack.Spec{Name: "doomed"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			if _, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w}); err != nil {
				return err
			}
		}
		w.Close()
		sc := bufio.NewScanner(r)
		for i := 0; i < 2; i++ {
			if !sc.Scan() {
				return fmt.Errorf("pipe ended: %v", sc.Err())
			}
		}
		fmt.Println("ready")
		<-ctx.Done()
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := root.Wait(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestOpenStackKilledParent kills a parent OS process with SIGKILL while
// its two children run on servers: the children see its lease lapse, end
// and delete their own servers, and one gc pass from another namespace
// (GCOptions.Namespaces) deletes every object of the dead namespace.
func TestOpenStackKilledParent(t *testing.T) {
	cloud, addr := openstackEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 9,
		Faults: novaemu.Faults{BootDelay: 100 * time.Millisecond, DeleteDelay: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "rack-kill-" + hex.EncodeToString(b[:])
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RACK_TEST_PARENT_URL=openstack://"+cloud+"/"+ns+"?image=cirros&flavor=m1.tiny&network=none")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("parent said %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()

	// The children end by themselves once the parent's lease lapses, and
	// delete their own servers.
	for {
		left := 0
		for _, s := range emu.Servers() {
			if s.Status != "DELETED" && s.TaskState != "deleting" {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Since(killed) > time.Minute {
			for _, s := range emu.Servers() {
				t.Logf("server %s %s: console:\n%s", s.Name, s.Status, s.Console)
			}
			t.Fatalf("%d servers not deleted a minute after their parent was killed", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("children ended and deleted their servers %v after their parent's SIGKILL", time.Since(killed).Round(time.Millisecond))

	// One gc pass from elsewhere, once the namespace has been quiet.
	k, err := rack.Open(ctx, "openstack://"+cloud+"/"+ns+"-gc?image=cirros&flavor=m1.tiny&network=none",
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var rep *rack.GCReport
	for {
		if rep, err = k.GC(ctx, &rack.GCOptions{Namespaces: true, NamespaceQuiet: 15 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(rep.DeadNamespaces, ns) || time.Since(killed) > 2*time.Minute {
			break
		}
		time.Sleep(time.Second) // not quiet long enough yet
	}
	t.Logf("gc %v after the SIGKILL: %+v", time.Since(killed).Round(time.Millisecond), rep)
	if !slices.Contains(rep.DeadNamespaces, ns) {
		t.Fatalf("gc did not remove the dead namespace %s: %+v", ns, rep)
	}
	for _, s := range emu.Servers() {
		if s.Status != "DELETED" && s.TaskState != "deleting" {
			t.Errorf("after gc, server %s is %s, not being deleted", s.Name, s.Status)
		}
	}
	// Swift lists an object past its X-Delete-At until its expirer runs
	// (the killed kernel's lease, here), which keeps the container; but
	// nothing of the namespace can be read any more but its marker.
	left, err := k.ReadableForTest(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	// Its marker may be back: Swift lists an expired object until its
	// expirer runs, which keeps the container, and gc puts the marker
	// back so that a later pass deletes the container.
	left = slices.DeleteFunc(left, func(name string) bool { return name == record.NamespaceMarker })
	if len(left) > 0 {
		t.Errorf("after gc, the dead namespace still holds %v", left)
	}
}

// TestOpenStackBootFailure: a child whose server never boots (every boot
// ends in ERROR, NoValidHost) is reported lost with the cloud's reason
// after the bounded retries, not left hanging.
func TestOpenStackBootFailure(t *testing.T) {
	cloud, addr := openstackEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 3,
		Faults: novaemu.Faults{BootDelay: 50 * time.Millisecond, BootFailureRate: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	k, err := rack.Open(ctx, "openstack://"+cloud+"/rack-fail-"+hex.EncodeToString(b[:])+"?image=cirros&flavor=m1.tiny&network=none",
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	root, err := k.Start(ctx, rack.Spec{Name: "fail-root"}, func(ctx context.Context, self *rack.Self) error {
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"ok"}})
		if err != nil {
			return err
		}
		err = c.Wait(ctx)
		if !errors.Is(err, rack.ErrLost) || !strings.Contains(err.Error(), "No valid host") {
			return fmt.Errorf("Wait = %v, want ErrLost with the cloud's reason", err)
		}
		t.Logf("Wait: %v (%d creates)", err, emu.Calls()["POST /servers"])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}
