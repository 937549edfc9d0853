package rack_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// The programs of the forks-from-hosts tests: they run on hosts and fork
// in turn.
func init() {
	rack.Register("tree-child", treeChild)
	rack.Register("tree-grand", treeGrand)
	rack.Register("nest", nest)
	rack.Register("fan", fan)
	rack.Register("fan-leaf", fanLeaf)
	rack.Register("fork-loop", forkLoop)
	rack.Register("fork-vs-exec", forkVsExec)
}

// forkVsExec n forks and waits for an empty child (os-child quiet) and
// runs a bare re-exec of its own binary (what BenchmarkBareReexec runs),
// in turn, n times after one of each, and prints the time each took in
// all: "forkns execns". Side by side in one OS process, the two see the
// same load.
func forkVsExec(ctx context.Context, self *rack.Self) error {
	n, err := strconv.Atoi(self.Args()[0])
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	reexec := func() error {
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), "RACK_TEST_BARE_CHILD=1")
		return cmd.Run()
	}
	if err := forkWaitQuiet(ctx, self); err != nil {
		return err
	}
	if err := reexec(); err != nil {
		return err
	}
	var forks, execs time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := forkWaitQuiet(ctx, self); err != nil {
			return err
		}
		mid := time.Now()
		if err := reexec(); err != nil {
			return err
		}
		forks += mid.Sub(start)
		execs += time.Since(mid)
	}
	fmt.Fprintf(self.Stdout(), "%d %d\n", forks.Nanoseconds(), execs.Nanoseconds())
	return nil
}

