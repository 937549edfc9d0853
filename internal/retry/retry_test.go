package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/retry"
)

// ambiguous fails the first Put after applying it, like a connection reset
// after the request body was sent.
type ambiguous struct {
	backend.Store
	failures atomic.Int32
	puts     atomic.Int32
}

func (a *ambiguous) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	a.puts.Add(1)
	info, err := a.Store.Put(ctx, c, n, r, o)
	if err == nil && a.failures.Add(-1) >= 0 {
		return backend.ObjectInfo{}, backend.ErrTransient
	}
	return info, err
}

var fast = retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 5 * time.Millisecond}

func TestCreateOnlyRetryAfterAmbiguousSuccess(t *testing.T) {
	ctx := context.Background()
	inner := &ambiguous{Store: mem.New()}
	inner.failures.Store(1)
	s := retry.Wrap(inner, fast)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// Our own write went through, then failed: the retry finds it and
	// must report success, not a conflict.
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("mine")), &backend.PutOptions{CreateOnly: true}); err != nil {
		t.Fatalf("retried create-only put of our own write: %v", err)
	}
	// Someone else's object is a real conflict.
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("theirs")), &backend.PutOptions{CreateOnly: true}); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("create-only put over another writer's object: %v, want ErrExist", err)
	}
}

func TestGivesUpAndHonoursContext(t *testing.T) {
	inner := &ambiguous{Store: mem.New()}
	inner.failures.Store(1 << 30)
	s := retry.Wrap(inner, fast)
	ctx := context.Background()
	_ = s.CreateContainer(ctx, "c")
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader(nil), nil); !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("after the attempts run out: %v, want ErrTransient", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	slow := retry.Wrap(inner, retry.Policy{Attempts: 100, Base: time.Hour, Max: time.Hour})
	done := make(chan error, 1)
	go func() {
		_, err := slow.Put(cctx, "c", "o", bytes.NewReader(nil), nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled retry: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("retry ignored a cancelled context")
	}
}

// cutting cuts the body of the next Get after 1000 bytes, like a reset
// in the middle of a download.
type cutting struct {
	backend.Store
	cuts atomic.Int32
}

type cutReader struct {
	io.ReadCloser
	left int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("connection reset: %w", backend.ErrTransient)
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= n
	return n, err
}

func (c *cutting) Get(ctx context.Context, ct, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	rc, info, err := c.Store.Get(ctx, ct, n, o)
	if err == nil && c.cuts.Add(-1) >= 0 {
		rc = &cutReader{ReadCloser: rc, left: 1000}
	}
	return rc, info, err
}

func TestGetResumesACutDownload(t *testing.T) {
	ctx := context.Background()
	inner := &cutting{Store: mem.New()}
	s := retry.Wrap(inner, fast)
	_ = s.CreateContainer(ctx, "c")
	data := bytes.Repeat([]byte("0123456789"), 10000)
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	inner.cuts.Store(1)
	rc, _, err := s.Get(ctx, "c", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (want %d), err %v", len(got), len(data), err)
	}
	// A range resumes within its range.
	inner.cuts.Store(1)
	rc, _, err = s.Get(ctx, "c", "o", &backend.GetOptions{Offset: 10, Length: 5000})
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data[10:5010]) {
		t.Fatalf("range: read %d bytes, err %v", len(got), err)
	}
}

// stream hides a reader's other methods: a body that cannot be read again.
type stream struct{ r io.Reader }

func (s stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// TestStreamBuffered: a body that cannot be read again but ends within
// Policy.Buffer is held in memory and retried whole, create-only included
// (the writer token tells the retry that the object is its own); a longer
// one is tried once.
func TestStreamBuffered(t *testing.T) {
	ctx := context.Background()
	inner := &ambiguous{Store: mem.New()}
	p := fast
	p.Buffer = 64
	s := retry.Wrap(inner, p)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	short := []byte("a short body, read once from a stream")
	for _, createOnly := range []bool{false, true} {
		name := fmt.Sprintf("short-%v", createOnly)
		inner.failures.Store(1)
		inner.puts.Store(0)
		if _, err := s.Put(ctx, "c", name, stream{bytes.NewReader(short)}, &backend.PutOptions{CreateOnly: createOnly}); err != nil {
			t.Fatalf("Put of a short stream (create-only %v) after an ambiguous failure: %v", createOnly, err)
		}
		if n := inner.puts.Load(); n != 2 {
			t.Errorf("create-only %v: %d Puts, want 2", createOnly, n)
		}
		rc, _, err := s.Get(ctx, "c", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, short) {
			t.Errorf("create-only %v: stored %q, want %q", createOnly, got, short)
		}
	}
	long := bytes.Repeat([]byte("x"), 65)
	inner.failures.Store(1)
	inner.puts.Store(0)
	if _, err := s.Put(ctx, "c", "long", stream{bytes.NewReader(long)}, nil); !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Put of a stream longer than the buffer: %v, want ErrTransient (tried once)", err)
	}
	if n := inner.puts.Load(); n != 1 {
		t.Errorf("stream longer than the buffer: %d Puts, want 1", n)
	}
	// What was read ahead is sent: the object is whole.
	rc, _, err := s.Get(ctx, "c", "long", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, long) {
		t.Errorf("long stream stored %d bytes, want %d", len(got), len(long))
	}
}

