package rack_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// Helpers of the root tests that stay here (about one backend, or using
// export_test.go); the end-to-end suite, with its own copies, is in
// racktest. Those prefixed pg serve process tests, those prefixed io pipe
// and file tests.

// sharedMemURL returns the URL of a new in-memory namespace that several
// kernels of the test may open.
func sharedMemURL(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	if len(name) > 100 {
		name = name[:100]
	}
	return "mem://t-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

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
func pgCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pgRoles is one program made of roles: a process runs the role its first
// argument names. Forked children run the same program (fork semantics),
// so a test forks a role by passing its name as Args[0].
type pgRoles map[string]rack.Program

// pgRoot starts a root process running roles and hands its self handle to
// the test, which forks from it. The root lives until the test ends.
func pgRoot(t testing.TB, ctx context.Context, k *rack.Kernel, roles pgRoles) *rack.Self {
	t.Helper()
	selfc := make(chan *rack.Self, 1)
	release := make(chan struct{})
	prog := func(pctx context.Context, self *rack.Self) error {
		args := self.Args()
		if len(args) == 0 {
			return errors.New("no role")
		}
		if args[0] == "pg-root" {
			selfc <- self
			select {
			case <-release:
			case <-pctx.Done():
			}
			return nil
		}
		role, ok := roles[args[0]]
		if !ok {
			return fmt.Errorf("unknown role %q", args[0])
		}
		return role(pctx, self)
	}
	if _, err := k.Start(ctx, rack.Spec{Name: "root", Args: []string{"pg-root"}}, prog); err != nil {
		t.Fatalf("start root: %v", err)
	}
	t.Cleanup(func() { close(release) })
	select {
	case self := <-selfc:
		return self
	case <-ctx.Done():
		t.Fatalf("root did not start: %v", ctx.Err())
		return nil
	}
}

// ioCtx returns a context that ends after d, so a bug fails instead of
// hanging.
func ioCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

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

// ioRun starts prog as a root process with args and waits for it.
func ioRun(ctx context.Context, t *testing.T, k *rack.Kernel, prog rack.Program, args ...string) error {
	t.Helper()
	p, err := k.Start(ctx, rack.Spec{Name: "root", Args: args}, prog)
	if err != nil {
		t.Fatalf("start root: %v", err)
	}
	return p.Wait(ctx)
}

// ioArg returns the process's i-th argument, or "".
func ioArg(self *rack.Self, i int) string {
	if a := self.Args(); i < len(a) {
		return a[i]
	}
	return ""
}

// ioData returns a deterministic pseudo-random stream of n bytes.
func ioData(seed byte, n int64) io.Reader {
	var s [32]byte
	s[0] = seed
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// ioSum returns the sha256 of a stream.
func ioSum(t *testing.T, r io.Reader) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}
