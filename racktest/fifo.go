package racktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// Named pipes as on Linux (see also testNamedPipe in pipe.go).

// testNamedPipeDropsUnreadData: unread data does not outlive the last open
// end. A first run writes into a named pipe whose reader never reads, and
// every end closes with its process; a second run's reader gets only the
// second run's bytes.
func (s *suite) testNamedPipeDropsUnreadData(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	if err := k.Mkfifo(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	writer := func(ctx context.Context, self *rack.Self) error {
		w, err := self.OpenFifoWriter(ctx, "q")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", ioArg(self, 1))
		if ioArg(self, 2) == "close" {
			err = errors.Join(err, w.Close())
		}
		return err // else its end closes as its process ends
	}
	run := func(word, closeHow string) (string, error) {
		var got string
		err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
			if ioArg(self, 0) == "writer" {
				return writer(ctx, self)
			}
			r, err := self.OpenFifoReader(ctx, "q")
			if err != nil {
				return err
			}
			w, err := self.Fork(ctx, rack.Spec{Args: []string{"writer", word, closeHow}})
			if err != nil {
				return err
			}
			if err := w.Wait(ctx); err != nil {
				return fmt.Errorf("writer: %w", err)
			}
			if word == "old" {
				return nil // leaves without reading: its end closes as it ends
			}
			data, err := io.ReadAll(r)
			got = string(data)
			return err
		})
		return got, err
	}
	if _, err := run("old", ""); err != nil {
		t.Fatal(err)
	}
	got, err := run("new", "close")
	if err != nil {
		t.Fatal(err)
	}
	if got != "new\n" {
		t.Fatalf("second run read %q, want %q: a previous run's unread data outlived every end", got, "new\n")
	}
}

