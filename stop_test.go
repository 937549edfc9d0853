package rack_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// osState returns the state letter of OS process pid (/proc/PID/stat).
func osState(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(data), ") ")
	return after[:1]
}

// psState returns pid's state in k's ps.
func psState(ctx context.Context, t *testing.T, k *rack.Kernel, pid rack.PID) rack.State {
	t.Helper()
	infos, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.PID == pid {
			return in.State
		}
	}
	t.Fatalf("pid %d not in ps", pid)
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOSStopContinue stops an OS-process child with SIGSTOP (its OS
// process is stopped; ps, here and in another kernel, shows it stopped),
// continues it with SIGCONT, then stops it again and kills it (a stopped
// process is woken to die, as on Linux).
func TestOSStopContinue(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	k, err := rack.Open(ctx, "file://"+dir, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	other, err := rack.Open(ctx, "file://"+dir, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	selves := make(chan *rack.Self, 1)
	root, err := k.Start(ctx, rack.Spec{Name: "stopper"}, func(ctx context.Context, self *rack.Self) error {
		selves <- self
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Kill(context.WithoutCancel(ctx))
	self := <-selves
	r, w, err := self.Pipe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*rack.Process, int) {
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		ospid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "block ")))
		if err != nil {
			t.Fatalf("child said %q", line)
		}
		return c, ospid
	}
	c, ospid := start()
	if err := c.Signal(ctx, rack.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the OS process to stop", func() bool { return osState(t, ospid) == "T" })
	if got := psState(ctx, t, k, c.PID()); got != rack.Stopped {
		t.Errorf("ps here: %s, want stopped", got)
	}
	waitFor(t, "another kernel's ps to show it stopped", func() bool { return psState(ctx, t, other, c.PID()) == rack.Stopped })
	// A second kernel continues it: the signal goes to the forker's kernel.
	oc, err := other.Process(ctx, c.PID())
	if err != nil {
		t.Fatal(err)
	}
	if err := oc.Signal(ctx, rack.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the OS process to continue", func() bool { return osState(t, ospid) != "T" })
	waitFor(t, "ps to show it running", func() bool { return psState(ctx, t, other, c.PID()) == rack.Running })
	if err := c.Signal(ctx, rack.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the OS process to stop again", func() bool { return osState(t, ospid) == "T" })
	if err := c.Signal(ctx, rack.SIGINT); err != nil { // waits, as on Linux
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case <-waitCh(ctx, c):
		t.Fatal("a stopped process acted on SIGINT")
	default:
	}
	if err := c.Signal(ctx, rack.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var ee *rack.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Signal() != rack.SIGINT {
		t.Fatalf("after SIGCONT, Wait = %v, want the pending SIGINT's exit", err)
	}

	c2, ospid2 := start()
	if err := c2.Signal(ctx, rack.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second child to stop", func() bool { return osState(t, ospid2) == "T" })
	if err := c2.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Wait(ctx); !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL {
		t.Fatalf("killed while stopped: Wait = %v, want SIGKILL", err)
	}
}

// waitCh returns a channel closed when p has ended.
func waitCh(ctx context.Context, p *rack.Process) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		_ = p.Wait(ctx)
		close(ch)
	}()
	return ch
}

// TestStopUnsupported: a goroutine process cannot be stopped; the error
// says so, wrapping errors.ErrUnsupported, and the process runs on.
func TestStopUnsupported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := rack.Open(ctx, "mem://", rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	p, err := k.Start(ctx, rack.Spec{Name: "spinner"}, func(ctx context.Context, self *rack.Self) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Signal(ctx, rack.SIGSTOP)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "cannot stop") {
		t.Fatalf("SIGSTOP of a goroutine: %v, want an errors.ErrUnsupported saying it cannot stop", err)
	}
	if got := psState(ctx, t, k, p.PID()); got != rack.Running {
		t.Fatalf("after a refused stop: %s", got)
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
}
