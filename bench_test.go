package rack_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

func nopRoles() pgRoles {
	return pgRoles{"nop": func(context.Context, *rack.Self) error { return nil }}
}

// BenchmarkForkWait forks an empty child from one root process on mem://
// and waits for it.
func BenchmarkForkWait(b *testing.B) {
	ctx := pgCtx(b, 10*time.Minute)
	k := pgKernel(b)
	self := pgRoot(b, ctx, k, nopRoles())
	spec := rack.Spec{Args: []string{"nop"}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		c, err := self.Fork(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "forks/s")
}

// BenchmarkForkWaitParallel forks and waits from GOMAXPROCS goroutines of
// one root process.
func BenchmarkForkWaitParallel(b *testing.B) {
	ctx := pgCtx(b, 10*time.Minute)
	k := pgKernel(b)
	self := pgRoot(b, ctx, k, nopRoles())
	spec := rack.Spec{Args: []string{"nop"}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := self.Fork(ctx, spec)
			if err != nil {
				b.Error(err)
				return
			}
			if err := c.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "forks/s")
}

// forkAllPipe forks n children from self that each write one line to a
// pipe they share (or, with pipe false, to the console), reads the pipe to
// EOF and waits for them all.
func forkAllPipe(ctx context.Context, b *testing.B, self *rack.Self, n int, pipe bool) {
	specs := make([]rack.Spec, n)
	var r *rack.PipeReader
	var w *rack.PipeWriter
	if pipe {
		var err error
		if r, w, err = self.Pipe(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for i := range specs {
		specs[i] = rack.Spec{Args: []string{"line"}}
		if pipe {
			specs[i].Stdout = w
		}
	}
	kids, err := self.ForkAll(ctx, specs)
	if err != nil {
		b.Fatal(err)
	}
	if pipe {
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(r)
		lines := 0
		for sc.Scan() {
			lines++
		}
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
		if lines != n {
			b.Fatalf("read %d lines from %d children", lines, n)
		}
	}
	for _, c := range kids {
		if err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForkAllPipe forks N children on mem:// that share one pipe
// writer, each writing one line, and reads the pipe to EOF; "nopipe" forks
// as many with no pipe. Its ns/child should not grow with N.
//
//	go test -run '^$' -bench 'ForkAllPipe' -benchtime 1x .
func BenchmarkForkAllPipe(b *testing.B) {
	roles := pgRoles{"line": func(ctx context.Context, self *rack.Self) error {
		_, err := fmt.Fprintln(self.Stdout(), "a line")
		return err
	}}
	for _, n := range []int{1000, 2000, 10000, 100000} {
		for _, pipe := range []bool{false, true} {
			name := fmt.Sprintf("N=%d/nopipe", n)
			if pipe {
				name = fmt.Sprintf("N=%d/pipe", n)
			}
			b.Run(name, func(b *testing.B) {
				ctx := pgCtx(b, 10*time.Minute)
				k := pgKernel(b)
				self := pgRoot(b, ctx, k, roles)
				b.ResetTimer()
				start, cpu := time.Now(), cpuTime()
				for i := 0; i < b.N; i++ {
					forkAllPipe(ctx, b, self, n, pipe)
				}
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/child")
				// CPU time does not depend on what else the machine runs.
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*n), "cpu-ns/child")
			})
		}
	}
}

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFileForkAllPipe forks N OS-process children (file://) with one
// ForkAll, each printing one line, with or without a pipe they share, and
// reads the pipe to EOF. fork-ns/child is the time ForkAll takes per child
// (the children start after), which a shared pipe should not change much;
// fork-cpu-ns/child is the CPU time this process spent meanwhile, which a
// busy machine does not inflate as it does the wall time (the children
// have not started: it is ForkAll's own work); ns/child runs to the last
// child's exit. N is 100, or
// RACK_BENCH_CHILDREN: 1,000 OS processes at once need a machine of their
// own (each is a copy of the test binary).
//
//	RACK_BENCH_CHILDREN=1000 go test -run '^$' -bench FileForkAllPipe -benchtime 1x .
func BenchmarkFileForkAllPipe(b *testing.B) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("RACK_BENCH_CHILDREN")); err == nil && v > 0 {
		n = v
	}
	for _, pipe := range []bool{false, true} {
		name := "nopipe"
		if pipe {
			name = "pipe"
		}
		b.Run(name, func(b *testing.B) {
			ctx := pgCtx(b, 10*time.Minute)
			k := pgOpen(b, "file://"+b.TempDir())
			var forked, forkCPU time.Duration
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				p, err := k.Start(ctx, rack.Spec{Name: "bench-root"}, func(ctx context.Context, self *rack.Self) error {
					specs := make([]rack.Spec, n)
					var r *rack.PipeReader
					var w *rack.PipeWriter
					if pipe {
						var err error
						if r, w, err = self.Pipe(ctx); err != nil {
							return err
						}
					}
					for i := range specs {
						specs[i] = rack.Spec{Program: "os-child", Args: []string{"ok"}}
						if pipe {
							specs[i].Stdout = w
						}
					}
					t0, c0 := time.Now(), cpuTime()
					kids, err := self.ForkAll(ctx, specs)
					forked += time.Since(t0)
					forkCPU += cpuTime() - c0
					if err != nil {
						return err
					}
					if pipe {
						w.Close()
						sc := bufio.NewScanner(r)
						lines := 0
						for sc.Scan() {
							lines++
						}
						if lines != n {
							return fmt.Errorf("read %d lines from %d children: %v", lines, n, sc.Err())
						}
					}
					for _, c := range kids {
						if err := c.Wait(ctx); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/child")
			b.ReportMetric(float64(forked.Nanoseconds())/float64(b.N*n), "fork-ns/child")
			b.ReportMetric(float64(forkCPU.Nanoseconds())/float64(b.N*n), "fork-cpu-ns/child")
		})
	}
}
