//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package osproc_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/osproc"
)

// serveTestChild runs a test child and returns its exit status.
func serveTestChild(mode string) int {
	dir, name := os.Getenv(dirEnv), os.Getenv(nameEnv)
	switch mode {
	case "print": // two lines on each stream, then exit 3
		fmt.Fprintf(os.Stdout, "out 1 %s\n", name)
		fmt.Fprintf(os.Stderr, "err 1 %s\n", name)
		fmt.Fprintf(os.Stdout, "out 2 %s\n", name)
		fmt.Fprintf(os.Stderr, "err 2 %s\n", name)
		return 3
	case "wait": // record the start, wait for the release, exit 0
		return waitRelease(dir, name, "")
	case "print-wait": // a line, the start, the release, a line
		fmt.Fprintf(os.Stdout, "before %s\n", name)
		return waitRelease(dir, name, "after "+name+"\n")
	case "spawner": // start a print-wait grandchild, then block until killed
		return spawn(dir, name)
	case "handoff": // report what was handed over, and what the environment shows
		return reportHandoff(dir, name)
	case "group-spawner": // `sleep 60` in a group of its own (pause_linux_test.go)
		return groupSpawner(dir, name)
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", modeEnv, mode)
	return 2
}

// releaseFifo makes dir/release, a fifo that "wait" children block on
// until the returned function closes the test's end (the only writer).
func releaseFifo(t *testing.T, dir string) (release func()) {
	t.Helper()
	path := filepath.Join(dir, "release")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read-write: opening never blocks, and children's opens find a writer.
	hold, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { hold.Close() }) }
	t.Cleanup(release)
	return release
}

// waitRelease records that the child started (dir/<name>.started holds
// its OS pid), waits until the fifo has no writer left, writes after to
// stdout, and returns 0.
func waitRelease(dir, name, after string) int {
	f, err := os.Open(filepath.Join(dir, "release"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := os.Rename(tmp, filepath.Join(dir, name+".started")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Fprint(os.Stdout, after)
	return 0
}

// spawn starts, through a Compute of this process logging to dir/logs, a
// print-wait child named name-gc, then blocks until it is killed.
func spawn(dir, name string) int {
	c, err := osproc.New(osproc.WithLogDir(filepath.Join(dir, "logs")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	gc := name + "-gc"
	if _, err := c.Start(context.Background(), &backend.StartRequest{Namespace: "t", PID: 1, Name: gc, Env: testEnv("print-wait", dir, gc)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for {
		time.Sleep(time.Hour)
	}
}

func started(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name+".started"))
	return err == nil
}

// exits collects the exit hook's reports.
type exits struct {
	mu     sync.Mutex
	states map[string]*os.ProcessState
}

func (e *exits) hook(inst backend.Instance, st *os.ProcessState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.states == nil {
		e.states = make(map[string]*os.ProcessState)
	}
	e.states[inst.Name] = st
}

func (e *exits) get(name string) *os.ProcessState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.states[name]
}

func (e *exits) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.states)
}

// TestLogsCapture: both streams of an instance go, in order, to its log
// file (0600, in a directory made 0700), which Logs reads whole once the
// instance has ended, following or not; a second run appends.
func TestLogsCapture(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs", "ns")
	var ex exits
	c, err := osproc.New(osproc.WithLogDir(logDir), osproc.WithExitHook(ex.hook))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const name = "t-101"
	want := "out 1 t-101\nerr 1 t-101\nout 2 t-101\nerr 2 t-101\n"
	for run := 1; run <= 2; run++ {
		if _, err := c.Start(ctx, request(name, "print", dir)); err != nil {
			t.Fatal(err)
		}
		r, err := c.Logs(ctx, name, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("run %d: following: %v", run, err)
		}
		if w := strings.Repeat(want, run); string(got) != w {
			t.Fatalf("run %d: followed log %q, want %q", run, got, w)
		}
		waitFor(t, 10*time.Second, "the exit hook", func() bool { return ex.get(name) != nil })
		if code := ex.get(name).ExitCode(); code != 3 {
			t.Errorf("run %d: exit code %d, want 3", run, code)
		}
		ex.mu.Lock() // forget, for the next run
		delete(ex.states, name)
		ex.mu.Unlock()
	}
	r, err := c.Logs(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if w := strings.Repeat(want, 2); string(got) != w {
		t.Errorf("log %q, want %q", got, w)
	}
	for path, mode := range map[string]os.FileMode{logDir: 0o700 | os.ModeDir, filepath.Join(logDir, name+osproc.LogSuffix): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, mode)
		}
	}
	if ents, _ := os.ReadDir(logDir); len(ents) != 1 {
		t.Errorf("log dir holds %d entries, want only the log", len(ents))
	}
}

// TestLogsFollowAcrossComputes: a Compute that did not start an instance
// follows its log live, through to its end.
func TestLogsFollowAcrossComputes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	release := releaseFifo(t, dir)
	logDir := filepath.Join(dir, "logs")
	starter, err := osproc.New(osproc.WithLogDir(logDir))
	if err != nil {
		t.Fatal(err)
	}
	defer starter.Close()
	reader, err := osproc.New(osproc.WithLogDir(logDir))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	const name = "t-102"
	if _, err := starter.Start(ctx, request(name, "print-wait", dir)); err != nil {
		t.Fatal(err)
	}
	r, err := reader.Logs(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	if line, err := br.ReadString('\n'); line != "before t-102\n" || err != nil {
		t.Fatalf("first line %q, %v", line, err)
	}
	waitFor(t, 10*time.Second, "the child to start", func() bool { return started(dir, name) })
	rest := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(br)
		if err != nil {
			b = append(b, "; error: "+err.Error()...)
		}
		rest <- string(b)
	}()
	select {
	case s := <-rest:
		t.Fatalf("follow ended while the instance lives: %q", s)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case s := <-rest:
		if s != "after t-102\n" {
			t.Errorf("rest of the log %q, want %q", s, "after t-102\n")
		}
	case <-ctx.Done():
		t.Fatal("follow did not end after the instance did")
	}
}

