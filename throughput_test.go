package rack_test

import (
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// BenchmarkPipeThroughput streams from a child to its parent through a pipe
// on mem://, in 32 KiB writes (io.Copy's size), and reports bytes/s.
func BenchmarkPipeThroughput(b *testing.B) {
	const size = 256 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k, err := rack.Open(ctx, "mem://")
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		root, err := k.Start(ctx, rack.Spec{Name: "bench"}, func(ctx context.Context, self *rack.Self) error {
			if self.PPID() != rack.InitPID {
				buf := make([]byte, 32<<10)
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := self.Stdout().Write(buf); err != nil {
						return err
					}
				}
				return nil
			}
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			child, err := self.Fork(ctx, rack.Spec{Stdout: w, Args: []string{"writer"}})
			if err != nil {
				return err
			}
			w.Close()
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				return err
			}
			if n != size {
				b.Errorf("read %d bytes, want %d", n, size)
			}
			return child.Wait(ctx)
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := root.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileThroughput writes and reads back a 64 MiB rack file.
func BenchmarkFileThroughput(b *testing.B) {
	const size = 64 << 20
	ctx := context.Background()
	k, err := rack.Open(ctx, "mem://")
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := k.Create(ctx, "/bench/file")
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < size; n += len(buf) {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		g, err := k.Open(ctx, "/bench/file")
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if n, err := io.Copy(h, g); err != nil || n != size {
			b.Fatal(n, err)
		}
		g.Close()
	}
}
