package rack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// TestPipeIdleEndCloseWakes: on a store that notifies, a reader that
// skips an idle writer end while another streams still learns of the idle
// end's close that was stored before its wait began. The reader once
// skipped it (looking at idle ends every fourth fetch only), found
// nothing, and waited for a change that had already come: the pipe never
// reached EOF (TestOSProcesses hung in about one run in eight).
//
// Each round streams lines from one writer while the other stays idle;
// then both close, and the reader reads the last line and must see EOF.
// The rounds stream 3 to 6 lines, so that the fetch that ends the stream
// falls on each of the four phases of the idle look.
func TestPipeIdleEndCloseWakes(t *testing.T) {
	for lines := 3; lines <= 6; lines++ {
		t.Run(fmt.Sprint(lines), func(t *testing.T) { idleEndRound(t, lines) })
	}
}

func idleEndRound(t *testing.T, lines int) {
	ctx := pgCtx(t, time.Minute)
	store := mem.New()
	k, err := rack.New(ctx, store, inproc.New(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ack := make(chan struct{})
	idleEnd := make(chan struct{})
	root, err := k.Start(ctx, rack.Spec{Name: "reader"}, func(ctx context.Context, self *rack.Self) error {
		switch strings.Join(self.Args(), " ") {
		case "idle":
			<-idleEnd
			return nil
		case "stream":
			for i := range lines {
				if _, err := fmt.Fprintf(self.Stdout(), "line %d\n", i); err != nil {
					return err
				}
				if i < lines-1 {
					<-ack
				}
			}
			return nil
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		idle, err := self.Fork(ctx, rack.Spec{Name: "idle", Args: []string{"idle"}, Stdout: w})
		if err != nil {
			return err
		}
		stream, err := self.Fork(ctx, rack.Spec{Name: "stream", Args: []string{"stream"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		buf := make([]byte, 64)
		for i := range lines {
			if i == lines-1 {
				// Both ends close before the last line is read, and the
				// read segments are gone (a delete is a change under
				// the pipe too, which would wake the reader by chance).
				close(idleEnd)
				if err := idle.Wait(ctx); err != nil {
					return err
				}
				if err := stream.Wait(ctx); err != nil {
					return err
				}
				if err := segmentsGone(ctx, store, 1); err != nil {
					return err
				}
			}
			n, err := r.Read(buf)
			if want := fmt.Sprintf("line %d\n", i); err != nil || string(buf[:n]) != want {
				return fmt.Errorf("read %d: %q, %v; want %q", i, buf[:n], err, want)
			}
			if i < lines-1 {
				ack <- struct{}{}
			}
		}
		if err := segmentsGone(ctx, store, 0); err != nil {
			return err
		}
		readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		go func() {
			<-readCtx.Done()
			r.Close()
		}()
		if n, err := r.Read(buf); err != io.EOF {
			return fmt.Errorf("after the last line and both closes: Read = %q, %v; want EOF", buf[:n], err)
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

// segmentsGone waits until at most left pipe segments are in the store
// (the reader deletes read ones in the background).
func segmentsGone(ctx context.Context, store backend.Store, left int) error {
	for {
		objs, err := store.List(ctx, "rack", backend.ListOptions{Prefix: "pipes/"})
		if err != nil {
			return err
		}
		n := 0
		for _, o := range objs {
			if strings.Contains(o.Name, "/seg/") {
				n++
			}
		}
		if n <= left {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("pipe segments never deleted")
		case <-time.After(time.Millisecond):
		}
	}
}
