package rack_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack"
)

// BenchmarkSwiftPipe puts rack pipes on a real Swift side by side with raw
// ncw/swift requests against the same Swift, in one run:
//
//	RawPut64MiB / RawPutThenGet64MiB / Pipe64MiB: throughput of one
//	64 MiB object PUT, of that PUT followed by its GET (the bytes go
//	through Swift twice, as through a pipe), and of a 64 MiB stream through
//	a pipe (child writes, parent reads).
//	RawPutGetSmall / PipeSmallMessage: a 100-byte PUT then GET vs one
//	small message from a write in one process to the read in another
//	(half a ping-pong round trip).
//
// go test -run x -bench SwiftPipe -benchtime 3x . (with Swift running)
func BenchmarkSwiftPipe(b *testing.B) {
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		b.Skip("no Swift: SWIFT_AUTH_URL unset (scripts/swift-saio.sh starts one)")
	}
	ctx := context.Background()
	conn := &sw.Connection{UserName: os.Getenv("SWIFT_USER"), ApiKey: os.Getenv("SWIFT_KEY"),
		AuthUrl: os.Getenv("SWIFT_AUTH_URL"), AuthVersion: 1}
	if err := conn.Authenticate(ctx); err != nil {
		b.Fatal(err)
	}
	c := fmt.Sprintf("rack-pipebench-%d", time.Now().UnixNano())
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
	const big = 64 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), big/16)
	small := bytes.Repeat([]byte("m"), 99)

	b.Run("RawPut64MiB", func(b *testing.B) {
		b.SetBytes(big)
		for i := 0; i < b.N; i++ {
			if _, err := conn.ObjectPut(ctx, c, "big", bytes.NewReader(data), false, "", "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RawPutThenGet64MiB", func(b *testing.B) {
		b.SetBytes(big)
		buf := make([]byte, 1<<20)
		for i := 0; i < b.N; i++ {
			if _, err := conn.ObjectPut(ctx, c, "big2", bytes.NewReader(data), false, "", "", nil); err != nil {
				b.Fatal(err)
			}
			f, _, err := conn.ObjectOpen(ctx, c, "big2", false, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("RawPutGetSmall", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			name := fmt.Sprintf("small-%d", i)
			if _, err := conn.ObjectPut(ctx, c, name, bytes.NewReader(small), false, "", "", nil); err != nil {
				b.Fatal(err)
			}
			if _, err := conn.ObjectGetBytes(ctx, c, name); err != nil {
				b.Fatal(err)
			}
		}
	})

	k, err := rack.Open(ctx, fmt.Sprintf("swift+v1:///rack-pipebench-ns-%d", time.Now().UnixNano()),
		rack.WithConsole(bytes.NewReader(nil), io.Discard, io.Discard), rack.WithRecordTTL(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	b.Run("Pipe64MiB", func(b *testing.B) {
		b.SetBytes(big)
		for i := 0; i < b.N; i++ {
			root, err := k.Start(ctx, rack.Spec{Name: "pipe-bench"}, func(ctx context.Context, self *rack.Self) error {
				if len(self.Args()) > 0 {
					_, err := self.Stdout().Write(data)
					return err
				}
				r, w, err := self.Pipe(ctx)
				if err != nil {
					return err
				}
				child, err := self.Fork(ctx, rack.Spec{Args: []string{"writer"}, Stdout: w})
				if err != nil {
					return err
				}
				w.Close()
				if n, err := io.Copy(io.Discard, r); err != nil || n != big {
					return fmt.Errorf("read %d bytes: %v", n, err)
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
	})
	b.Run("PipeSmallMessage", func(b *testing.B) {
		root, err := k.Start(ctx, rack.Spec{Name: "ping"}, func(ctx context.Context, self *rack.Self) error {
			if len(self.Args()) > 0 { // echo each line back
				sc := bufio.NewScanner(self.Stdin())
				for sc.Scan() {
					if _, err := fmt.Fprintln(self.Stdout(), sc.Text()); err != nil {
						return err
					}
				}
				return sc.Err()
			}
			toR, toW, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			fromR, fromW, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			child, err := self.Fork(ctx, rack.Spec{Args: []string{"echo"}, Stdin: toR, Stdout: fromW})
			if err != nil {
				return err
			}
			fromW.Close()
			replies := bufio.NewReader(fromR)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := toW.Write(append(small[:98:98], '\n')); err != nil {
					return err
				}
				if _, err := replies.ReadString('\n'); err != nil {
					return err
				}
			}
			b.StopTimer()
			toW.Close()
			return child.Wait(ctx)
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := root.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		// One iteration is a round trip: two messages.
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(2*b.N), "ms/message")
	})
}
