package rack_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/novaemu"
)

// The programs of TestOpenStackHostsForkTree: a process on a host forks 5
// children, each of which forks 2; the grandchildren hold until told to
// end (SIGUSR1), so that ps shows the whole tree running.
func init() {
	rack.Register("htree-top", htreeTop)
	rack.Register("htree-child", htreeChild)
	rack.Register("htree-grand", htreeGrand)
}

// htreeTop prints "top", forks htree-child 0..4 one after another (their
// output goes where its own does), checks their exit codes and exits 7.
func htreeTop(ctx context.Context, self *rack.Self) error {
	fmt.Fprintln(self.Stdout(), "top")
	var kids []*rack.Process
	for i := 0; i < 5; i++ {
		c, err := self.Fork(ctx, rack.Spec{Program: "htree-child", Args: []string{strconv.Itoa(i)}})
		if err != nil {
			return fmt.Errorf("top: fork %d: %w", i, err)
		}
		kids = append(kids, c)
	}
	for i, c := range kids {
		err := c.Wait(ctx)
		var ee *rack.ExitError
		if !errors.As(err, &ee) || ee.Code() != 10+i {
			return fmt.Errorf("top: child %d: Wait = %v, want code %d", i, err, 10+i)
		}
	}
	return rack.Exit(7)
}

// htreeChild is treeChild forking htree-grand.
func htreeChild(ctx context.Context, self *rack.Self) error {
	return forkGrandchildren(ctx, self, "htree-grand")
}

// htreeGrand i j prints "grand i j", waits for SIGUSR1 and exits 20+2i+j.
func htreeGrand(ctx context.Context, self *rack.Self) error {
	i, _ := strconv.Atoi(self.Args()[0])
	j, _ := strconv.Atoi(self.Args()[1])
	sig := make(chan rack.Signal, 1)
	if err := self.Notify(sig, rack.SIGUSR1); err != nil {
		return err
	}
	fmt.Fprintf(self.Stdout(), "grand %d %d\n", i, j)
	select {
	case <-sig:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return rack.Exit(20 + 2*i + j)
}

// buildShell builds cmd/rack into a temporary directory, in the
// background: it returns the binary's path and a function that waits for
// the build and returns its outcome.
func buildShell(t *testing.T) (string, func() error) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rack")
	done := make(chan struct{})
	var err error
	// With -race when this test binary has it: the packages it shares
	// with the shell are then built already.
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	go func() {
		defer close(done)
		out, berr := exec.Command("go", append(args, "./cmd/rack")...).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build ./cmd/rack: %v\n%s", berr, out)
		}
	}()
	t.Cleanup(func() { <-done })
	return bin, func() error { <-done; return err }
}

