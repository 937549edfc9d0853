package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// RunBenchmarks runs benchmarks of store's common operations as
// sub-benchmarks of b, in fresh containers that it empties and deletes
// before returning. It does not close store.
func RunBenchmarks(b *testing.B, store backend.Store) {
	ctx := context.Background()
	c := fmt.Sprintf("rack-storebench-%s-%d", runID, seq.Add(1))
	if err := store.CreateContainer(ctx, c); err != nil {
		b.Fatalf("CreateContainer: %v", err)
	}
	defer removeContainer(b, store, c)

	small := bytes.Repeat([]byte("s"), 128)
	big := pattern(1<<20, 7)
	mustPut := func(b *testing.B, name string, data []byte) {
		b.Helper()
		if _, err := store.Put(ctx, c, name, bytes.NewReader(data), nil); err != nil {
			b.Fatalf("Put(%q): %v", name, err)
		}
	}
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("small-%04d", i)
	}

	b.Run("PutSmall", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(small)))
		r := bytes.NewReader(small)
		for i := 0; i < b.N; i++ {
			r.Reset(small)
			if _, err := store.Put(ctx, c, names[i%len(names)], r, nil); err != nil {
				b.Fatal(err)
			}
		}
	})

	mustPut(b, "get-small", small)
	b.Run("GetSmall", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(small)))
		buf := make([]byte, 2*len(small))
		for i := 0; i < b.N; i++ {
			rc, _, err := store.Get(ctx, c, "get-small", nil)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.ReadFull(rc, buf)
			if err != io.ErrUnexpectedEOF || n != len(small) {
				b.Fatalf("read %d bytes, %v", n, err)
			}
			rc.Close()
		}
	})

	b.Run("Head", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := store.Head(ctx, c, "get-small"); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("PutCreateOnly", func(b *testing.B) {
		b.ReportAllocs()
		b.StopTimer()
		unique := make([]string, b.N)
		for i := range unique {
			unique[i] = fmt.Sprintf("create-only-%d-%08d", b.N, i)
		}
		r := bytes.NewReader(small)
		opts := &backend.PutOptions{CreateOnly: true}
		b.StartTimer()
		for i := 0; i < b.N; i++ {
			r.Reset(small)
			if _, err := store.Put(ctx, c, unique[i], r, opts); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, n := range unique {
			store.Delete(ctx, c, n)
		}
	})

	b.Run("Put1MiB", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(big)))
		r := bytes.NewReader(big)
		for i := 0; i < b.N; i++ {
			r.Reset(big)
			if _, err := store.Put(ctx, c, "big", r, nil); err != nil {
				b.Fatal(err)
			}
		}
	})

	mustPut(b, "get-big", big)
	b.Run("Get1MiB", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 64<<10)
		b.SetBytes(int64(len(big)))
		for i := 0; i < b.N; i++ {
			rc, _, err := store.Get(ctx, c, "get-big", nil)
			if err != nil {
				b.Fatal(err)
			}
			// Read into a buffer, as most consumers do: copying to
			// io.Discard would let an io.WriterTo skip the copy.
			n, err := drain(rc, buf)
			if err != nil || n != int64(len(big)) {
				b.Fatalf("read %d bytes, %v", n, err)
			}
			rc.Close()
		}
	})

	// 1,000 objects in their own prefix, listed 100 at a time.
	lc := fmt.Sprintf("rack-storebench-%s-%d", runID, seq.Add(1))
	if err := store.CreateContainer(ctx, lc); err != nil {
		b.Fatalf("CreateContainer: %v", err)
	}
	defer removeContainer(b, store, lc)
	listed := make([]string, 1000)
	for i := range listed {
		listed[i] = fmt.Sprintf("list-%04d", i)
		if _, err := store.Put(ctx, lc, listed[i], bytes.NewReader(small), nil); err != nil {
			b.Fatalf("Put: %v", err)
		}
	}
	deadline := time.Now().Add(ConsistencyTimeout)
	for {
		page, err := store.List(ctx, lc, backend.ListOptions{Limit: 100, Marker: listed[899]})
		if err != nil {
			b.Fatalf("List: %v", err)
		}
		if len(page) == 100 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("listing still incomplete after %v", ConsistencyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Run("ListPage100", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			opts := backend.ListOptions{Limit: 100}
			if k := i % 10; k > 0 {
				opts.Marker = listed[100*k-1]
			}
			page, err := store.List(ctx, lc, opts)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) != 100 {
				b.Fatalf("page of %d entries, want 100", len(page))
			}
		}
	})
}

// drain reads r to EOF into buf, over and over, and returns the count.
func drain(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
