package rack_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// TestPanicInLogs: an OS-process child that panics has its stack in its
// stderr stream (here a pipe, as the shell gives an app: what the
// terminal shows), in its exit's stderr tail, and in its log
// (Kernel.Logs, the shell's logs PID), as the README says.
func TestPanicInLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := pgOpen(t, "file://"+t.TempDir())
	var (
		child  *rack.Process
		stream []byte
	)
	root, err := k.Start(ctx, rack.Spec{Name: "panic-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		child, err = self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"panic"}, Stderr: w})
		if err != nil {
			return err
		}
		w.Close()
		stream, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var ee *rack.ExitError
	if err := child.Wait(ctx); !errors.As(err, &ee) || ee.Code() != 2 {
		t.Fatalf("Wait = %v, want exit code 2", err)
	}
	isStack := func(what, s string) {
		t.Helper()
		if !strings.Contains(s, "panic: boom") || !strings.Contains(s, "goroutine ") || !strings.Contains(s, "osChild") {
			t.Errorf("%s holds no panic stack:\n%s", what, s)
		}
	}
	isStack("the stderr stream", string(stream))
	isStack("the exit's stderr tail", ee.Stderr)
	rc, err := k.Logs(ctx, child.PID(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	log, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	isStack("the log", string(log))
	if n := strings.Count(string(log), "panic: boom"); n != 1 {
		t.Errorf("the log holds the panic %d times, want once:\n%s", n, log)
	}
}

// TestPanicOnConsoleLoggedOnce: a child whose stderr is its kernel's
// console (its log) gets the stack there once, not twice.
func TestPanicOnConsoleLoggedOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := pgOpen(t, "file://"+t.TempDir())
	var child *rack.Process
	root, err := k.Start(ctx, rack.Spec{Name: "panic-root"}, func(ctx context.Context, self *rack.Self) error {
		var err error
		child, err = self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"panic"}})
		if err != nil {
			return err
		}
		return child.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = root.Wait(ctx)
	rc, err := k.Logs(ctx, child.PID(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	log, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "panic: boom"); n != 1 {
		t.Errorf("the log holds the panic %d times, want once:\n%s", n, log)
	}
}
