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
