package retry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/retry"
)

// hanging is a store whose requests hang (until their context ends) while
// hangs is positive, one request per count, as a server that accepts a
// connection and never answers.
type hanging struct {
	backend.Store
	hangs atomic.Int32
	heads atomic.Int32
	gets  atomic.Int32
	// bodyHang: a Get's body delivers bodyHang-1 bytes, then hangs once
	// (0: none).
	bodyHang atomic.Int32
	// trickle: a Get's body delivers one byte per Read, trickle apart.
	trickle time.Duration
}

func (h *hanging) hang(ctx context.Context) error {
	if h.hangs.Add(-1) >= 0 {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	return nil
}

func (h *hanging) Head(ctx context.Context, c, n string) (backend.ObjectInfo, error) {
	h.heads.Add(1)
	if err := h.hang(ctx); err != nil {
		return backend.ObjectInfo{}, err
	}
	return h.Store.Head(ctx, c, n)
}

func (h *hanging) Get(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	h.gets.Add(1)
	if err := h.hang(ctx); err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	rc, info, err := h.Store.Get(ctx, c, n, o)
	if err != nil {
		return rc, info, err
	}
	if left := h.bodyHang.Swap(0); left > 0 {
		rc = &hangingBody{ReadCloser: rc, ctx: ctx, left: int(left - 1)}
	} else if h.trickle > 0 {
		rc = &tricklingBody{ReadCloser: rc, every: h.trickle}
	}
	return rc, info, nil
}

// hangingBody delivers left bytes, then hangs until its context ends.
type hangingBody struct {
	io.ReadCloser
	ctx  context.Context
	left int
}

func (b *hangingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		<-b.ctx.Done()
		return 0, context.Cause(b.ctx)
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= n
	return n, err
}

// tricklingBody delivers one byte per Read, every apart.
type tricklingBody struct {
	io.ReadCloser
	every time.Duration
}

func (b *tricklingBody) Read(p []byte) (int, error) {
	time.Sleep(b.every)
	if len(p) > 1 {
		p = p[:1]
	}
	return b.ReadCloser.Read(p)
}

// TestRequestTimeoutAbandonsHungRequest: a request that never answers is
// abandoned after the request timeout and tried again, as a transient
// failure; one whose body stops mid-way is resumed where it stopped.
func TestRequestTimeoutAbandonsHungRequest(t *testing.T) {
	ctx := context.Background()
	inner := &hanging{Store: mem.New()}
	s := retry.Wrap(inner, retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 2 * time.Millisecond, RequestTimeout: 50 * time.Millisecond})
	_ = s.CreateContainer(ctx, "c")
	data := bytes.Repeat([]byte("abcdefghij"), 100)
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	inner.hangs.Store(2)
	if _, err := s.Head(ctx, "c", "o"); err != nil {
		t.Fatalf("head after two hung tries: %v", err)
	}
	if got := inner.heads.Load(); got != 3 {
		t.Fatalf("%d HEADs, want 3 (two abandoned)", got)
	}
	// All tries hang: the operation fails, transient, naming the timeout.
	inner.hangs.Store(100)
	_, err := s.Head(ctx, "c", "o")
	if !errors.Is(err, backend.ErrTransient) || !strings.Contains(err.Error(), "request timeout") {
		t.Fatalf("head against a store that never answers: %v", err)
	}
	inner.hangs.Store(0)
	// A body that hangs after 300 bytes is resumed at byte 300.
	inner.bodyHang.Store(301)
	rc, _, err := s.Get(ctx, "c", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (want %d), err %v", len(got), len(data), err)
	}
}

// TestSlowDownloadNotCut: a download that keeps delivering is never cut,
// though it takes many times the request timeout in all.
func TestSlowDownloadNotCut(t *testing.T) {
	ctx := context.Background()
	inner := &hanging{Store: mem.New(), trickle: 20 * time.Millisecond}
	s := retry.Wrap(inner, retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 2 * time.Millisecond, RequestTimeout: 500 * time.Millisecond})
	_ = s.CreateContainer(ctx, "c")
	data := []byte(strings.Repeat("x", 60)) // 60 Reads 20 ms apart: over 1 s
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(ctx, "c", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	if n := inner.gets.Load(); n != 1 {
		t.Fatalf("%d GETs, want 1: a moving download was cut", n)
	}
}

