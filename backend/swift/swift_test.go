package swift_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/storetest"
	"github.com/rackfork/rack/backend/swift"
)

// config returns the Swift to test against, or skips (fails when
// RACK_REQUIRE_SWIFT=1) when SWIFT_AUTH_URL is unset.
func config(tb testing.TB) swift.Config {
	tb.Helper()
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			tb.Fatal("Swift required but SWIFT_AUTH_URL unset (start one with scripts/swift-saio.sh)")
		}
		tb.Skip("SWIFT_AUTH_URL unset; start Swift with scripts/swift-saio.sh and source its swift.env")
	}
	cfg, err := swift.FromEnv()
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func open(tb testing.TB, cfg swift.Config) *swift.Store {
	tb.Helper()
	s, err := swift.New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

type harness struct{ cfg swift.Config }

func (h harness) MakeStore(ctx context.Context) (backend.Store, error) { return swift.New(ctx, h.cfg) }
func (harness) Close()                                                 {}

func TestConformance(t *testing.T) {
	cfg := config(t)
	storetest.Run(t, func(context.Context, *testing.T) (storetest.Harness, error) { return harness{cfg}, nil })
}

// container makes a fresh container, removed (with its objects) at the end.
func container(t *testing.T, s *swift.Store) string {
	t.Helper()
	ctx := context.Background()
	c := fmt.Sprintf("rack-swifttest-%d-%d", time.Now().UnixNano(), seq.Add(1))
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, cc := range []string{c, c + "_segments"} {
			for range 100 {
				page, err := s.List(ctx, cc, backend.ListOptions{})
				if err != nil || len(page) == 0 {
					break
				}
				for _, o := range page {
					s.Delete(ctx, cc, o.Name)
				}
			}
			s.DeleteContainer(ctx, cc)
		}
	})
	return c
}

var seq atomic.Int64

// countingTransport counts requests.
type countingTransport struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestBadCredentials(t *testing.T) {
	cfg := config(t)
	cfg.Key = "wrong-key-s3cr3t"
	ct := &countingTransport{base: http.DefaultTransport}
	cfg.Transport = ct
	start := time.Now()
	_, err := swift.New(context.Background(), cfg)
	d := time.Since(start)
	if !errors.Is(err, swift.ErrAuth) {
		t.Fatalf("New with a wrong key: %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), cfg.Key) {
		t.Fatalf("error contains the key: %v", err)
	}
	if !strings.Contains(err.Error(), cfg.User) {
		t.Errorf("error does not name the user: %v", err)
	}
	// ncw/swift tries v1 auth twice (alternate request forms); no retry storm.
	if n := ct.n.Load(); n > 2 || d > 2*time.Second {
		t.Fatalf("New with a wrong key took %v and %d requests", d, n)
	}
	t.Logf("%v in %v, %d requests", err, d, ct.n.Load())
}

func TestUnreachable(t *testing.T) {
	cfg := swift.Config{AuthURL: "http://127.0.0.1:1/auth/v1.0", User: "u:v", Key: "k"}
	start := time.Now()
	_, err := swift.New(context.Background(), cfg)
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("New against a closed port: %v", err)
	}
	if !errors.Is(err, backend.ErrTransient) {
		t.Errorf("error %v does not wrap ErrTransient", err)
	}
	if d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	t.Logf("%v in %v", err, d)
}

func TestMissingContainerClear(t *testing.T) {
	cfg := config(t)
	ct := &countingTransport{base: http.DefaultTransport}
	cfg.Transport = ct
	s := open(t, cfg)
	ctx := context.Background()
	ct.n.Store(0)
	missing := fmt.Sprintf("rack-swifttest-missing-%d", time.Now().UnixNano())
	_, err := s.Put(ctx, missing, "obj", strings.NewReader("x"), nil)
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Put into a missing container: %v", err)
	}
	_, err = s.List(ctx, missing, backend.ListOptions{})
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("List of a missing container: %v", err)
	}
	_, err = s.Head(ctx, missing, "obj")
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), missing+"/obj") {
		t.Fatalf("Head in a missing container: %v", err)
	}
	if n := ct.n.Load(); n != 3 {
		t.Errorf("%d requests for 3 calls: 404s must not be retried", n)
	}
}

