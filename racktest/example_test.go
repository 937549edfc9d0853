package racktest_test

import (
	"context"
	"testing"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/racktest"
)

// A store driver's test runs the suite on its store. Here the store is
// rack's in-memory one, each name a store of its own that the kernels of
// a test share; a driver opens its own store in its place.
func ExampleRun() {
	testRack := func(t *testing.T) {
		racktest.Run(t, racktest.Harness{
			Open: func(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error) {
				store := mem.Shared("example-" + name) // the driver's store
				return rack.New(ctx, store, inproc.New(), append([]rack.Option{rack.WithNamespace(name)}, opts...)...)
			},
			ManyProcesses: true, // an in-memory store forks 100,000 processes in seconds
		})
	}
	_ = testRack // func TestRack(t *testing.T) in the driver's tests
}