// TestLogsFollowEndsWhenStarterDies: when the OS process whose Compute
// started an instance is killed, the instance dies with it (Pdeathsig) and
// a follower in another process sees the end, with no word from the
// starter.
func TestLogsFollowEndsWhenStarterDies(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no Pdeathsig here: an orphan lives until rack's lease watchdog ends it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	releaseFifo(t, dir)
	const name = "t-103"
	spawner := exec.Command(os.Args[0])
	for k, v := range testEnv("spawner", dir, name) {
		spawner.Env = append(spawner.Env, k+"="+v)
	}
	spawner.Env = append(os.Environ(), spawner.Env...)
	spawner.Stdout, spawner.Stderr = os.Stdout, os.Stderr
	if err := spawner.Start(); err != nil {
		t.Fatal(err)
	}
	defer spawner.Process.Kill()
	gc := name + "-gc"
	waitFor(t, 10*time.Second, "the grandchild to start", func() bool { return started(dir, gc) })
	b, err := os.ReadFile(filepath.Join(dir, gc+".started"))
	if err != nil {
		t.Fatal(err)
	}
	gcPID, _ := strconv.Atoi(string(b))
	c, err := osproc.New(osproc.WithLogDir(filepath.Join(dir, "logs")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Logs(ctx, gc, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	if line, err := br.ReadString('\n'); line != "before "+gc+"\n" || err != nil {
		t.Fatalf("first line %q, %v", line, err)
	}
	if err := spawner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	spawner.Wait()
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after the starter died: rest %q, %v; want nothing, then EOF", rest, err)
	}
	waitFor(t, 10*time.Second, "the grandchild to die", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", gcPID))
		// Gone, or a zombie waiting for its new parent to reap it.
		return err != nil || bytes.Contains(st, []byte(") Z "))
	})
}

// TestLogsErrors: what Logs refuses, and how a follower stops early.
func TestLogsErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	plain, err := osproc.New()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Logs(ctx, "t-100", false); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Logs without a log dir: %v, want ErrUnsupported", err)
	}
	dir := t.TempDir()
	release := releaseFifo(t, dir)
	c, err := osproc.New(osproc.WithLogDir(filepath.Join(dir, "logs")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Logs(ctx, "t-100", true); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Logs of a name never started: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"a/b", "..", "."} {
		if _, err := c.Logs(ctx, bad, false); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Logs(%q): %v, want ErrInvalid", bad, err)
		}
		req := request("t-100", "wait", dir)
		req.Name = bad
		if _, err := c.Start(ctx, req); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Start(%q) with a log dir: %v, want ErrInvalid", bad, err)
		}
	}

	const name = "t-104"
	if _, err := c.Start(ctx, request(name, "wait", dir)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the child to start", func() bool { return started(dir, name) })
	fctx, fcancel := context.WithCancel(ctx)
	byCtx, err := c.Logs(fctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	defer byCtx.Close()
	byClose, err := c.Logs(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for _, r := range []io.Reader{byCtx, byClose} {
		go func() {
			_, err := r.Read(make([]byte, 10))
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	fcancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("Read once its ctx is cancelled: %v, want context.Canceled", err)
	}
	byClose.Close()
	if err := <-errs; !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read once closed: %v, want os.ErrClosed", err)
	}
	release()
}

// TestOutputWithoutLogDir: without a log dir the instances' output goes to
// WithOutput's writers.
func TestOutputWithoutLogDir(t *testing.T) {
	var out, errOut syncBuffer
	var ex exits
	c, err := osproc.New(osproc.WithOutput(&out, &errOut), osproc.WithExitHook(ex.hook))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Start(context.Background(), request("t-105", "print", t.TempDir())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the exit hook", func() bool { return ex.count() == 1 })
	if got, want := out.String(), "out 1 t-105\nout 2 t-105\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := errOut.String(), "err 1 t-105\nerr 2 t-105\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHundredChildren runs 100 OS-process children at once: all start,
// and are alive together (each waits for the release), and all exit 0.
func TestHundredChildren(t *testing.T) {
	const n = 100
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	release := releaseFifo(t, dir)
	var ex exits
	c, err := osproc.New(osproc.WithExitHook(ex.hook))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		names[i] = fmt.Sprintf("t-%03d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Start(ctx, request(names[i], "wait", dir))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Start(%s): %v", names[i], err)
		}
	}
	tStarted := time.Now()
	waitFor(t, 30*time.Second, "all children to start", func() bool {
		for _, name := range names {
			if !started(dir, name) {
				return false
			}
		}
		return true
	})
	tRunning := time.Now()
	if ex.count() != 0 {
		t.Fatalf("%d children ended before the release", ex.count())
	}
	if live, err := c.List(ctx, "t"); err != nil || len(live) != n {
		t.Fatalf("List: %d instances, %v; want %d", len(live), err, n)
	}
	release()
	waitFor(t, 30*time.Second, "all children to exit", func() bool { return ex.count() == n })
	for _, name := range names {
		if st := ex.get(name); !st.Success() {
			t.Errorf("%s: %v, want exit status 0", name, st)
		}
	}
	if live, err := c.List(ctx, ""); err != nil || len(live) != 0 {
		t.Errorf("List after all exited: %d instances, %v", len(live), err)
	}
	t.Logf("%d children: Starts returned in %v, all running after %v, all exited after %v",
		n, tStarted.Sub(t0).Round(time.Millisecond), tRunning.Sub(t0).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
