package computetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rackfork/rack/backend"
)

// InProcess returns a HarnessMaker for computes that call StartRequest.Run
// in the test's own process, such as backend/inproc and wrappers around it.
// makeCompute returns a new, empty compute each time it is called.
//
// Its requests carry only Namespace, PID, Name and Run; Run records its
// start and end in counters kept by name. An ExitAtOnce Run returns at
// once; a RunUntilStopped Run returns when its context is cancelled.
func InProcess(makeCompute func(ctx context.Context) (backend.Compute, error)) HarnessMaker {
	return func(ctx context.Context, t testing.TB) (Harness, error) {
		return &inProcess{
			makeCompute: makeCompute,
			probes:      make(map[string]*probe),
		}, nil
	}
}

// inProcess is the Harness made by InProcess.
type inProcess struct {
	makeCompute func(ctx context.Context) (backend.Compute, error)

	mu     sync.Mutex
	probes map[string]*probe
}

// probe counts the runs of one name.
type probe struct {
	started, ended atomic.Int64
}

func (h *inProcess) MakeCompute(ctx context.Context) (backend.Compute, error) {
	return h.makeCompute(ctx)
}

func (h *inProcess) probe(name string) *probe {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.probes[name]
	if p == nil {
		p = new(probe)
		h.probes[name] = p
	}
	return p
}

func (h *inProcess) Request(t testing.TB, namespace, name string, pid int64, b Behaviour) *backend.StartRequest {
	p := h.probe(name)
	var run func(context.Context)
	switch b {
	case ExitAtOnce:
		run = func(context.Context) {
			p.started.Add(1)
			p.ended.Add(1)
		}
	case RunUntilStopped:
		run = func(ctx context.Context) {
			p.started.Add(1)
			defer p.ended.Add(1)
			<-ctx.Done()
		}
	default:
		t.Errorf("computetest: InProcess: unknown behaviour %v", b)
		return nil
	}
	return &backend.StartRequest{Namespace: namespace, PID: pid, Name: name, Run: run}
}

func (h *inProcess) Observe(ctx context.Context, name string) (Observation, error) {
	h.mu.Lock()
	p := h.probes[name]
	h.mu.Unlock()
	if p == nil {
		return Observation{}, nil
	}
	// Load ended first so that a run ending between the loads cannot make
	// Ended exceed Started.
	ended := p.ended.Load()
	return Observation{Started: int(p.started.Load()), Ended: int(ended)}, nil
}

func (h *inProcess) Close() {}