// TestSlowCallerBodyNotCut: a Put waits for its caller's body as long as it
// takes (a file written slowly): only the store's own silence counts.
func TestSlowCallerBodyNotCut(t *testing.T) {
	ctx := context.Background()
	s := retry.Wrap(mem.New(), retry.Policy{Attempts: 1, RequestTimeout: 50 * time.Millisecond, Buffer: -1})
	_ = s.CreateContainer(ctx, "c")
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 4; i++ {
			time.Sleep(100 * time.Millisecond)
			_, _ = pw.Write([]byte("slow "))
		}
		pw.Close()
	}()
	if _, err := s.Put(ctx, "c", "o", pr, nil); err != nil {
		t.Fatalf("put of a slowly written body: %v", err)
	}
}

// TestBudgetBoundsTimeAndMarksDown: with a Budget (and no Attempts), an
// operation retries until the Budget is spent, however many attempts that
// takes; it then marks the store down, so the next operation is tried
// once, until a request succeeds.
func TestBudgetBoundsTimeAndMarksDown(t *testing.T) {
	ctx := context.Background()
	inner := &ambiguous{Store: mem.New()}
	s := retry.Wrap(inner, retry.Policy{Base: time.Millisecond, Max: 2 * time.Millisecond, Budget: 300 * time.Millisecond})
	_ = s.CreateContainer(ctx, "c")
	inner.failures.Store(1 << 30)
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("x")), nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, backend.ErrTransient) || !strings.Contains(err.Error(), "retry budget") {
			t.Fatalf("put against a failing store: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a 300 ms budget did not end the operation")
	}
	if n := inner.puts.Load(); n < 2 {
		t.Fatalf("%d PUTs: the budget allowed retries", n)
	}
	if !s.(*retry.Store).Down() {
		t.Fatal("store not marked down after an operation spent its budget")
	}
	inner.puts.Store(0)
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("x")), nil); !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("put while down: %v", err)
	}
	if n := inner.puts.Load(); n != 1 {
		t.Fatalf("%d PUTs while down, want 1", n)
	}
	// An answer clears it.
	if _, err := s.Head(ctx, "c", "missing"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("head: %v", err)
	}
	if s.(*retry.Store).Down() {
		t.Fatal("still down after the store answered")
	}
}

// vanishing answers a create-only Put after an ambiguous first try with
// ErrExist, then a Head with ErrNotFound: the object was there, and its
// reader consumed it.
type vanishing struct {
	backend.Store
	puts atomic.Int32
}

func (v *vanishing) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	switch v.puts.Add(1) {
	case 1:
		return backend.ObjectInfo{}, backend.ErrTransient
	case 2:
		return backend.ObjectInfo{}, backend.ErrExist
	}
	return v.Store.Put(ctx, c, n, r, o)
}

// TestSoleWriterDoesNotResurrect: a create-only Put marked SoleWriter that
// finds its object there and then gone takes it as consumed and does not
// put it again; unmarked, it puts it again (whose it was is unknown).
func TestSoleWriterDoesNotResurrect(t *testing.T) {
	for _, sole := range []bool{true, false} {
		ctx := context.Background()
		inner := &vanishing{Store: mem.New()}
		s := retry.Wrap(inner, fast)
		_ = s.CreateContainer(ctx, "c")
		pctx := ctx
		if sole {
			pctx = retry.SoleWriter(ctx, nil)
		}
		if _, err := s.Put(pctx, "c", "seg", bytes.NewReader([]byte("x")), &backend.PutOptions{CreateOnly: true}); err != nil {
			t.Fatalf("sole %v: %v", sole, err)
		}
		_, err := s.Head(ctx, "c", "seg")
		switch {
		case sole && !errors.Is(err, backend.ErrNotFound):
			t.Fatalf("sole writer: the consumed object was put again (head: %v, %d puts)", err, inner.puts.Load())
		case !sole && err != nil:
			t.Fatalf("unmarked: not put again: %v", err)
		}
	}
}
