package rack_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/testkit"
)

// badCase is one bad input (see testkit.BadCase): call must fail with an
// error wrapping want whose message names every string in names.
type badCase struct {
	name  string
	call  func(ctx context.Context) error
	want  error
	names []string
}

func runBadCases(t *testing.T, cases []badCase) {
	t.Helper()
	kit := make([]testkit.BadCase, len(cases))
	for i, c := range cases {
		kit[i] = testkit.BadCase{Name: c.name, Call: c.call, Want: c.want, Names: c.names}
	}
	testkit.RunBadCases(t, 5*time.Second, kit)
}

func ioNop(context.Context, *rack.Self) error { return nil }

func TestBadOpenURL(t *testing.T) {
	var cases []badCase
	for _, u := range []string{"", "nope://x", "mem://a/b", "%zz", "mem://x?y=1", "mem://bad%00name"} {
		cases = append(cases, badCase{
			name: fmt.Sprintf("Open(%q)", u),
			call: func(ctx context.Context) error {
				k, err := rack.Open(ctx, u)
				if k != nil {
					k.Close()
					return errors.New("got a kernel")
				}
				return err
			},
			want:  rack.ErrInvalid,
			names: []string{fmt.Sprintf("%q", u)},
		})
	}
	runBadCases(t, cases)
}

func TestUseAfterClose(t *testing.T) {
	k, err := rack.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	g, err := k.NewGroup(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.Start(context.Background(), rack.Spec{Name: "sleeper"}, func(ctx context.Context, self *rack.Self) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	runBadCases(t, []badCase{
		{"Start", func(ctx context.Context) error { _, err := k.Start(ctx, rack.Spec{}, ioNop); return err }, rack.ErrClosed, nil},
		{"Processes", func(ctx context.Context) error { _, err := k.Processes(ctx); return err }, rack.ErrClosed, nil},
		{"Process", func(ctx context.Context) error { _, err := k.Process(ctx, p.PID()); return err }, rack.ErrClosed, nil},
		{"Create", func(ctx context.Context) error { _, err := k.Create(ctx, "/c/o"); return err }, rack.ErrClosed, []string{"/c/o"}},
		{"Open", func(ctx context.Context) error { _, err := k.Open(ctx, "/c/o"); return err }, rack.ErrClosed, []string{"/c/o"}},
		{"Mkfifo", func(ctx context.Context) error { return k.Mkfifo(ctx, "f") }, rack.ErrClosed, nil},
		{"NewGroup", func(ctx context.Context) error { _, err := k.NewGroup(ctx, "h"); return err }, rack.ErrClosed, nil},
		{"Signal", func(ctx context.Context) error { return p.Signal(ctx, rack.SIGTERM) }, rack.ErrClosed, nil},
		{"Group.Signal", func(ctx context.Context) error { return g.Signal(ctx, rack.SIGTERM) }, rack.ErrClosed, nil},
		{"Group.Wait", func(ctx context.Context) error { return g.Wait(ctx) }, rack.ErrClosed, nil},
		{"Group.Processes", func(ctx context.Context) error { _, err := g.Processes(ctx); return err }, rack.ErrClosed, nil},
		{"Stat", func(ctx context.Context) error { _, err := k.Stat(ctx, "/c/o"); return err }, rack.ErrClosed, []string{"/c/o"}},
		{"ReadDir", func(ctx context.Context) error { _, err := k.ReadDir(ctx, "/c"); return err }, rack.ErrClosed, []string{"/c"}},
		{"Remove", func(ctx context.Context) error { return k.Remove(ctx, "/c/o") }, rack.ErrClosed, []string{"/c/o"}},
		{"FS", func(ctx context.Context) error { _, err := fs.ReadFile(k.FS(ctx), "c/o"); return err }, rack.ErrClosed, nil},
	})
	// The process Close killed has an exit status.
	var ee *rack.ExitError
	if err := p.Wait(context.Background()); !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL {
		t.Fatalf("wait for a process killed by Close: %v", err)
	}
}

var registered atomic.Int64

func TestBadRegister(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			v := recover()
			if v == nil {
				t.Errorf("%s: no panic", name)
				return
			}
			if s := fmt.Sprint(v); !strings.Contains(s, "rack: Register") {
				t.Errorf("%s: panic %q does not say rack: Register", name, s)
			}
		}()
		f()
	}
	mustPanic("empty name", func() { rack.Register("", ioNop) })
	mustPanic("name with /", func() { rack.Register("a/b", ioNop) })
	mustPanic("nil program", func() { rack.Register("input-test-nil", nil) })
	name := fmt.Sprintf("input-test-%d", registered.Add(1)) // unique with -count
	rack.Register(name, ioNop)
	mustPanic("duplicate", func() { rack.Register(name, ioNop) })
	// The registered program can be started by name.
	ctx := ioCtx(t, 10*time.Second)
	k := ioKernel(t)
	p, err := k.Start(ctx, rack.Spec{Program: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil || p.Name() != name {
		t.Fatalf("registered program %s: name %q, wait %v", name, p.Name(), err)
	}
}

// A key in a URL never reaches an error message.
func TestOpenErrorsHideKeys(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"swift+v1://user:s3cret-key@127.0.0.1:1/",            // no container
		"swift+v1://user:s3cret-key@127.0.0.1:1/c?bad=1",     // unknown option
		"swift+v1://user:s3cret-key@127.0.0.1:1/c%zz",        // malformed
		"swift+v1://user:s3cret-key@127.0.0.1:1/c?compute=x", // unsupported compute
		"nope://user:s3cret-key@host/c",
		"swift://user:s3cret-key@mycloud/c",           // credentials belong in clouds.yaml
		"swift://no-such-cloud/c",                     // no such cloud
		"file://user:s3cret-key@/tmp/rack-never-made", // file URLs take no user info
		"file://user@/tmp/rack-never-made",
	} {
		k, err := rack.Open(ctx, u)
		if err == nil {
			k.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open error leaks the key: %v", err)
		}
		if !errors.Is(err, rack.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", u, err)
		}
	}
}
