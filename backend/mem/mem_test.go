package mem_test

import (
	"context"
	"strings"
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

// Version ETags differ only in the tag: it changes with every Put, and Get,
// Head and List agree on it.
func TestVersionETags(t *testing.T) {
	ctx := context.Background()
	s := mem.New(mem.WithVersionETags())
	defer s.Close()
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		info, err := s.Put(ctx, "c", "o", strings.NewReader("same content"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.ETag == "" || seen[info.ETag] {
			t.Fatalf("Put %d: ETag %q is empty or repeated", i, info.ETag)
		}
		seen[info.ETag] = true
		h, err := s.Head(ctx, "c", "o")
		if err != nil || h.ETag != info.ETag {
			t.Fatalf("Head ETag %q, %v; Put said %q", h.ETag, err, info.ETag)
		}
		rc, g, err := s.Get(ctx, "c", "o", nil)
		if err != nil || g.ETag != info.ETag {
			t.Fatalf("Get ETag %q, %v; Put said %q", g.ETag, err, info.ETag)
		}
		rc.Close()
		page, err := s.List(ctx, "c", backend.ListOptions{})
		if err != nil || len(page) != 1 || page[0].ETag != info.ETag {
			t.Fatalf("List %v, %v; Put said %q", page, err, info.ETag)
		}
	}
}
