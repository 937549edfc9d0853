package mem_test

import (
	"context"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/backend/storetest"
)

// harness makes private stores with opts, or the shared store named shared.
type harness struct {
	opts   []mem.Option
	shared string
}

func (h harness) MakeStore(context.Context) (backend.Store, error) {
	if h.shared != "" {
		return mem.Shared(h.shared), nil
	}
	return mem.New(h.opts...), nil
}

func (harness) Close() {}

func maker(h harness) storetest.HarnessMaker {
	return func(context.Context, *testing.T) (storetest.Harness, error) { return h, nil }
}

func TestConformance(t *testing.T) {
	storetest.Run(t, maker(harness{}))
}

func TestConformanceListLag(t *testing.T) {
	storetest.Run(t, maker(harness{opts: []mem.Option{mem.WithListLag(50 * time.Millisecond)}}))
}

func TestConformanceShared(t *testing.T) {
	storetest.Run(t, maker(harness{shared: "storetest-conformance"}))
}

func BenchmarkStore(b *testing.B) {
	s := mem.New()
	defer s.Close()
	storetest.RunBenchmarks(b, s)
}
