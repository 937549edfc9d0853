package rack_test

import (
	"context"
	"testing"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/racktest"
)

// TestSuite runs the end-to-end suite (racktest) on in-memory namespaces,
// opened by URL: mem:// for a private one, mem://NAME for one that several
// kernels share. racktest's own tests run it on local files and on Swift.
func TestSuite(t *testing.T) {
	racktest.Run(t, racktest.Harness{
		Open: func(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error) {
			return rack.Open(ctx, "mem://t-"+name, opts...)
		},
		OpenPrivate: func(ctx context.Context, t testing.TB, opts ...rack.Option) (*rack.Kernel, error) {
			return rack.Open(ctx, "mem://", opts...)
		},
		ManyProcesses: true,
	})
}
