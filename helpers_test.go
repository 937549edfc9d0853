package rack_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/testkit"
)

// Helpers of the root tests that stay here (about one backend, or using
// export_test.go); the end-to-end suite, with its own copies, is in
// racktest. Those prefixed pg serve process tests, those prefixed io pipe
// and file tests.

// sharedMemURL returns the URL of a new in-memory namespace that several
// kernels of the test may open.
func sharedMemURL(t testing.TB) string { return "mem://t-" + testkit.Name(t) }

// pgKernel opens a private in-memory namespace whose console is discarded,
// closed when the test ends.
func pgKernel(t testing.TB, opts ...rack.Option) *rack.Kernel {
	t.Helper()
	return pgOpen(t, "mem://", opts...)
}

// pgOpen opens url with a silent console, closed when the test ends.
func pgOpen(t testing.TB, url string, opts ...rack.Option) *rack.Kernel {
	t.Helper()
	opts = append([]rack.Option{rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard)}, opts...)
	k, err := rack.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// pgCtx bounds a test, so that a bug fails it instead of hanging it.
var pgCtx = testkit.Context

// pgRoles is one program made of roles (testkit.Roles): a process runs
// the role its first argument names.
type pgRoles = testkit.Roles

// pgRoot starts a root process running roles and hands the test its self
// handle (testkit.Root).
var pgRoot = testkit.Root

// ioCtx returns a context that ends after d, so a bug fails instead of
// hanging.
func ioCtx(t *testing.T, d time.Duration) context.Context { return testkit.Context(t, d) }

// ioKernel opens a private mem:// namespace with a silent console, closed
// at the end of the test.
func ioKernel(t *testing.T, opts ...rack.Option) *rack.Kernel {
	t.Helper()
	opts = append([]rack.Option{rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard)}, opts...)
	k, err := rack.Open(context.Background(), "mem://", opts...)
	if err != nil {
		t.Fatalf("rack.Open: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// ioRun starts prog as a root process with args and waits for it; ioArg
// returns a process's i-th argument or ""; ioData is a deterministic
// stream of n bytes; ioSum hashes a stream (package testkit).
var (
	ioRun  = testkit.Run
	ioArg  = testkit.Arg
	ioData = testkit.Data
	ioSum  = testkit.Sum
)
