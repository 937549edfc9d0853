// Package testkit holds the helpers that rack's end-to-end suite
// (racktest) and the root package's own tests share: a root process whose
// children run roles, bounded waits, bad-input cases, deterministic data.
package testkit

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

// Roles is one program made of roles: a process runs the role its first
// argument names. Forked children run the same program (fork semantics),
// so a test forks a role by passing its name as Args[0].
type Roles map[string]rack.Program

// Root starts a root process running roles and hands its self handle to
// the test, which forks from it. The root lives until the test ends.
func Root(t testing.TB, ctx context.Context, k *rack.Kernel, roles Roles) *rack.Self {
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

// Context returns a context that ends after d, so that a bug fails the
// test instead of hanging it.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Run starts prog as a root process with args and waits for it.
func Run(ctx context.Context, t testing.TB, k *rack.Kernel, prog rack.Program, args ...string) error {
	t.Helper()
	p, err := k.Start(ctx, rack.Spec{Name: "root", Args: args}, prog)
	if err != nil {
		t.Fatalf("start root: %v", err)
	}
	return p.Wait(ctx)
}

// Arg returns the process's i-th argument, or "".
func Arg(self *rack.Self, i int) string {
	if a := self.Args(); i < len(a) {
		return a[i]
	}
	return ""
}

// Data returns a deterministic pseudo-random stream of n bytes.
func Data(seed byte, n int64) io.Reader {
	var s [32]byte
	s[0] = seed
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// Sum returns the SHA-256 of a stream.
func Sum(t testing.TB, r io.Reader) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// Name returns a namespace name for the test: its name in lower-case
// letters, digits and '-' (at most 100 bytes), then '-' and the moment.
func Name(t testing.TB) string {
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
	return name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// BadCase is one bad input: Call must fail with an error wrapping Want
// whose message contains every string in Names, without panicking or
// hanging.
type BadCase struct {
	Name  string
	Call  func(ctx context.Context) error
	Want  error
	Names []string
}

// RunBadCases runs each case as a subtest of t, with a context of timeout
// (a case still running a fifth longer has hung).
func RunBadCases(t *testing.T, timeout time.Duration, cases []BadCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				defer func() {
					if v := recover(); v != nil {
						done <- fmt.Errorf("panic: %v", v)
					}
				}()
				done <- tc.Call(ctx)
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(timeout + timeout/5):
				t.Fatal("hung")
			}
			if err == nil {
				t.Fatalf("no error; want one wrapping %v", tc.Want)
			}
			if strings.HasPrefix(err.Error(), "panic: ") {
				t.Fatal(err)
			}
			t.Log(err)
			if !errors.Is(err, tc.Want) {
				t.Errorf("error %q does not wrap %v", err, tc.Want)
			}
			for _, n := range tc.Names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %q", err, n)
				}
			}
		})
	}
}
