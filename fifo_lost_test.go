package rack_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// TestFifoWriterOfDeadKernel: a named pipe's writer whose kernel died
// (its lease lapsed: the process is lost, and nobody closes its end) does
// not keep the reader from EOF, and what it wrote before is read.
func TestFifoWriterOfDeadKernel(t *testing.T) {
	ctx := ioCtx(t, 30*time.Second)
	url := sharedMemURL(t)
	quiet := rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard)
	a := pgOpen(t, url, rack.WithLease(300*time.Millisecond), quiet)
	b := pgOpen(t, url, rack.WithLease(300*time.Millisecond), quiet)
	if err := b.Mkfifo(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	var got []byte
	reader, err := b.Start(ctx, rack.Spec{Name: "reader"}, func(ctx context.Context, self *rack.Self) error {
		r, err := self.OpenFifoReader(ctx, "q")
		opened <- err
		if err != nil {
			return err
		}
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	_, err = a.Start(ctx, rack.Spec{Name: "writer"}, func(ctx context.Context, self *rack.Self) error {
		w, err := self.OpenFifoWriter(ctx, "q")
		if err == nil {
			_, err = io.WriteString(w, "before the crash\n")
		}
		wrote <- err
		<-ctx.Done() // never closes its end
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	a.StopLeaseForTest() // a dies, as far as the namespace can tell
	if err := reader.Wait(ctx); err != nil {
		t.Fatalf("reader: %v (read %q)", err, got)
	}
	if string(got) != "before the crash\n" {
		t.Fatalf("reader read %q, want what the writer wrote before its kernel died", got)
	}
}

// TestGCNamedPipeSessions: GC spares the sessions of a named pipe that
// exists (their over markers tell an open where the current session is),
// and removes them once the named pipe is removed.
func TestGCNamedPipeSessions(t *testing.T) {
	ctx := ioCtx(t, 30*time.Second)
	k := pgOpen(t, sharedMemURL(t), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err := k.Mkfifo(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	session := func(word string) string {
		var got []byte
		p, err := k.Start(ctx, rack.Spec{Name: "session"}, func(ctx context.Context, self *rack.Self) error {
			r, err := self.OpenFifoReader(ctx, "q")
			if err != nil {
				return err
			}
			w, err := self.OpenFifoWriter(ctx, "q")
			if err != nil {
				return err
			}
			if _, err := io.WriteString(w, word); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			got, err = io.ReadAll(r)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	overs := func() int {
		objs, err := k.DumpForTest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for name := range objs {
			if strings.HasPrefix(name, "pipes/") && strings.HasSuffix(name, "/over") {
				n++
			}
		}
		return n
	}
	for _, w := range []string{"one", "two"} {
		if got := session(w); got != w {
			t.Fatalf("session read %q, want %q", got, w)
		}
	}
	if _, err := k.GC(ctx, &rack.GCOptions{MinAge: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if n := overs(); n != 2 {
		t.Fatalf("after GC with the named pipe there: %d sessions marked over, want 2", n)
	}
	if got := session("three"); got != "three" {
		t.Fatalf("a session after GC read %q, want %q", got, "three")
	}
	if err := k.Remove(ctx, "/"+k.Namespace()+"/q"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.GC(ctx, &rack.GCOptions{MinAge: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if n := overs(); n != 0 {
		t.Fatalf("after GC with the named pipe removed: %d sessions left, want 0", n)
	}
}
