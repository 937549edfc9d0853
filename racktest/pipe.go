package racktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/testkit"
)

// Helpers shared by pipe.go, file.go and input.go. Their names start
// with "io" so they do not collide with the helpers of process.go.

// ioCtx returns a context that ends after d, so a bug fails instead of
// hanging.
func (s *suite) ioCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.deadline(d))
	t.Cleanup(cancel)
	return ctx
}

// ioRun starts prog as a root process with args and waits for it; ioArg
// returns a process's i-th argument or ""; ioData is a deterministic
// stream of n bytes; ioSum hashes a stream (package testkit).
var (
	ioRun  = testkit.Run
	ioArg  = testkit.Arg
	ioData = testkit.Data
	ioSum  = testkit.Sum
)

// ioWaitGroup waits for wg, at most d.
func ioWaitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (s *suite) testPipeParentToChild(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	const msg = "first line\nsecond line\n"
	got := make(chan string, 1)
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "cat" {
			data, err := io.ReadAll(self.Stdin())
			got <- string(data)
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"cat"}, Stdin: r})
		if err != nil {
			return err
		}
		// The read end moved to the child: ours is closed.
		if n, err := r.Read(make([]byte, 8)); n != 0 || !errors.Is(err, rack.ErrClosed) {
			return fmt.Errorf("read of a moved reader = %d, %v; want an error wrapping ErrClosed", n, err)
		}
		for _, line := range strings.SplitAfter(msg, "\n") {
			if _, err := io.WriteString(w, line); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		return child.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != msg {
		t.Fatalf("child read %q, want %q", s, msg)
	}
}

func (s *suite) testPipeChildToParent(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	var got string
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "echo" {
			for _, a := range self.Args()[1:] {
				if _, err := fmt.Fprintln(self.Stdout(), a); err != nil {
					return err
				}
			}
			return nil
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"echo", "a", "bb", "ccc"}, Stdout: w})
		if err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		got = string(data)
		return child.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\nbb\nccc\n"; got != want {
		t.Fatalf("parent read %q, want %q", got, want)
	}
}

// testPipeCopy64MiB streams 64 MiB from a child to its parent with
// io.Copy on both sides.
func (s *suite) testPipeCopy64MiB(t *testing.T) {
	const size = 64 << 20
	ctx := s.ioCtx(t, 60*time.Second)
	k := s.ioKernel(t)
	want := ioSum(t, ioData(7, size))
	var got [32]byte
	var n int64
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "gen" {
			_, err := io.Copy(self.Stdout(), ioData(7, size))
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"gen"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		h := sha256.New()
		if n, err = io.Copy(h, r); err != nil {
			return err
		}
		h.Sum(got[:0])
		return child.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != size || got != want {
		t.Fatalf("received %d bytes with sha256 %x; want %d bytes with %x", n, got, size, want)
	}
}

// pipeRecord is one Write of the contiguity tests: a header (tag, seq,
// payload size) and a payload of the tag repeated.
func pipeRecord(tag byte, seq uint32, size int) []byte {
	b := make([]byte, 9+size)
	b[0] = tag
	binary.BigEndian.PutUint32(b[1:], seq)
	binary.BigEndian.PutUint32(b[5:], uint32(size))
	for i := 9; i < len(b); i++ {
		b[i] = tag
	}
	return b
}

// readRecords parses a stream of pipeRecords, checking that each payload
// is whole and each tag's records come in order; it returns the count per
// tag.
func readRecords(r io.Reader, sizeOf func(tag byte, seq uint32) int) (map[byte]uint32, error) {
	next := make(map[byte]uint32)
	hdr := make([]byte, 9)
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr); err == io.EOF {
			return next, nil
		} else if err != nil {
			return next, fmt.Errorf("reading a header: %w", err)
		}
		tag, seq, size := hdr[0], binary.BigEndian.Uint32(hdr[1:]), int(binary.BigEndian.Uint32(hdr[5:]))
		if seq != next[tag] {
			return next, fmt.Errorf("tag %q: record %d after %d records (interleaved or lost)", tag, seq, next[tag])
		}
		if want := sizeOf(tag, seq); size != want {
			return next, fmt.Errorf("tag %q record %d: size %d, want %d (header corrupted by interleaving)", tag, seq, size, want)
		}
		if cap(payload) < size {
			payload = make([]byte, size)
		}
		payload = payload[:size]
		if _, err := io.ReadFull(r, payload); err != nil {
			return next, fmt.Errorf("tag %q record %d: reading %d bytes: %w", tag, seq, size, err)
		}
		if i := bytes.IndexFunc(payload, func(c rune) bool { return byte(c) != tag }); i >= 0 {
			return next, fmt.Errorf("tag %q record %d: byte %d of %d is %q: another write interleaved", tag, seq, i, size, payload[i])
		}
		next[tag]++
	}
}