// slowReader returns data in small pieces with a pause before each.
type slowReader struct {
	data  []byte
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	n := copy(p[:min(len(p), 1024)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestCreateOnlyRaceSlowBodies(t *testing.T) {
	s := open(t, config(t))
	c := container(t, s)
	ctx := context.Background()
	for round := range 3 {
		name := fmt.Sprintf("contested-%d", round)
		const writers = 50
		errs := make([]error, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				data := bytes.Repeat([]byte(fmt.Sprintf("writer %02d|", i)), 2000) // 20 KB
				_, errs[i] = s.Put(ctx, c, name, &slowReader{data: data, pause: time.Millisecond}, &backend.PutOptions{CreateOnly: true})
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		var winner int
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				winner = i
			case errors.Is(err, backend.ErrTransient) && strings.Contains(err.Error(), "server closed idle connection"):
				// Go's transport sent it on a pooled connection the
				// server had closed (the request was not served), and
				// replays only GET-like requests; the kernel's retry
				// layer tries it again. Out of this race (seen in CI).
			case !errors.Is(err, backend.ErrExist):
				t.Errorf("writer %d: %v", i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d of %d create-only Puts succeeded, want exactly 1", round, winners, writers)
		}
		rc, _, err := s.Get(ctx, c, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if want := fmt.Sprintf("writer %02d|", winner); !bytes.HasPrefix(got, []byte(want)) {
			t.Fatalf("round %d: stored content starts %q, the winner was %d", round, got[:12], winner)
		}
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	s := open(t, config(t))
	c := container(t, s)
	ctx := context.Background()
	md := map[string]string{
		"utf8":       "café ☕ 漢字",
		"percent":    "100% sure, %41 is not A",
		"spaces":     "  leading and trailing  ",
		"control":    "tab\there\nnewline",
		"plain":      "just ascii",
		"empty":      "",
		"rack-owner": "pid-42",
	}
	if _, err := s.Put(ctx, c, "o", strings.NewReader("x"), &backend.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	h, err := s.Head(ctx, c, "o")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(h.Metadata, md) {
		t.Fatalf("Head metadata %q, want %q", h.Metadata, md)
	}
	rc, g, err := s.Get(ctx, c, "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if !maps.Equal(g.Metadata, md) {
		t.Fatalf("Get metadata %q, want %q", g.Metadata, md)
	}
	// Too long once encoded: 200 bytes of 2-byte runes are 600 encoded.
	_, err = s.Put(ctx, c, "o2", strings.NewReader("x"), &backend.PutOptions{Metadata: map[string]string{"k": strings.Repeat("é", 100)}})
	if !errors.Is(err, backend.ErrInvalid) {
		t.Fatalf("Put with a value over Swift's limit once encoded: %v", err)
	}
}

// patternReader yields n pseudo-random bytes of unknown length.
type patternReader struct {
	n, off int64
	x      uint64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	m := min(int64(len(p)), r.n-r.off)
	for i := range p[:m] {
		r.x ^= r.x << 13
		r.x ^= r.x >> 7
		r.x ^= r.x << 17
		p[i] = byte(r.x)
	}
	r.off += m
	return int(m), nil
}

func TestLargeObjectBoundedMemory(t *testing.T) {
	cfg := config(t)
	cfg.SegmentSize = 8 << 20
	s := open(t, cfg)
	c := container(t, s)
	ctx := context.Background()
	const size = 200 << 20

	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	h := sha256.New()
	start := time.Now()
	info, err := s.Put(ctx, c, "big", io.TeeReader(&patternReader{n: size, x: 88172645463325252}, h), nil)
	if err != nil {
		t.Fatal(err)
	}
	putTime := time.Since(start)
	if info.Size != size {
		t.Errorf("Put Size %d", info.Size)
	}
	want := h.Sum(nil)
	hi, err := s.Head(ctx, c, "big")
	if err != nil || hi.Size != size {
		t.Fatalf("Head: %+v, %v", hi, err)
	}
	start = time.Now()
	rc, _, err := s.Get(ctx, c, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, err := io.Copy(h, rc)
	rc.Close()
	getTime := time.Since(start)
	close(done)
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("Get: %d bytes, %v, checksum equal %v", n, err, bytes.Equal(h.Sum(nil), want))
	}
	// A range across a segment boundary.
	rc, _, err = s.Get(ctx, c, "big", &backend.GetOptions{Offset: 8<<20 - 10, Length: 20})
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rc)
	rc.Close()
	pr := &patternReader{n: 8<<20 + 10, x: 88172645463325252}
	all, _ := io.ReadAll(pr)
	if !bytes.Equal(part, all[8<<20-10:]) {
		t.Fatalf("range across segments differs")
	}
	grown := int64(peak.Load()) - int64(base)
	t.Logf("200 MiB: put %v (%.0f MiB/s), get %v (%.0f MiB/s), heap growth at peak %.1f MiB",
		putTime, 200/putTime.Seconds(), getTime, 200/getTime.Seconds(), float64(grown)/(1<<20))
	// Half the object: far below keeping it whole, with room for the
	// garbage collector's slack under -race and a loaded machine (CI
	// measured 52 MiB once, 42 MiB usually).
	if grown > 100<<20 {
		t.Errorf("heap grew by %d MiB for a 200 MiB Put with 8 MiB segments", grown>>20)
	}
	segs, err := s.List(ctx, c+"_segments", backend.ListOptions{Prefix: "big/"})
	if err != nil || len(segs) != 25 {
		t.Fatalf("segments: %d, %v; want 25", len(segs), err)
	}
	if err := s.Delete(ctx, c, "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, c, "big"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Head after Delete: %v", err)
	}
	for _, sg := range segs {
		if _, err := s.Head(ctx, c+"_segments", sg.Name); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("segment %s still there after Delete: %v", sg.Name, err)
		}
	}
}

// A body of unknown length over LookAhead that fits one segment becomes a
// plain object (MD5 ETag); a create-only one over SegmentSize is an SLO.
func TestUnknownLengthPaths(t *testing.T) {
	cfg := config(t)
	cfg.SegmentSize = 2 << 20
	cfg.LookAhead = 64 << 10
	s := open(t, cfg)
	c := container(t, s)
	ctx := context.Background()
	for _, size := range []int64{100 << 10, 2 << 20, 5<<20 + 3} {
		name := fmt.Sprintf("u-%d", size)
		data, _ := io.ReadAll(&patternReader{n: size, x: uint64(size)})
		if _, err := s.Put(ctx, c, name, io.MultiReader(bytes.NewReader(data)), &backend.PutOptions{CreateOnly: true}); err != nil {
			t.Fatalf("Put %d: %v", size, err)
		}
		if _, err := s.Put(ctx, c, name, io.MultiReader(bytes.NewReader(data)), &backend.PutOptions{CreateOnly: true}); !errors.Is(err, backend.ErrExist) {
			t.Fatalf("second create-only Put %d: %v", size, err)
		}
		rc, info, err := s.Get(ctx, c, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) || info.Size != size {
			t.Fatalf("size %d: read back %d bytes, info %+v", size, len(got), info)
		}
		if err := s.Delete(ctx, c, name); err != nil {
			t.Fatal(err)
		}
	}
}

// Raw ncw/swift side by side with the Store.
func BenchmarkSwift(b *testing.B) {
	cfg := config(b)
	s := open(b, cfg)
	b.Run("Store", func(b *testing.B) { storetest.RunBenchmarks(b, s) })

	ctx := context.Background()
	conn := &sw.Connection{UserName: cfg.User, ApiKey: cfg.Key, AuthUrl: cfg.AuthURL, AuthVersion: 1}
	if err := conn.Authenticate(ctx); err != nil {
		b.Fatal(err)
	}
	c := fmt.Sprintf("rack-swiftbench-%d", time.Now().UnixNano())
	if err := conn.ContainerCreate(ctx, c, nil); err != nil {
		b.Fatal(err)
	}
	defer func() {
		names, _ := conn.ObjectNamesAll(ctx, c, nil)
		for _, n := range names {
			conn.ObjectDelete(ctx, c, n)
		}
		conn.ContainerDelete(ctx, c)
	}()
	if err := s.CreateContainer(ctx, c+"-store"); err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, n := range []string{"1k", "64m"} {
			s.Delete(ctx, c+"-store", n)
		}
		s.DeleteContainer(ctx, c+"-store")
	}()
	for _, sz := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64MiB", 64 << 20}} {
		data, _ := io.ReadAll(&patternReader{n: int64(sz.n), x: 7})
		obj := map[int]string{1 << 10: "1k", 64 << 20: "64m"}[sz.n]
		b.Run("RawPut"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for i := 0; i < b.N; i++ {
				if _, err := conn.ObjectPut(ctx, c, obj, bytes.NewReader(data), false, "", "application/octet-stream", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("RawGet"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			buf := make([]byte, 64<<10)
			for i := 0; i < b.N; i++ {
				f, _, err := conn.ObjectOpen(ctx, c, obj, false, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
		b.Run("StorePut"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for i := 0; i < b.N; i++ {
				if _, err := s.Put(ctx, c+"-store", obj, bytes.NewReader(data), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("StoreGet"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			buf := make([]byte, 64<<10)
			for i := 0; i < b.N; i++ {
				rc, _, err := s.Get(ctx, c+"-store", obj, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
