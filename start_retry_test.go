package rack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// failingCompute fails every Start with ErrTransient and counts them.
type failingCompute struct {
	backend.Compute
	starts atomic.Int64
}

func (f *failingCompute) InProcess() bool { return true }

func (f *failingCompute) Start(_ context.Context, req *backend.StartRequest) (backend.Instance, error) {
	f.starts.Add(1)
	return backend.Instance{}, fmt.Errorf("start %s: refused: %w", req.Name, backend.ErrTransient)
}

// retryingCompute is a failingCompute that owns its Start's attempts.
type retryingCompute struct{ failingCompute }

func (*retryingCompute) RetriesStart() bool { return true }

// TestStartRetriesOwnedOnce: the kernel retries a compute's failing Start
// the policy's attempts, unless the compute retries Start itself
// (backend.StartRetrier, as backend/nova does): then it calls it once, so
// that the attempts do not multiply.
func TestStartRetriesOwnedOnce(t *testing.T) {
	const attempts = 4
	for _, tc := range []struct {
		name    string
		compute interface {
			backend.Compute
			count() int64
		}
		want int64
	}{
		{"single-shot compute", &countingFailing{&failingCompute{Compute: inproc.New()}}, attempts},
		{"StartRetrier", &countingRetrying{&retryingCompute{failingCompute{Compute: inproc.New()}}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			k, err := rack.New(ctx, mem.New(), tc.compute,
				rack.WithRetry(attempts, time.Millisecond, 2*time.Millisecond),
				rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			p, err := k.Start(ctx, rack.Spec{Name: "never"}, func(context.Context, *rack.Self) error { return nil })
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := p.Wait(wctx); !errors.Is(err, rack.ErrLost) {
				t.Fatalf("Wait: %v, want ErrLost", err)
			}
			if n := tc.compute.count(); n != tc.want {
				t.Errorf("%d Starts, want %d", n, tc.want)
			}
		})
	}
}

type countingFailing struct{ *failingCompute }

func (c *countingFailing) count() int64 { return c.starts.Load() }

type countingRetrying struct{ *retryingCompute }

func (c *countingRetrying) count() int64 { return c.starts.Load() }
