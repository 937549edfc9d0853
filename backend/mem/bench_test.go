package mem

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// Benchmarks specific to the in-memory store; mem_test.go runs the
// driver-neutral storetest.RunBenchmarks.

func benchStore(b *testing.B, opts ...Option) *Store {
	b.Helper()
	s := New(opts...)
	b.Cleanup(func() { s.Close() })
	mustCreate(b, s, "c")
	return s
}

func BenchmarkHeadParallel(b *testing.B) {
	s := benchStore(b)
	mustPut(b, s, "c", "obj", []byte("x"), &backend.PutOptions{Metadata: map[string]string{"k": "v"}})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Head(ctx, "c", "obj"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkHeadMissing(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Head(ctx, "c", "missing"); err == nil {
			b.Fatal("found")
		}
	}
}

func BenchmarkPutGetSmallParallel(b *testing.B) {
	s := benchStore(b)
	data := bytes.Repeat([]byte("p"), 128)
	b.ReportAllocs()
	b.SetBytes(2 * int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		r := bytes.NewReader(data)
		buf := make([]byte, 256)
		name := fmt.Sprintf("obj-%p", r)
		for pb.Next() {
			r.Reset(data)
			if _, err := s.Put(ctx, "c", name, r, nil); err != nil {
				b.Error(err)
				return
			}
			rc, _, err := s.Get(ctx, "c", name, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.ReadFull(rc, buf)
			rc.Close()
		}
	})
}

// BenchmarkChangedPutWake is the notify path of a waiter: register, change,
// receive.
func BenchmarkChangedPutWake(b *testing.B) {
	s := benchStore(b)
	data := []byte("x")
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch := s.Changed("c", "proc/1/")
		r.Reset(data)
		if _, err := s.Put(ctx, "c", "proc/1/exit", r, nil); err != nil {
			b.Fatal(err)
		}
		<-ch
	}
}

// BenchmarkPutWithManyWatchers puts a deep name while 10,000 unrelated keys
// are watched: the cost must not depend on the watcher count.
func BenchmarkPutWithManyWatchers(b *testing.B) {
	s := benchStore(b)
	for i := range 10000 {
		s.Changed("c", fmt.Sprintf("w/%d/", i))
	}
	data := []byte("x")
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(data)
		if _, err := s.Put(ctx, "c", "a/b/c/d/e/f", r, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPutSmallListLag(b *testing.B) {
	s := benchStore(b, WithListLag(time.Millisecond))
	data := bytes.Repeat([]byte("l"), 128)
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(data)
		if _, err := s.Put(ctx, "c", "obj", r, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPut1MiBUnknownLength(b *testing.B) {
	s := benchStore(b)
	data := bytes.Repeat([]byte("u"), chunkSize)
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(data)
		if _, err := s.Put(ctx, "c", "obj", unknownLength{r}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetRange4KiB(b *testing.B) {
	s := benchStore(b)
	mustPut(b, s, "c", "big", bytes.Repeat([]byte("g"), 8*chunkSize), nil)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(i%2000) * 4096
		rc, _, err := s.Get(ctx, "c", "big", &backend.GetOptions{Offset: off, Length: 4096})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// BenchmarkPutNewNameLargeContainer measures index insertion in a container
// of 100,000 objects.
func BenchmarkPutNewNameLargeContainer(b *testing.B) {
	s := benchStore(b)
	for i := range 100000 {
		mustPut(b, s, "c", fmt.Sprintf("base-%07d", i*2), nil, nil)
	}
	names := make([]string, b.N)
	for i := range names {
		names[i] = fmt.Sprintf("base-%07d", (i*7919)%200000|1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Put(ctx, "c", names[i], bytes.NewReader(nil), nil); err != nil {
			b.Fatal(err)
		}
	}
}