// testNamedPipeSecondReader: a reader that opens once the writers are
// gone, while the first reader still has the pipe open, gets EOF at once;
// once nobody has it open, a new reader waits for a new writer, and a
// writer's open waits for a reader.
func (s *suite) testNamedPipeSecondReader(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	if err := k.Mkfifo(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	// readAll reads r to its end, failing if that takes over d.
	readAll := func(r io.Reader, d time.Duration) (string, error) {
		type result struct {
			data []byte
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			data, err := io.ReadAll(r)
			ch <- result{data, err}
		}()
		select {
		case res := <-ch:
			return string(res.data), res.err
		case <-time.After(d):
			return "", fmt.Errorf("no EOF within %v", d)
		}
	}
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "writer" {
			w, err := self.OpenFifoWriter(ctx, "jobs")
			if err != nil {
				return err
			}
			if _, err := io.WriteString(w, "x\n"); err != nil {
				return err
			}
			return w.Close()
		}
		r1, err := self.OpenFifoReader(ctx, "jobs")
		if err != nil {
			return err
		}
		w, err := self.Fork(ctx, rack.Spec{Args: []string{"writer"}})
		if err != nil {
			return err
		}
		if got, err := readAll(r1, s.deadline(10*time.Second)); err != nil || got != "x\n" {
			return fmt.Errorf("first reader: %q, %v; want %q", got, err, "x\n")
		}
		if err := w.Wait(ctx); err != nil {
			return err
		}
		r2, err := self.OpenFifoReader(ctx, "jobs")
		if err != nil {
			return err
		}
		if got, err := readAll(r2, s.deadline(5*time.Second)); err != nil || got != "" {
			return fmt.Errorf("second reader, the writers gone, the first reader open: %q, %v; want EOF at once", got, err)
		}
		r1.Close()
		r2.Close()
		// Nobody has it open now: a new reader waits for a writer.
		r3, err := self.OpenFifoReader(ctx, "jobs")
		if err != nil {
			return err
		}
		if got, err := readAll(r3, 300*time.Millisecond); err == nil {
			return fmt.Errorf("a reader of a named pipe nobody had open: %q, EOF; want it to wait for a writer", got)
		}
		r3.Close()
		// And a writer's open waits for a reader.
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if w, err := self.OpenFifoWriter(wctx, "jobs"); !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				w.Close()
			}
			return fmt.Errorf("OpenFifoWriter with no reader: %v; want it to wait (until ctx's deadline)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testNamedPipeInFileTree: a named pipe is /NAMESPACE/name, which Stat
// and ReadDir report with fs.ModeNamedPipe and Remove removes.
func (s *suite) testNamedPipeInFileTree(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	if err := k.Mkfifo(ctx, "listed"); err != nil {
		t.Fatal(err)
	}
	dir := "/" + k.Namespace()
	path := dir + "/listed"
	fi, err := k.Stat(ctx, path)
	if err != nil || fi.Mode()&fs.ModeNamedPipe == 0 || fi.Name() != "listed" {
		t.Fatalf("Stat %s: %v, %v; want a named pipe called listed", path, fi, err)
	}
	// Listings may lag (Swift's): look until it shows.
	for {
		entries, err := k.ReadDir(ctx, dir)
		if err != nil {
			t.Fatalf("ReadDir %s: %v", dir, err)
		}
		i := slices.IndexFunc(entries, func(e fs.DirEntry) bool { return e.Name() == "listed" })
		if i >= 0 {
			if entries[i].Type()&fs.ModeNamedPipe == 0 || len(entries) != 1 {
				t.Fatalf("ReadDir %s: %v; want only the named pipe listed, marked so", dir, entries)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ReadDir %s never showed the named pipe: %v", dir, entries)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := k.Remove(ctx, path); err != nil {
		t.Fatalf("Remove %s: %v", path, err)
	}
	if _, err := k.Stat(ctx, path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove: %v; want fs.ErrNotExist", err)
	}
	if err := k.Remove(ctx, path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Remove: %v; want fs.ErrNotExist", err)
	}
	if err := k.Remove(ctx, dir+"/no-such"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a named pipe never made: %v; want fs.ErrNotExist", err)
	}
	err = ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if _, err := self.OpenFifoReader(ctx, "listed"); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("OpenFifoReader after Remove: %v; want fs.ErrNotExist", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Mkfifo(ctx, "listed"); err != nil {
		t.Fatalf("Mkfifo after Remove: %v", err)
	}
}

// testNamedPipeForkAllWriters: a named pipe's writer handed to the
// children of a ForkAll (whose ends one record registers as a block):
// the reader gets every line and EOF, and the session stays one until
// every end is closed (a reader that opens while the first still has it
// open joins it and gets EOF, rather than waiting in a new session).
func (s *suite) testNamedPipeForkAllWriters(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	if err := k.Mkfifo(ctx, "fan"); err != nil {
		t.Fatal(err)
	}
	const children = 4
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "child" {
			_, err := fmt.Fprintf(self.Stdout(), "line %s\n", ioArg(self, 1))
			return err
		}
		r, err := self.OpenFifoReader(ctx, "fan")
		if err != nil {
			return err
		}
		w, err := self.OpenFifoWriter(ctx, "fan")
		if err != nil {
			return err
		}
		specs := make([]rack.Spec, children)
		for i := range specs {
			specs[i] = rack.Spec{Args: []string{"child", fmt.Sprint(i)}, Stdout: w}
		}
		kids, err := self.ForkAll(ctx, specs)
		if err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		for _, c := range kids {
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != children {
			return fmt.Errorf("read %q, want %d lines", data, children)
		}
		// Every writer is closed; r still holds the session open: a
		// reader that opens now joins it and gets EOF at once.
		r2, err := self.OpenFifoReader(ctx, "fan")
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() {
			data, err := io.ReadAll(r2)
			if err == nil && len(data) > 0 {
				err = fmt.Errorf("read %q, want nothing", data)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("a reader joining while the first holds the pipe: %w", err)
			}
		case <-time.After(s.deadline(5 * time.Second)):
			return errors.New("a reader joining while the first holds the pipe got no EOF: the session ended early")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