// TestOpenStackHostsForkTree: on the Nova emulator with real Swift and
// Keystone, a root forks one process onto a host (hosts of 4 slots); it
// forks 5 children, which fork 2 each. A host's compute cannot create
// servers: the children and grandchildren that do not fit in a free slot
// of the forker's own host go to hosts the root's kernel starts on their
// host's request (hostd/requests/). Every line of the shared pipe and
// every exit status is exact, and while the tree runs ps (Kernel.Processes,
// and the shell's ps -af) shows its 16 processes with their parents and
// hosts. Once the root's kernel closes, the hosts delete their servers,
// and gc -a leaves nothing of the namespace.
func TestOpenStackHostsForkTree(t *testing.T) {
	cloud, addr := openstackEnv(t)
	shellBin, built := buildShell(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 18,
		Faults: novaemu.Faults{BootDelay: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	defer func() {
		if t.Failed() { // what the hosts said
			for _, s := range emu.Servers() {
				c := s.Console
				if len(c) > 4000 {
					c = "..." + c[len(c)-4000:]
				}
				t.Logf("server %s (%s) console:\n%s", s.Name, s.Status, c)
			}
		}
	}()
	ns := novaHostsNS("rack-htree-")
	url := "openstack://" + cloud + "/" + ns + "?image=cirros&flavor=m1.medium&network=none"
	var logs syncLog // openstack_e2e_test.go
	k, err := rack.Open(ctx, url+"&hosts=1&slots=4&idle=1m&timeout=30s",
		rack.WithLease(5*time.Second), rack.WithPolling(10*time.Millisecond, 500*time.Millisecond),
		rack.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	want := []string{"top"}
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("child %d", i), fmt.Sprintf("grand %d 0", i), fmt.Sprintf("grand %d 1", i))
	}
	sort.Strings(want)
	var (
		lines    []string
		ps       map[string]rack.ProcessInfo
		shellPS  string
		allUp    time.Duration
		ended    time.Duration
		released time.Duration
		arrivals []string
	)
	start := time.Now()
	root, err := k.Start(ctx, rack.Spec{Name: "htree-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		top, err := self.Fork(ctx, rack.Spec{Program: "htree-top", Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		sc := bufio.NewScanner(r)
		for len(lines) < len(want) && sc.Scan() {
			lines = append(lines, sc.Text())
			arrivals = append(arrivals, fmt.Sprintf("%s@%.1fs", sc.Text(), time.Since(start).Seconds()))
		}
		if len(lines) < len(want) {
			return fmt.Errorf("the pipe ended after %q: %v (top: %v)", lines, sc.Err(), top.Wait(ctx))
		}
		allUp = time.Since(start)
		// Every process has written its line: all 16 run (the
		// grandchildren hold). ps reads listings: a host record may
		// come a moment after its process's first line.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if ps, err = psByName(ctx, k); err != nil {
				return err
			}
			if len(hostedRunning(ps)) == len(want) || time.Now().After(deadline) {
				break
			}
		}
		if err := built(); err != nil {
			return err
		}
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, shellBin, "--url", url, "ps", "-af")
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("rack ps -af: %v: %s", err, errb.String())
		}
		shellPS = out.String()
		// Release the grandchildren, all at once.
		released = time.Since(start)
		errs := make(chan error, 10)
		for i := 0; i < 5; i++ {
			for j := 0; j < 2; j++ {
				go func() {
					g, ok := ps[fmt.Sprintf("htree-grand %d %d", i, j)]
					if !ok {
						errs <- fmt.Errorf("ps shows no grandchild %d %d", i, j)
						return
					}
					p, err := k.Process(ctx, g.PID)
					if err == nil {
						err = p.Signal(ctx, rack.SIGUSR1)
					}
					if err != nil {
						err = fmt.Errorf("signalling grandchild %d %d: %w", i, j, err)
					}
					errs <- err
				}()
			}
		}
		for range 10 {
			if err := <-errs; err != nil {
				return err
			}
		}
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("pipe: %w", err)
		}
		err = top.Wait(ctx)
		ended = time.Since(start)
		var ee *rack.ExitError
		if !errors.As(err, &ee) || ee.Code() != 7 {
			return fmt.Errorf("top: Wait = %v, want code 7", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Logf("lines so far: %v", arrivals)
		if ps, perr := psByName(context.Background(), k); perr == nil {
			for name, p := range ps {
				why := ""
				if p.State == rack.Lost {
					if h, err := k.Process(context.Background(), p.PID); err == nil {
						wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						why = fmt.Sprint(h.Wait(wctx))
						cancel()
					}
				}
				t.Logf("ps: %s pid %d ppid %d %v host %s %s", name, p.PID, p.PPID, p.State, p.Host, why)
			}
		}
		t.Logf("warnings:\n%s", logs.String())
		t.Fatal(err)
	}
	// ps once the tree has ended: each process exited with its status.
	after, err := psByName(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	for name, code := range map[string]int{"htree-top": 7} {
		if in := after[name]; in.State != rack.Exited || in.ExitCode != code {
			t.Errorf("ps after the tree's end: %s: %+v, want exited %d", name, in, code)
		}
	}
	for i := 0; i < 5; i++ {
		if in := after[fmt.Sprintf("htree-child %d", i)]; in.State != rack.Exited || in.ExitCode != 10+i {
			t.Errorf("ps after the tree's end: child %d: %+v, want exited %d", i, in, 10+i)
		}
		for j := 0; j < 2; j++ {
			if in := after[fmt.Sprintf("htree-grand %d %d", i, j)]; in.State != rack.Exited || in.ExitCode != 20+2*i+j {
				t.Errorf("ps after the tree's end: grandchild %d %d: %+v, want exited %d", i, j, in, 20+2*i+j)
			}
		}
	}
	calls := emu.Calls()
	boots := calls["POST /servers"]
	sort.Strings(lines)
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("pipe:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// ps while the tree ran: every process running, under its parent,
	// on a host.
	rootInfo, ok := ps["htree-root"]
	if !ok {
		t.Fatalf("ps shows no root: %+v", ps)
	}
	topInfo, ok := ps["htree-top"]
	if !ok || topInfo.PPID != rootInfo.PID || topInfo.State != rack.Running || topInfo.Host == "" {
		t.Fatalf("ps: top: %+v (found %v), want PPID %d, running on a host", topInfo, ok, rootInfo.PID)
	}
	hosts := map[string]bool{topInfo.Host: true}
	ownHost, otherHost, ownGrand := 0, 0, 0
	for i := 0; i < 5; i++ {
		c, ok := ps[fmt.Sprintf("htree-child %d", i)]
		if !ok || c.PPID != topInfo.PID || c.State != rack.Running || c.Host == "" {
			t.Errorf("ps: child %d: %+v (found %v), want PPID %d, running on a host", i, c, ok, topInfo.PID)
			continue
		}
		hosts[c.Host] = true
		if c.Host == topInfo.Host {
			ownHost++
		} else {
			otherHost++
		}
		for j := 0; j < 2; j++ {
			g, ok := ps[fmt.Sprintf("htree-grand %d %d", i, j)]
			if !ok || g.PPID != c.PID || g.State != rack.Running || g.Host == "" {
				t.Errorf("ps: grandchild %d %d: %+v (found %v), want PPID %d, running on a host", i, j, g, ok, c.PID)
				continue
			}
			hosts[g.Host] = true
			if g.Host == c.Host {
				ownGrand++
			}
		}
	}
	// Hosts of 4 slots: top and 3 children fill the first host; the
	// other 2 children, and grandchildren, go to hosts started on
	// request. 16 processes need at least 4 hosts.
	// (How many of them depends on how soon the first children fork
	// theirs into top's host.)
	if ownHost < 1 || ownHost > 3 || otherHost < 2 {
		t.Errorf("%d children on top's host, %d on others; want 1 to 3 (its free slots) and the rest", ownHost, otherHost)
	}
	if len(hosts) < 4 || boots != len(hosts) {
		t.Errorf("the tree ran on %d hosts, %d servers created; want at least 4 (16 processes, 4 slots each), one server each", len(hosts), boots)
	}
	served := k.HostRequestsServedForTest()
	if served != int64(len(hosts)-1) {
		t.Errorf("the root's kernel served %d host requests, want %d (every host but top's)", served, len(hosts)-1)
	}

	// The shell's ps -af: a row for each process, with its parent and
	// host.
	for name, in := range hostedRunning(ps) {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%d\s+running\s+%s\s+[ \\_]*%s$`,
			in.PID, in.PPID, regexp.QuoteMeta(in.Host), regexp.QuoteMeta(name)))
		if !re.MatchString(shellPS) {
			t.Errorf("rack ps -af has no row for %s (pid %d, ppid %d, host %s)", name, in.PID, in.PPID, in.Host)
		}
	}
	t.Logf("rack ps -af while the tree ran:\n%s", shellPS)
	t.Logf("16 processes on %d hosts (%d servers created, %d host requests served); %d children on top's host, %d of 10 grandchildren on their parent's",
		len(hosts), boots, served, ownHost, ownGrand)
	t.Logf("lines read (since the root's fork): %s", strings.Join(arrivals, " "))
	t.Logf("all 16 running (their lines read) %v after the root's fork; grandchildren released at %v; top's exit read at %v (%v after the release)",
		allUp.Round(time.Millisecond), released.Round(time.Millisecond), ended.Round(time.Millisecond), (ended - released).Round(time.Millisecond))
	t.Logf("Nova calls: %s", formatCalls(calls))
	var created []string
	for _, s := range emu.Servers() {
		created = append(created, fmt.Sprintf("%.1fs", s.Created.Sub(start).Seconds()))
	}
	sort.Strings(created)
	t.Logf("servers created at (since the root's fork): %s", strings.Join(created, " "))

	// What went wrong on the way, if anything: the root's warnings and
	// the hosts' (their consoles).
	if w := logs.String(); w != "" {
		t.Logf("the root's kernel warned:\n%s", w)
	}
	for _, s := range emu.Servers() {
		for _, l := range strings.Split(s.Console, "\n") {
			if strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") {
				t.Logf("host server %s: %s", s.Name, l)
			}
		}
	}

	closing := time.Now()
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("hosts deleted their servers %v after the root's kernel closed (lease 5 s)", awaitNoServers(t, emu, time.Minute).Round(100*time.Millisecond))
	// No server left: nothing writes the namespace any more.
	swept := time.Now()
	gcDeadNamespaceQuiet(t, ctx, cloud, ns, 5*time.Second)
	t.Logf("gc -a removed the namespace in %v (quiet 5 s); whole test %v, %v of it after the tree's exit",
		time.Since(swept).Round(100*time.Millisecond), time.Since(start).Round(time.Millisecond), time.Since(closing).Round(time.Millisecond))
}

// psByName returns ps's rows of the namespace by "name args".
func psByName(ctx context.Context, k *rack.Kernel) (map[string]rack.ProcessInfo, error) {
	infos, err := k.Processes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]rack.ProcessInfo{}
	for _, in := range infos {
		out[strings.Join(append([]string{in.Name}, in.Args...), " ")] = in
	}
	return out, nil
}

// hostedRunning returns the rows of ps that run on a host.
func hostedRunning(ps map[string]rack.ProcessInfo) map[string]rack.ProcessInfo {
	out := map[string]rack.ProcessInfo{}
	for name, in := range ps {
		if in.State == rack.Running && in.Host != "" {
			out[name] = in
		}
	}
	return out
}

// formatCalls formats an emulator's call counts, sorted.
func formatCalls(calls map[string]int) string {
	var parts []string
	for c, n := range calls {
		parts = append(parts, fmt.Sprintf("%s=%d", c, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