// TestCallerTokenKept: a create-only Put keeps a writer token the caller
// set, and finds its own write by it.
func TestCallerTokenKept(t *testing.T) {
	ctx := context.Background()
	inner := &ambiguous{Store: mem.New()}
	s := retry.Wrap(inner, fast)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	inner.failures.Store(1)
	md := map[string]string{backend.WriterTokenKey: "my-token"}
	if _, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("x")), &backend.PutOptions{CreateOnly: true, Metadata: md}); err != nil {
		t.Fatalf("create-only Put with the caller's token: %v", err)
	}
	info, err := s.Head(ctx, "c", "o")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Metadata[backend.WriterTokenKey]; got != "my-token" {
		t.Errorf("stored token %q, want the caller's", got)
	}
}

// failingReads opens objects but cuts every read before its first byte,
// counting the opens; with flaky set, every second open fails.
type failingReads struct {
	backend.Store
	gets  atomic.Int32
	flaky bool
}

func (f *failingReads) Get(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	if f.gets.Add(1)%2 == 0 && f.flaky {
		return nil, backend.ObjectInfo{}, fmt.Errorf("open failed: %w", backend.ErrTransient)
	}
	rc, info, err := f.Store.Get(ctx, c, n, o)
	if err == nil {
		rc = &cutReader{ReadCloser: rc}
	}
	return rc, info, err
}

// TestResumeOneBudget: a download that the store keeps cutting before any
// byte arrives costs at most Policy.Attempts GETs in all, opening included
// (before, each resume ran a full retry loop of its own: about Attempts²).
func TestResumeOneBudget(t *testing.T) {
	ctx := context.Background()
	for _, flaky := range []bool{false, true} {
		inner := &failingReads{Store: mem.New(), flaky: flaky}
		p := retry.Policy{Attempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond}
		s := retry.Wrap(inner, p)
		_ = s.CreateContainer(ctx, "c")
		if _, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("hello")), nil); err != nil {
			t.Fatal(err)
		}
		rc, _, err := s.Get(ctx, "c", "o", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, backend.ErrTransient) {
			t.Errorf("flaky opens %v: Read of a download cut every time: %v, want ErrTransient", flaky, err)
		}
		rc.Close()
		if n := inner.gets.Load(); n != int32(p.Attempts) {
			t.Errorf("flaky opens %v: %d GETs for one Read, want %d (the policy's attempts)", flaky, n, p.Attempts)
		}
	}
}

// TestZeroBackoff: a policy without backoff (Base and Max 0, as
// rack.WithRetry(n, 0, 0) makes) retries without panicking.
func TestZeroBackoff(t *testing.T) {
	ctx := context.Background()
	inner := &ambiguous{Store: mem.New()}
	_ = inner.CreateContainer(ctx, "c")
	inner.failures.Store(1 << 30)
	for _, p := range []retry.Policy{{Attempts: 3}, {Attempts: 3, Max: time.Millisecond}, {Attempts: 3, Base: time.Millisecond}} {
		inner.puts.Store(0)
		s := retry.Wrap(inner, p)
		if _, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("x")), nil); !errors.Is(err, backend.ErrTransient) {
			t.Errorf("%+v: %v, want ErrTransient", p, err)
		}
		if n := inner.puts.Load(); n != 3 {
			t.Errorf("%+v: %d Puts, want 3", p, n)
		}
	}
}

// lenRecorder records whether the body of each Put tells its length and
// can be read afresh (io.ReaderAt and io.Seeker).
type lenRecorder struct {
	backend.Store
	lens     []int
	readerAt bool
}

func (l *lenRecorder) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	if v, ok := r.(interface{ Len() int }); ok {
		l.lens = append(l.lens, v.Len())
	} else {
		l.lens = append(l.lens, -1)
	}
	_, ra := r.(io.ReaderAt)
	_, sk := r.(io.Seeker)
	l.readerAt = ra && sk
	return l.Store.Put(ctx, c, n, r, o)
}

// TestBufferedBodyTellsLength: a stream held in memory to retry reaches
// the store as a body that tells its length and can be read afresh, so a
// driver need not copy it again to learn its size; and holding a small
// body costs a small buffer, not a 256 KiB chunk.
func TestBufferedBodyTellsLength(t *testing.T) {
	ctx := context.Background()
	inner := &lenRecorder{Store: mem.New()}
	// Under a request timeout too: the watched body still tells its
	// length and can be read afresh.
	timed := fast
	timed.RequestTimeout = time.Minute
	for _, p := range []retry.Policy{fast, timed} {
		s := retry.Wrap(inner, p)
		_ = s.CreateContainer(ctx, "c")
		for _, size := range []int{0, 10, 5000, 300 << 10, 1 << 20} {
			inner.lens = nil
			data := bytes.Repeat([]byte("z"), size)
			if _, err := s.Put(ctx, "c", "o", stream{bytes.NewReader(data)}, nil); err != nil {
				t.Fatal(err)
			}
			if len(inner.lens) != 1 || inner.lens[0] != size || !inner.readerAt {
				t.Errorf("%d-byte stream: body lengths %v (want [%d]), io.ReaderAt and io.Seeker %v", size, inner.lens, size, inner.readerAt)
			}
			rc, _, err := s.Get(ctx, "c", "o", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Errorf("%d-byte stream stored %d bytes", size, len(got))
			}
			chunks, n, err := retry.ReadChunks(bytes.NewReader(data), 8<<20)
			if err != nil || n != int64(size) {
				t.Fatalf("ReadChunks: %d, %v", n, err)
			}
			held := 0
			for _, c := range chunks {
				held += cap(c)
			}
			if max := 2*size + 4096; held > max {
				t.Errorf("%d bytes held in %d bytes of chunks, want at most %d", size, held, max)
			}
		}
	}
}
