package rack_test

import (
	"context"
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