// testPipeWritesStayContiguous has many writers (processes, and goroutines
// sharing one end) write records, some larger than the segment size, and
// checks that every Write arrives whole.
func (s *suite) testPipeWritesStayContiguous(t *testing.T) {
	const (
		children   = 10
		goroutines = 4
		records    = 8
	)
	sizes := []int{100 << 10, 10, 3000, 64<<10 - 9, 64 << 10, 64<<10 + 1, 200 << 10, 1, 100 << 10}
	sizeOf := func(tag byte, seq uint32) int { return sizes[(int(tag)+int(seq))%len(sizes)] }
	tags := []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")[:children*goroutines]
	ctx := s.ioCtx(t, 60*time.Second)
	k := s.ioKernel(t, rack.WithPipeBuffer(64<<10, time.Millisecond))
	var counts map[byte]uint32
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "writer" {
			var c int
			fmt.Sscan(ioArg(self, 1), &c)
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				tag := tags[c*goroutines+g]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for seq := uint32(0); seq < records; seq++ {
						rec := pipeRecord(tag, seq, sizeOf(tag, seq))
						if n, err := self.Stdout().Write(rec); err != nil || n != len(rec) {
							errs <- fmt.Errorf("write %d bytes: %d, %v", len(rec), n, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		var kids []*rack.Process
		for c := 0; c < children; c++ {
			kid, err := self.Fork(ctx, rack.Spec{Args: []string{"writer", fmt.Sprint(c)}, Stdout: w})
			if err != nil {
				return err
			}
			kids = append(kids, kid)
		}
		w.Close()
		counts, err = readRecords(r, sizeOf)
		if err != nil {
			return err
		}
		for _, kid := range kids {
			if err := kid.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if counts[tag] != records {
			t.Errorf("tag %q: %d records, want %d", tag, counts[tag], records)
		}
	}
}

// testPipeEOFWithDyingWriters gives one write end to 100 children that end
// in every way a process can: normally, with an error, by a panic and by
// SIGKILL, all mid-stream. The reader must reach EOF and get exactly the
// bytes whose Write returned success.
func (s *suite) testPipeEOFWithDyingWriters(t *testing.T) {
	n := 100
	if s.h.SlowRequests {
		// A reader polls each idle writer end with a GET or two: with
		// 100 ends on a real Swift that takes minutes (see README).
		n = 20
	}
	ctx := s.ioCtx(t, 60*time.Second)
	k := s.ioKernel(t, rack.WithPipeBuffer(64<<10, time.Millisecond))
	var (
		acked   = make([]atomic.Int64, n) // bytes of successful Writes, per child
		running sync.WaitGroup            // child goroutines (they outlive a kill)
	)
	kind := func(i int) string { return []string{"ok", "error", "panic", "killed"}[i%4] }
	// Every 7th record is larger than a segment, so some Writes are split.
	sizeOf := func(tag byte, seq uint32) int {
		if seq%7 == 6 {
			return 70 << 10
		}
		return 55
	}
	running.Add(n)
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "child" {
			defer running.Done()
			var i int
			fmt.Sscan(ioArg(self, 1), &i)
			for seq := uint32(0); ; seq++ {
				switch {
				case kind(i) == "ok" && seq == 40:
					return nil
				case kind(i) == "error" && seq == 30:
					return errors.New("giving up")
				case kind(i) == "panic" && seq == 20:
					panic("mid-stream")
				case kind(i) == "killed":
					time.Sleep(time.Millisecond)
				}
				rec := pipeRecord(byte(i), seq, sizeOf(byte(i), seq))
				nw, err := self.Stdout().Write(rec)
				if err != nil {
					if kind(i) == "killed" && !errors.Is(err, rack.ErrKilled) && !errors.Is(err, rack.ErrClosed) {
						return fmt.Errorf("write after kill: %v, want ErrKilled", err)
					}
					return err
				}
				acked[i].Add(int64(nw))
			}
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		kids := make([]*rack.Process, n)
		for i := range kids {
			if kids[i], err = self.Fork(ctx, rack.Spec{Args: []string{"child", fmt.Sprint(i)}, Stdout: w}); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		killed := make(chan error, 1)
		go func() {
			for i := 3; i < n; i += 4 {
				for acked[i].Load() < 10*55 {
					if ctx.Err() != nil {
						killed <- ctx.Err()
						return
					}
					time.Sleep(time.Millisecond)
				}
				if err := kids[i].Signal(ctx, rack.SIGKILL); err != nil {
					killed <- err
					return
				}
			}
			killed <- nil
		}()
		counts, rerr := readRecords(r, sizeOf)
		if err := <-killed; err != nil {
			return fmt.Errorf("killing: %w", err)
		}
		if rerr != nil {
			return rerr
		}
		if !ioWaitGroup(&running, s.deadline(10*time.Second)) {
			return errors.New("child goroutines did not return")
		}
		var errs []error
		for i := 0; i < n; i++ {
			var got int64
			for seq := uint32(0); seq < counts[byte(i)]; seq++ {
				got += int64(9 + sizeOf(byte(i), seq))
			}
			if want := acked[i].Load(); got != want {
				errs = append(errs, fmt.Errorf("child %d (%s): read %d bytes, its Writes acknowledged %d", i, kind(i), got, want))
			}
			werr := kids[i].Wait(ctx)
			var ee *rack.ExitError
			switch kind(i) {
			case "ok":
				if werr != nil {
					errs = append(errs, fmt.Errorf("child %d: wait = %v, want nil", i, werr))
				}
			case "error":
				if !errors.As(werr, &ee) || ee.Code() != 1 || ee.Signal() != 0 {
					errs = append(errs, fmt.Errorf("child %d: wait = %v, want exit code 1", i, werr))
				}
			case "panic":
				if !errors.As(werr, &ee) || ee.Code() != 2 {
					errs = append(errs, fmt.Errorf("child %d: wait = %v, want exit code 2", i, werr))
				}
			case "killed":
				if !errors.As(werr, &ee) || ee.Code() != 128+9 || ee.Signal() != rack.SIGKILL {
					errs = append(errs, fmt.Errorf("child %d: wait = %v, want killed by SIGKILL", i, werr))
				}
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testPipeMovedReader hands the read end to a child after the parent has
// read part of the stream: the child continues where the parent stopped,
// and the parent's end is closed.
func (s *suite) testPipeMovedReader(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t, rack.WithPipeBuffer(1<<20, 0)) // no batching: one segment per Write
	got := make(chan string, 1)
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "cat" {
			data, err := io.ReadAll(self.Stdin())
			got <- string(data)
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		io.WriteString(w, "parent's part.")
		buf := make([]byte, 100)
		n, err := r.Read(buf)
		if err != nil || string(buf[:n]) != "parent's part." {
			return fmt.Errorf("parent read %q, %v", buf[:n], err)
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"cat"}, Stdin: r})
		if err != nil {
			return err
		}
		if _, err := r.Read(buf); !errors.Is(err, rack.ErrClosed) {
			return fmt.Errorf("parent's read after the move: %v, want an error wrapping ErrClosed", err)
		}
		// A second move of the same end is refused.
		if _, err := self.Fork(ctx, rack.Spec{Args: []string{"cat"}, Stdin: r}); !errors.Is(err, rack.ErrClosed) {
			return fmt.Errorf("second move: %v, want an error wrapping ErrClosed", err)
		}
		io.WriteString(w, "child's part.")
		w.Close()
		return child.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "child's part." {
		t.Fatalf("child read %q, want %q", s, "child's part.")
	}
}

// testPipeBadEnds: closed ends and ends that are not the forker's to give.
func (s *suite) testPipeBadEnds(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	k2 := s.ioKernel(t)
	// An end of a process of the other kernel.
	foreign := make(chan *rack.PipeWriter, 1)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	if _, err := k2.Start(ctx, rack.Spec{Name: "other"}, func(ctx context.Context, self *rack.Self) error {
		_, w, err := self.Pipe(ctx)
		foreign <- w
		<-hold
		return err
	}); err != nil {
		t.Fatal(err)
	}
	otherW := <-foreign
	if otherW == nil {
		t.Fatal("no pipe in the other kernel")
	}

	var rootW *rack.PipeWriter
	ready := make(chan struct{})
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "child" {
			// The parent's end is not the child's to give.
			_, err := self.Fork(ctx, rack.Spec{Args: []string{"x"}, Stdout: rootW})
			if !errors.Is(err, rack.ErrInvalid) {
				return fmt.Errorf("fork with the parent's end: %v, want ErrInvalid", err)
			}
			return nil
		}
		if ioArg(self, 0) != "" {
			return nil
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		rootW = w
		close(ready)
		var errs []error
		check := func(what string, err, want error) {
			if !errors.Is(err, want) {
				errs = append(errs, fmt.Errorf("%s: %v, want an error wrapping %v", what, err, want))
			}
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"child"}})
		if err != nil {
			return err
		}
		if err := child.Wait(ctx); err != nil {
			errs = append(errs, err)
		}
		// A value with Read and Write wrapping a write end is not a pipe end.
		type rw struct {
			io.Reader
			*rack.PipeWriter
		}
		_, err = self.Fork(ctx, rack.Spec{Args: []string{"x"}, Stdin: rw{strings.NewReader(""), w}})
		check("Stdin = wrapped *PipeWriter", err, rack.ErrInvalid)
		_, err = self.Fork(ctx, rack.Spec{Args: []string{"x"}, Stdout: otherW})
		check("Stdout = another kernel's end", err, rack.ErrInvalid)
		_, err = k.Start(ctx, rack.Spec{Stdout: w}, func(context.Context, *rack.Self) error { return nil })
		check("root Start with a process's end", err, rack.ErrInvalid)

		if err := w.Close(); err != nil {
			return err
		}
		_, err = w.Write([]byte("x"))
		check("write to closed writer", err, rack.ErrClosed)
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("second close: %v", err))
		}
		_, err = self.Fork(ctx, rack.Spec{Args: []string{"x"}, Stdout: w})
		check("Stdout = closed writer", err, rack.ErrClosed)

		if _, err := io.ReadAll(r); err != nil {
			errs = append(errs, fmt.Errorf("read to EOF: %v", err))
		}
		r.Close()
		_, err = r.Read(make([]byte, 1))
		check("read from closed reader", err, rack.ErrClosed)
		_, err = self.Fork(ctx, rack.Spec{Args: []string{"x"}, Stdin: r})
		check("Stdin = closed reader", err, rack.ErrClosed)
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testPipeCloseUnblocksRead closes a reader while another goroutine is
// blocked reading it.
func (s *suite) testPipeCloseUnblocksRead(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		defer w.Close()
		done := make(chan error, 1)
		go func() {
			_, err := r.Read(make([]byte, 10))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-done:
			return fmt.Errorf("read returned before close: %v", err)
		default:
		}
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		select {
		case err := <-done:
			if !errors.Is(err, rack.ErrClosed) {
				return fmt.Errorf("blocked read = %v, want an error wrapping ErrClosed", err)
			}
		case <-time.After(s.deadline(5 * time.Second)):
			return fmt.Errorf("read still blocked %v after Close", s.deadline(5*time.Second))
		}
		select {
		case err := <-closed:
			return err
		case <-time.After(s.deadline(5 * time.Second)):
			return errors.New("the writer's Close blocked")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testNamedPipe(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	if err := k.Mkfifo(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := k.Mkfifo(ctx, "jobs"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Mkfifo: %v, want an error wrapping fs.ErrExist", err)
	}
	const writers = 3
	var got string
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		switch ioArg(self, 0) {
		case "writer":
			w, err := self.OpenFifoWriter(ctx, "jobs")
			if err != nil {
				return err
			}
			for i := 0; i < 5; i++ {
				if _, err := fmt.Fprintf(w, "%s-%d\n", ioArg(self, 1), i); err != nil {
					return err
				}
			}
			return w.Close()
		case "reader":
			r, err := self.OpenFifoReader(ctx, "jobs")
			if err != nil {
				return err
			}
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			_, err = self.Stdout().Write(data)
			return err
		}
		for _, op := range []func(context.Context, string) error{
			func(ctx context.Context, n string) error { _, err := self.OpenFifoReader(ctx, n); return err },
			func(ctx context.Context, n string) error { _, err := self.OpenFifoWriter(ctx, n); return err },
		} {
			if err := op(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("opening a missing fifo: %v, want an error wrapping fs.ErrNotExist", err)
			}
		}
		out, outW, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		reader, err := self.Fork(ctx, rack.Spec{Args: []string{"reader"}, Stdout: outW})
		if err != nil {
			return err
		}
		outW.Close()
		// The root holds a writer too, so EOF can only come after it
		// closes. Its open waits for the reader's, as on Linux.
		mine, err := self.OpenFifoWriter(ctx, "jobs")
		if err != nil {
			return err
		}
		for i := 0; i < writers; i++ {
			wr, err := self.Fork(ctx, rack.Spec{Args: []string{"writer", fmt.Sprint("w", i)}})
			if err != nil {
				return err
			}
			if err := wr.Wait(ctx); err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err = reader.Wait(wctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("reader ended while a writer was open: %v", err)
		}
		if _, err := io.WriteString(mine, "root\n"); err != nil {
			return err
		}
		if err := mine.Close(); err != nil {
			return err
		}
		data, err := io.ReadAll(out)
		if err != nil {
			return err
		}
		got = string(data)
		return reader.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	want := map[string]bool{"root": true}
	for i := 0; i < writers; i++ {
		for j := 0; j < 5; j++ {
			want[fmt.Sprintf("w%d-%d", i, j)] = true
		}
	}
	if len(lines) != len(want) {
		t.Fatalf("reader got %d lines, want %d: %q", len(lines), len(want), got)
	}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("unexpected or repeated line %q", l)
		}
		delete(want, l)
	}
}
