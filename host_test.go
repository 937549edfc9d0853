package rack_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// hostPIDs returns the OS pids of the live host processes of the local
// namespace in dir: the processes whose environment names dir and a host
// (any host, with dir "").
func hostPIDs(t testing.TB, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		s := "\x00" + string(env)
		if !strings.Contains(s, "\x00"+rack.HostEnv+"=") || dir != "" && !strings.Contains(s, "\x00"+rack.URLEnv+"=file://"+dir+"?") {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
				continue // a zombie: ended, not yet reaped
			}
		}
		out = append(out, pid)
	}
	return out
}

// TestHosts runs OS-process children on warm hosts (file://?hosts=1): exit
// statuses, a pipe across hosts, a kill, ps's host column and the hosts
// listing; a second batch reuses the warm hosts; idle hosts end.
func TestHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	awaitHostsGone(t, dir)
	defer dumpLogs(t, dir)
	// Idle 5 s: the hosts of the first batch are still warm for the
	// second on a loaded machine.
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=3&idle=5s", rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	want := map[string]int{"ok": 0, "error": 1, "exit3": 3, "panic": 2, "block": 128 + 9}
	var hostsSeen []rack.HostInfo
	var psHosts map[rack.PID]string
	batch := func(ctx context.Context, self *rack.Self) (map[int]bool, error) {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return nil, err
		}
		// One ForkAll: the five are placed at once, before any ends (forked
		// one by one on a loaded machine, the first ones ended before the
		// last were placed, and their slots served the rest).
		var args []string
		var specs []rack.Spec
		for arg := range want {
			args = append(args, arg)
			specs = append(specs, rack.Spec{Program: "os-child", Args: []string{arg}, Stdout: w})
		}
		forked, err := self.ForkAll(ctx, specs)
		if err != nil {
			return nil, err
		}
		kids := map[string]*rack.Process{}
		for i, c := range forked {
			kids[args[i]] = c
		}
		w.Close()
		sc := bufio.NewScanner(r)
		ospids := map[int]bool{}
		// Every child prints a line as it starts: then all run, or have run.
		for lines := 0; lines < len(want) && sc.Scan(); lines++ {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				return nil, fmt.Errorf("bad line %q", sc.Text())
			}
			ospid, _ := strconv.Atoi(f[1])
			if ospid == os.Getpid() {
				return nil, fmt.Errorf("child %s ran in the forker's OS process", f[0])
			}
			ospids[ospid] = true
		}
		infos, err := k.Processes(ctx)
		if err != nil {
			return nil, err
		}
		psHosts = map[rack.PID]string{}
		for _, in := range infos {
			psHosts[in.PID] = in.Host
		}
		if hostsSeen, err = k.Hosts(ctx); err != nil {
			return nil, err
		}
		if err := kids["block"].Kill(ctx); err != nil {
			return nil, err
		}
		for sc.Scan() {
			return nil, fmt.Errorf("unexpected line %q", sc.Text())
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("pipe: %w", err)
		}
		for arg, code := range want {
			err := kids[arg].Wait(ctx)
			var ee *rack.ExitError
			if code == 0 && err != nil || code != 0 && (!errors.As(err, &ee) || ee.Code() != code) {
				return nil, fmt.Errorf("%s: Wait = %v, want code %d", arg, err, code)
			}
			if psHosts[kids[arg].PID()] == "" {
				return nil, fmt.Errorf("ps shows no host for %s (pid %d)", arg, kids[arg].PID())
			}
		}
		return ospids, nil
	}
	var first, second map[int]bool
	var firstHosts []rack.HostInfo
	root, err := k.Start(ctx, rack.Spec{Name: "hosts-root"}, func(ctx context.Context, self *rack.Self) error {
		var err error
		if first, err = batch(ctx, self); err != nil {
			return fmt.Errorf("first batch: %w", err)
		}
		firstHosts = hostsSeen
		if second, err = batch(ctx, self); err != nil {
			return fmt.Errorf("second batch: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// 5 children on hosts of 3 slots: 2 hosts, each an OS process.
	if len(first) != 2 {
		t.Errorf("first batch ran in %d OS processes, want 2 (hosts of 3 slots)", len(first))
	}
	if len(firstHosts) != 2 {
		t.Errorf("Hosts listed %d hosts, want 2: %+v", len(firstHosts), firstHosts)
	}
	busy := 0
	for _, h := range firstHosts {
		if h.Slots != 3 || h.IdleLimit != 5*time.Second || h.Used > 3 || h.Age <= 0 {
			t.Errorf("host %+v: want 3 slots, idle limit 5s", h)
		}
		if h.State == "busy" {
			busy++
		}
	}
	if busy == 0 {
		t.Errorf("no host busy while the blocking child ran: %+v", firstHosts)
	}
	for ospid := range second {
		if !first[ospid] {
			t.Errorf("second batch ran in OS process %d, not one of the first batch's warm hosts %v", ospid, first)
		}
	}
	// Idle for 5 s, the hosts end: no record, no OS process.
	deadline := time.Now().Add(30 * time.Second)
	for {
		hs, err := k.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pids := hostPIDs(t, dir)
		if len(hs) == 0 && len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle hosts still there after 30 s: %+v, OS pids %v", hs, pids)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A fork after they ended starts a new host.
	root, err = k.Start(ctx, rack.Spec{Name: "again"}, func(ctx context.Context, self *rack.Self) error {
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHostsKilledRoot: kill -9 of the root leaves no host running once its
// lease has lapsed (the hosts' idle time is 10 minutes: the namespace's
// end ends them), and gc -a then removes the namespace, hosts' records
// and all.
func TestHostsKilledRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes and waits for a lease")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	awaitHostsGone(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RACK_TEST_PARENT_URL=file://"+dir+"?hosts=1&slots=2&idle=10m")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("parent did not get ready: %q %v", sc.Text(), sc.Err())
	}
	hosts := hostPIDs(t, dir)
	if len(hosts) != 1 {
		t.Errorf("2 children on hosts of 2 slots run on %d hosts, want 1", len(hosts))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	for len(hostPIDs(t, dir)) > 0 {
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("hosts %v still running 30 s after the root's kill (lease 2 s)", hostPIDs(t, dir))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("hosts gone %v after the kill (lease 2 s)", time.Since(killed).Round(100*time.Millisecond))
	// gc -a from another namespace of the same store sweeps the dead one.
	k, err := rack.Open(ctx, "file://"+dir, rack.WithNamespace("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	rep, err := k.GC(ctx, &rack.GCOptions{Namespaces: true, NamespaceQuiet: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ns := range rep.DeadNamespaces {
		found = found || ns == "rack"
	}
	if !found || rep.Objects == 0 {
		t.Fatalf("gc -a: %+v, want the dead namespace rack swept", rep)
	}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(path, "hostd") {
			t.Errorf("a host's record left after gc -a: %s", path)
		}
		return nil
	})
}

// openHostsDir opens a file:// namespace in a fresh directory with query
// (its hosts' URL options) and opts, and a silent console; once no host
// of an earlier test runs on, as awaitHostsGone. When t ends the kernel
// is closed and, if t failed, the processes' logs are shown (dumpLogs).
func openHostsDir(t *testing.T, ctx context.Context, query string, opts ...rack.Option) (*rack.Kernel, string) {
	t.Helper()
	dir := t.TempDir()
	awaitHostsGone(t, dir)
	t.Cleanup(func() { dumpLogs(t, dir) })
	opts = append(opts, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	k, err := rack.Open(ctx, "file://"+dir+query, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k, dir
}

// dumpLogs shows, when t failed, the OS output of the namespace's
// processes in dir (hosts included).
func dumpLogs(t *testing.T, dir string) {
	if !t.Failed() {
		return
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "logs"))
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(dir, "logs", e.Name()))
		t.Logf("log %s:\n%s", e.Name(), data)
	}
}

// TestHostsManyWorkers: 100 workers forked at once (ForkAll) on hosts of
// 10 slots run in 10 host processes, not 100; a second run while the
// hosts are warm starts no new host. It logs when the workers began (the
// figures TestOpenStackHostsManyWorkers logs on Swift, here on a local
// store).
func TestHostsManyWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 10 OS processes running 100 rack processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	awaitHostsGone(t, dir)
	defer dumpLogs(t, dir)
	// A short lease: the hosts end soon after this kernel closes.
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=10&idle=1m", rack.WithLease(3*time.Second),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const workers = 100
	run := func(arg string) (ospids map[int]bool, hosts []rack.HostInfo) {
		root, err := k.Start(ctx, rack.Spec{Name: "many"}, func(ctx context.Context, self *rack.Self) error {
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			specs := make([]rack.Spec, workers)
			for i := range specs {
				specs[i] = rack.Spec{Program: "clock-child", Args: []string{arg}, Stdout: w}
			}
			forked := time.Now()
			kids, err := self.ForkAll(ctx, specs)
			if err != nil {
				return err
			}
			w.Close()
			sc := bufio.NewScanner(r)
			ospids = map[int]bool{}
			var began []time.Duration
			for len(began) < workers && sc.Scan() {
				after, ospid, err := parseClockLine(sc.Text(), forked) // openstack_hosts_e2e_test.go
				if err != nil {
					return err
				}
				ospids[ospid] = true
				began = append(began, after)
			}
			if len(began) != workers {
				return fmt.Errorf("%d lines of %d workers: %v", len(began), workers, sc.Err())
			}
			slices.Sort(began)
			t.Logf("%s: the workers began %v (first), %v (median), %v (last) after the ForkAll",
				arg, began[0].Round(time.Millisecond), began[len(began)/2].Round(time.Millisecond), began[len(began)-1].Round(time.Millisecond))
			if hosts, err = k.Hosts(ctx); err != nil {
				return err
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
		return ospids, hosts
	}
	// All 100 running at once.
	first, hosts1 := run("block")
	if len(first) != 10 || len(hosts1) != 10 {
		t.Errorf("100 workers ran in %d OS processes on %d hosts, want 10 and 10", len(first), len(hosts1))
	}
	for _, h := range hosts1 {
		if h.Used != 10 {
			t.Errorf("host %s: %d of %d slots used, want all", h.Kernel, h.Used, h.Slots)
		}
	}
	second, hosts2 := run("ok")
	for ospid := range second {
		if !first[ospid] {
			t.Errorf("the second run used OS process %d, not one of the warm hosts", ospid)
		}
	}
	if len(hosts2) != 10 {
		t.Errorf("the second run saw %d hosts, want the 10 warm ones", len(hosts2))
	}
}

// awaitHostsGone makes t, at its end (after its deferred Closes), wait for
// the hosts of the namespace in dir to end, before its TempDir goes (call
// it after t.TempDir: cleanups run last first). A host left after a
// minute is an error, and is killed: a test leaves no host behind.
func awaitHostsGone(t testing.TB, dir string) {
	t.Cleanup(func() {
		deadline := time.Now().Add(time.Minute)
		for len(hostPIDs(t, dir)) > 0 {
			if time.Now().After(deadline) || t.Failed() {
				left := hostPIDs(t, dir)
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				if !t.Failed() {
					t.Errorf("hosts %v still ran a minute after the test: killed", left)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// startBlockedHost opens a kernel on a fresh store (hosts of a 2 s lease
// and a 10 minute idle time) whose root forks one child that blocks on a
// host; it returns the store's directory, the kernel and the host's OS pid.
func startBlockedHost(t *testing.T, ctx context.Context) (string, *rack.Kernel, *rack.Process, int) {
	t.Helper()
	dir := t.TempDir()
	awaitHostsGone(t, dir)
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=2&idle=10m", rack.WithLease(2*time.Second),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	started := make(chan *rack.Process, 1)
	_, err = k.Start(ctx, rack.Spec{Name: "forker"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		bufio.NewScanner(r).Scan() // it runs
		started <- c
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var child *rack.Process
	select {
	case child = <-started:
	case <-ctx.Done():
		t.Fatal("the child did not start on a host")
	}
	pids := hostPIDs(t, dir)
	if len(pids) != 1 {
		t.Fatalf("hosts %v, want 1", pids)
	}
	return dir, k, child, pids[0]
}

// awaitExit waits for OS process pid to end (it is a child of this test's
// osproc compute, which reaps it, or an orphan) and returns how long it took.
func awaitExit(t *testing.T, pid int, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		alive := false
		for _, p := range hostPIDs(t, "") {
			alive = alive || p == pid
		}
		if !alive {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: host %d still runs %v later (lease 2 s)", what, pid, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostStoreGone: a busy host (its idle time 10 minutes) ends soon
// after its store goes, whether the store's directory is removed (the
// namespace's container is gone) or every call fails (the container is a
// file: its lease cannot be renewed and lapses); and a host ends on SIGTERM.
func TestHostStoreGone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes and waits for a lease")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Run("removed", func(t *testing.T) {
		dir, _, _, pid := startBlockedHost(t, ctx)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		t.Logf("host gone %v after its store's removal", awaitExit(t, pid, 10*time.Second, "store removed").Round(10*time.Millisecond))
	})
	t.Run("failing", func(t *testing.T) {
		dir, _, _, pid := startBlockedHost(t, ctx)
		conts, _ := filepath.Glob(filepath.Join(dir, "c", "*"))
		if len(conts) != 1 {
			t.Fatalf("containers %v, want the namespace's alone", conts)
		}
		if err := os.RemoveAll(conts[0]); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conts[0], nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("host gone %v after its store failed", awaitExit(t, pid, 10*time.Second, "store failing").Round(10*time.Millisecond))
	})
	t.Run("SIGTERM", func(t *testing.T) {
		_, _, child, pid := startBlockedHost(t, ctx)
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		t.Logf("host gone %v after SIGTERM", awaitExit(t, pid, 10*time.Second, "SIGTERM").Round(10*time.Millisecond))
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		err := child.Wait(wctx)
		var ee *rack.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("the child of the host ended by SIGTERM: %v, want an exit error", err)
		}
	})
}

// TestHostsURL: the file:// URL's hosts options, and the ones refused.
func TestHostsURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, q := range []string{"hosts=1", "hosts=1&slots=4&idle=30s", "hosts=0", "mode=group&hosts=1"} {
		k, err := rack.Open(ctx, "file://"+dir+"?"+q)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		k.Close()
	}
	for _, q := range []string{"hosts=2", "slots=4", "hosts=1&slots=0", "hosts=1&slots=x", "hosts=1&idle=-1s",
		"hosts=1&idle=soon", "hosts=1&hosts=1", "hosts=1&mode=other", "hosts=1&bogus=1"} {
		k, err := rack.Open(ctx, "file://"+dir+"?"+q)
		if err == nil {
			k.Close()
			t.Errorf("%s: opened, want an error", q)
		} else if !errors.Is(err, rack.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", q, err)
		}
	}
}

// TestHostsIdleRace forks, one at a time, at about the moments a host of
// a 30 ms idle time decides to end: every fork must run (the host serves
// a claim it finds as it closes; a forker whose claim meets a closed slot
// picks another host or starts one), none be lost.
func TestHostsIdleRace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, _ := openHostsDir(t, ctx, "?hosts=1&slots=2&idle=30ms", rack.WithLease(3*time.Second))
	root, err := k.Start(ctx, rack.Spec{Name: "racer"}, func(ctx context.Context, self *rack.Self) error {
		for i := 0; i < 40; i++ {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
			if err != nil {
				return err
			}
			if err := c.Wait(ctx); err != nil {
				return fmt.Errorf("fork %d: %w", i, err)
			}
			time.Sleep(time.Duration(20+i%4*5) * time.Millisecond) // around the idle time
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHostSlowStart: a host that takes longer than a lease to start (a
// loaded machine; on a cloud, every boot) still finds its record and
// serves the children placed on it, which run exactly once. Its forker
// keeps the host alive in the store while it starts. Before, the host's
// record and lease, written for one lease, expired first: the host exited
// at once, and the children placed on it were lost (or, in CI, a pipe they
// held never reached EOF).
func TestHostSlowStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("RACK_TEST_SLOW_HOST", "2500ms")
	k, _ := openHostsDir(t, ctx, "?hosts=1&slots=2&idle=1s", rack.WithLease(time.Second))
	var lines []string
	root, err := k.Start(ctx, rack.Spec{Name: "slow"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		kids, err := self.ForkAll(ctx, []rack.Spec{
			{Program: "os-child", Args: []string{"ok"}, Stdout: w},
			{Program: "os-child", Args: []string{"exit3"}, Stdout: w},
		})
		if err != nil {
			return err
		}
		w.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines = append(lines, strings.Fields(sc.Text())[0])
		}
		if err := sc.Err(); err != nil {
			return err
		}
		if err := kids[0].Wait(ctx); err != nil {
			return fmt.Errorf("ok: %w", err)
		}
		var ee *rack.ExitError
		if err := kids[1].Wait(ctx); !errors.As(err, &ee) || ee.Code() != 3 {
			return fmt.Errorf("exit3: Wait = %v, want code 3", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	if strings.Join(lines, " ") != "exit3 ok" {
		t.Fatalf("the children printed %q, want each once", lines)
	}
}