// forkWaitQuiet forks an empty child (os-child quiet) and waits for it.
func forkWaitQuiet(ctx context.Context, self *rack.Self) error {
	c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// forkLoop n forks and waits for an empty child (os-child quiet) once, then
// n times, and prints the time and the store requests of its kernel the n
// took: "ns requests".
func forkLoop(ctx context.Context, self *rack.Self) error {
	n, err := strconv.Atoi(self.Args()[0])
	if err != nil {
		return err
	}
	if err := forkWaitQuiet(ctx, self); err != nil { // warm: the other host is started
		return err
	}
	k := self.KernelForTest()
	stats := k.Stats()
	before := stats["total"]
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := forkWaitQuiet(ctx, self); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	after := k.Stats()
	fmt.Fprintf(self.Stdout(), "%d %d", elapsed.Nanoseconds(), after["total"]-before)
	for kind, v := range after {
		if kind != "total" && v > stats[kind] {
			fmt.Fprintf(self.Stdout(), " %s=%.2f", strings.ReplaceAll(kind, " ", "-"), float64(v-stats[kind])/float64(n))
		}
	}
	fmt.Fprintln(self.Stdout())
	return nil
}

// treeChild i prints "child i", forks tree-grand i 0 and tree-grand i 1
// (their output goes where its own does), checks their exit codes and
// exits 10+i.
func treeChild(ctx context.Context, self *rack.Self) error {
	return forkGrandchildren(ctx, self, "tree-grand")
}

// forkGrandchildren is a tree's child i: it prints "child i", forks
// program grand with arguments i 0 and i 1, checks that they exit 20+2i+j
// and exits 10+i.
func forkGrandchildren(ctx context.Context, self *rack.Self, grand string) error {
	i, err := strconv.Atoi(self.Args()[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(self.Stdout(), "child %d\n", i)
	var kids []*rack.Process
	for j := 0; j < 2; j++ {
		c, err := self.Fork(ctx, rack.Spec{Program: grand, Args: []string{strconv.Itoa(i), strconv.Itoa(j)}})
		if err != nil {
			return fmt.Errorf("child %d: fork %d: %w", i, j, err)
		}
		kids = append(kids, c)
	}
	for j, c := range kids {
		err := c.Wait(ctx)
		if want := 20 + 2*i + j; !exitedWith(err, want) {
			return fmt.Errorf("child %d: grandchild %d: Wait = %v, want code %d", i, j, err, want)
		}
	}
	return rack.Exit(10 + i)
}

// treeGrand i j prints "grand i j" and exits 20+2i+j.
func treeGrand(ctx context.Context, self *rack.Self) error {
	i, _ := strconv.Atoi(self.Args()[0])
	j, _ := strconv.Atoi(self.Args()[1])
	fmt.Fprintf(self.Stdout(), "grand %d %d\n", i, j)
	return rack.Exit(20 + 2*i + j)
}

// nest d prints "nest d", forks nest d-1 while d > 0, checks its exit
// code and exits 30+d.
func nest(ctx context.Context, self *rack.Self) error {
	d, err := strconv.Atoi(self.Args()[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(self.Stdout(), "nest %d\n", d)
	if d > 0 {
		c, err := self.Fork(ctx, rack.Spec{Program: "nest", Args: []string{strconv.Itoa(d - 1)}})
		if err != nil {
			return fmt.Errorf("nest %d: fork: %w", d, err)
		}
		err = c.Wait(ctx)
		if want := 30 + d - 1; !exitedWith(err, want) {
			return fmt.Errorf("nest %d: Wait = %v, want code %d", d, err, want)
		}
	}
	return rack.Exit(30 + d)
}

// fan n forks n fan-leaf children with one ForkAll, passing its stdout
// on (they inherit it), and checks their exit codes.
func fan(ctx context.Context, self *rack.Self) error {
	n, err := strconv.Atoi(self.Args()[0])
	if err != nil {
		return err
	}
	specs := make([]rack.Spec, n)
	for i := range specs {
		specs[i] = rack.Spec{Program: "fan-leaf", Args: []string{strconv.Itoa(i)}} // stdout: fan's
	}
	kids, err := self.ForkAll(ctx, specs)
	if err != nil {
		return fmt.Errorf("fan: fork all: %w", err)
	}
	for i, c := range kids {
		err := c.Wait(ctx)
		if !exitedWith(err, 40+i) {
			return fmt.Errorf("fan: leaf %d: Wait = %v, want code %d", i, err, 40+i)
		}
	}
	return nil
}

// fanLeaf i prints "leaf i", stays a second (so that its siblings run
// at the same time) and exits 40+i.
func fanLeaf(ctx context.Context, self *rack.Self) error {
	i, _ := strconv.Atoi(self.Args()[0])
	fmt.Fprintf(self.Stdout(), "leaf %d\n", i)
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	return rack.Exit(40 + i)
}

// readLines reads r to its end and returns its lines, sorted.
func readLines(r io.Reader) ([]string, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	sort.Strings(lines)
	return lines, sc.Err()
}

// psTree returns ps's rows of the namespace by "name args".
func psTree(t *testing.T, ctx context.Context, k *rack.Kernel) map[string]rack.ProcessInfo {
	t.Helper()
	infos, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]rack.ProcessInfo{}
	for _, in := range infos {
		out[strings.Join(append([]string{in.Name}, in.Args...), " ")] = in
	}
	return out
}

// TestHostForkTree: a root forks 5 children on hosts, each of which forks
// 2 grandchildren from its host; all write into one pipe the root reads.
// Exit statuses and the pipe's lines are exact, and ps shows the whole
// tree, each process's parent and host.
func TestHostForkTree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	k, _ := openHostsDir(t, ctx, "?hosts=1&slots=4&idle=2s", rack.WithLease(3*time.Second))
	var lines []string
	root, err := k.Start(ctx, rack.Spec{Name: "tree-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		var kids []*rack.Process
		for i := 0; i < 5; i++ {
			c, err := self.Fork(ctx, rack.Spec{Program: "tree-child", Args: []string{strconv.Itoa(i)}, Stdout: w})
			if err != nil {
				return err
			}
			kids = append(kids, c)
		}
		w.Close()
		if lines, err = readLines(r); err != nil {
			return fmt.Errorf("pipe: %w", err)
		}
		for i, c := range kids {
			err := c.Wait(ctx)
			if !exitedWith(err, 10+i) {
				return fmt.Errorf("child %d: Wait = %v, want code %d", i, err, 10+i)
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
	var want []string
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("child %d", i), fmt.Sprintf("grand %d 0", i), fmt.Sprintf("grand %d 1", i))
	}
	sort.Strings(want)
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("pipe:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	ps := psTree(t, ctx, k)
	rootInfo, ok := ps["tree-root"]
	if !ok {
		t.Fatalf("ps shows no root: %+v", ps)
	}
	hosts := map[string]bool{}
	local := 0 // grandchildren on their parent's host
	for i := 0; i < 5; i++ {
		c, ok := ps[fmt.Sprintf("tree-child %d", i)]
		if !ok {
			t.Errorf("ps shows no child %d", i)
			continue
		}
		if c.PPID != rootInfo.PID || c.State != rack.Exited || c.ExitCode != 10+i || c.Host == "" {
			t.Errorf("ps: child %d: %+v, want PPID %d, exited %d, on a host", i, c, rootInfo.PID, 10+i)
		}
		hosts[c.Host] = true
		for j := 0; j < 2; j++ {
			g, ok := ps[fmt.Sprintf("tree-grand %d %d", i, j)]
			if !ok {
				t.Errorf("ps shows no grandchild %d %d", i, j)
				continue
			}
			if g.PPID != c.PID || g.State != rack.Exited || g.ExitCode != 20+2*i+j || g.Host == "" {
				t.Errorf("ps: grandchild %d %d: %+v, want PPID %d, exited %d, on a host", i, j, g, c.PID, 20+2*i+j)
			}
			hosts[g.Host] = true
			if g.Host == c.Host {
				local++
			}
		}
	}
	// 15 processes on hosts of 4 slots, 5 forked at once: at least 2
	// hosts, never one per process (a child waits for its 2, the most at
	// once is 15; placement fills hosts first).
	if len(hosts) < 2 || len(hosts) > 8 {
		t.Errorf("the tree ran on %d hosts, want 2 to 8 (hosts of 4 slots)", len(hosts))
	}
	t.Logf("15 processes on %d hosts; %d of 10 grandchildren on their parent's host", len(hosts), local)
}

// TestHostForkDepth: nesting is not limited by design: root → child →
// grandchild → great-grandchild, each forked from a host. Hosts are turned
// on by an option, not the URL: the hosts started from a host have the
// slots and idle time of the first.
func TestHostForkDepth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	awaitHostsGone(t, dir)
	defer dumpLogs(t, dir)
	// (hosts=0: what the URL says, which the hosts get; and a query,
	// which awaitHostsGone looks for.)
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=0", rack.WithHosts(2, 5*time.Second), rack.WithLease(3*time.Second),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	lines, err := runNest(t, ctx, k)
	if !exitedWith(err, 32) {
		t.Fatalf("Wait = %v, want code 32", err)
	}
	hosts, err := k.Hosts(ctx) // within their idle time
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, ","); got != "nest 0,nest 1,nest 2" {
		t.Errorf("pipe: %q, want nest 0..2", got)
	}
	ps := psTree(t, ctx, k)
	// Hosts of 2 slots: nest 1 goes to the free slot of nest 2's own
	// host, nest 0 to a new host (the first is full, and no other is warm).
	if h2, h1, h0 := ps["nest 2"].Host, ps["nest 1"].Host, ps["nest 0"].Host; h2 != h1 || h1 == h0 {
		t.Errorf("hosts of nest 2, 1, 0: %s %s %s, want the first two the same, the third another", h2, h1, h0)
	}
	if len(hosts) != 2 {
		t.Errorf("Hosts: %+v, want 2", hosts)
	}
	for _, h := range hosts {
		if h.Slots != 2 || h.IdleLimit != 5*time.Second {
			t.Errorf("host %+v: want 2 slots and an idle time of 5 s, as the root's option says", h)
		}
	}
	parent := ps["nest-root"].PID
	for d := 2; d >= 0; d-- {
		in, ok := ps["nest "+strconv.Itoa(d)]
		if !ok || in.PPID != parent || in.ExitCode != 30+d || in.Host == "" {
			t.Errorf("ps: nest %d: %+v (found %v), want PPID %d, code %d, on a host", d, in, ok, parent, 30+d)
		}
		parent = in.PID
	}
}

// runNest runs nest 2 from a root of k and returns the pipe's lines and
// the child's Wait error.
func runNest(t *testing.T, ctx context.Context, k *rack.Kernel) ([]string, error) {
	t.Helper()
	return runPiped(t, ctx, k, "nest-root", rack.Spec{Program: "nest", Args: []string{"2"}})
}

// runPiped forks spec, its stdout a pipe, from a root of k named root, and
// returns the pipe's lines (sorted) and the child's Wait error.
func runPiped(t *testing.T, ctx context.Context, k *rack.Kernel, root string, spec rack.Spec) ([]string, error) {
	t.Helper()
	var lines []string
	var waitErr error
	p, err := k.Start(ctx, rack.Spec{Name: root}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		spec.Stdout = w
		c, err := self.Fork(ctx, spec)
		if err != nil {
			return err
		}
		w.Close()
		if lines, err = readLines(r); err != nil {
			return err
		}
		waitErr = c.Wait(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return lines, waitErr
}

// TestHostRequests: hosts that cannot start hosts (a test hook makes them
// behave as a server's narrow credential makes them) ask for one with a
// host request, which the root's kernel serves; with no kernel to serve
// it, the fork's child is lost with a reason that says so.
func TestHostRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	t.Setenv(rack.PowerlessHostsEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	open := func(t *testing.T) *rack.Kernel {
		dir := t.TempDir()
		awaitHostsGone(t, dir)
		t.Cleanup(func() { dumpLogs(t, dir) })
		k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=2&idle=2s", rack.WithLease(3*time.Second),
			rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		return k
	}
	t.Run("served", func(t *testing.T) {
		k := open(t)
		lines, err := runNest(t, ctx, k)
		if !exitedWith(err, 32) {
			t.Fatalf("Wait = %v, want code 32", err)
		}
		if got := strings.Join(lines, ","); got != "nest 0,nest 1,nest 2" {
			t.Errorf("pipe: %q, want nest 0..2", got)
		}
		// nest 2 on the host the root started, nest 1 in its other slot,
		// nest 0 on the host the root started at nest 1's request.
		ps := psTree(t, ctx, k)
		if h2, h1, h0 := ps["nest 2"].Host, ps["nest 1"].Host, ps["nest 0"].Host; h2 != h1 || h1 == h0 || h0 == "" {
			t.Errorf("hosts of nest 2, 1, 0: %q %q %q, want the first two the same, the third another", h2, h1, h0)
		}
		if n := k.HostRequestsServedForTest(); n != 1 {
			t.Errorf("the root's kernel served %d host requests, want 1", n)
		}
		objs, err := k.DumpForTest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name := range objs {
			if strings.HasPrefix(name, "hostd/requests/") {
				t.Errorf("%s left after its request was answered", name)
			}
		}
	})
	// A ForkAll from a host: the hosts its children need beyond its own
	// host's free slot are asked for together, and all run.
	t.Run("forkall", func(t *testing.T) {
		k := open(t)
		lines, err := runPiped(t, ctx, k, "fan-root", rack.Spec{Program: "fan", Args: []string{"5"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(lines, ","); got != "leaf 0,leaf 1,leaf 2,leaf 3,leaf 4" {
			t.Errorf("pipe: %q, want leaf 0..4", got)
		}
		// fan and a leaf on the host the root started; 4 leaves on the 2
		// hosts started at fan's requests.
		if n := k.HostRequestsServedForTest(); n != 2 {
			t.Errorf("the root's kernel served %d host requests, want 2", n)
		}
		ps := psTree(t, ctx, k)
		hosts := map[string]int{}
		for i := range 5 {
			in := ps["fan-leaf "+strconv.Itoa(i)]
			if in.ExitCode != 40+i || in.Host == "" {
				t.Errorf("ps: leaf %d: %+v, want code %d, on a host", i, in, 40+i)
			}
			hosts[in.Host]++
		}
		if h := ps["fan 5"].Host; hosts[h] != 1 || len(hosts) != 3 {
			t.Errorf("leaves by host %v (fan's: %s), want 1 on fan's host and 2 on each of 2 others", hosts, h)
		}
	})
	t.Run("none", func(t *testing.T) {
		k := open(t)
		k.NoHostRequestsForTest()
		start := time.Now()
		lines, err := runNest(t, ctx, k)
		if !exitedWith(err, 1) || !strings.Contains(err.Error(), "no kernel that can (the namespace's root, while it runs) answered host request") {
			t.Fatalf("Wait = %v, want code 1 and why nest 0 could not start", err)
		}
		if got := strings.Join(lines, ","); got != "nest 1,nest 2" {
			t.Errorf("pipe: %q, want nest 1, 2", got)
		}
		t.Logf("the fork failed %v after it began (lease 3 s): %v", time.Since(start).Round(100*time.Millisecond), err)
	})
}

// BenchmarkHostFork: fork+wait of an empty child by a process on a host,
// into a free slot of its own host ("own": hosts of 2 slots, a hand-over
// within the host's OS process) or of another warm host ("other": hosts
// of 1 slot). requests/fork counts the forker's kernel's store requests
// (its host's own watch included).
func BenchmarkHostFork(b *testing.B) {
	for _, c := range []struct {
		name  string
		slots int
	}{{"own", 2}, {"other", 1}} {
		b.Run(c.name, func(b *testing.B) {
			out := runOnHost(b, c.slots, "fork-loop")
			var ns, reqs int64
			if _, err := fmt.Sscan(out, &ns, &reqs); err != nil {
				b.Fatalf("fork-loop printed %q: %v", out, err)
			}
			b.ReportMetric(float64(ns)/float64(b.N), "ns/fork")
			b.ReportMetric(float64(reqs)/float64(b.N), "requests/fork")
			if f := strings.Fields(out); len(f) > 2 {
				b.Logf("requests per fork by kind: %s", strings.Join(f[2:], " "))
			}
		})
	}
}

// runOnHost runs program with the argument b.N on a host of a file://
// namespace whose hosts have slots slots, and returns what it printed.
func runOnHost(b *testing.B, slots int, program string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	awaitHostsGone(b, dir)
	k, err := rack.Open(ctx, fmt.Sprintf("file://%s?hosts=1&slots=%d&idle=2s", dir, slots), rack.WithLease(3*time.Second),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	var out string
	root, err := k.Start(ctx, rack.Spec{Name: "bench-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		child, err := self.Fork(ctx, rack.Spec{Program: program, Args: []string{strconv.Itoa(b.N)}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		data, err := io.ReadAll(r)
		out = string(data)
		if err != nil {
			return err
		}
		return child.Wait(ctx)
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkHostForkVsReexec: issue #15's file:// criterion, side by side.
// A process on a warm host of 2 slots forks and waits for an empty child
// (into its own host's free slot) and runs a bare re-exec of the same
// binary, in turn, in one loop: ratio is fork/re-exec (the criterion: at
// most 0.5).
func BenchmarkHostForkVsReexec(b *testing.B) {
	out := runOnHost(b, 2, "fork-vs-exec")
	var forks, execs int64
	if _, err := fmt.Sscan(out, &forks, &execs); err != nil {
		b.Fatalf("fork-vs-exec printed %q: %v", out, err)
	}
	b.ReportMetric(float64(forks)/float64(b.N), "ns/fork")
	b.ReportMetric(float64(execs)/float64(b.N), "ns/reexec")
	b.ReportMetric(float64(forks)/float64(execs), "ratio")
}

// exitedWith reports whether err is a process's exit with code.
func exitedWith(err error, code int) bool {
	var ee *rack.ExitError
	return errors.As(err, &ee) && ee.Code() == code
}
