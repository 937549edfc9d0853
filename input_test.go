package rack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// badCase is one bad input: call must fail with an error wrapping want
// whose message contains every string in names, without panicking or
// hanging.
type badCase struct {
	name  string
	call  func(ctx context.Context) error
	want  error
	names []string
}

func runBadCases(t *testing.T, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				defer func() {
					if v := recover(); v != nil {
						done <- fmt.Errorf("panic: %v", v)
					}
				}()
				done <- tc.call(ctx)
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(6 * time.Second):
				t.Fatal("hung")
			}
			if err == nil {
				t.Fatalf("no error; want one wrapping %v", tc.want)
			}
			if strings.HasPrefix(err.Error(), "panic: ") {
				t.Fatal(err)
			}
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			for _, n := range tc.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %q", err, n)
				}
			}
		})
	}
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

func TestBadSpec(t *testing.T) {
	k := ioKernel(t)
	k2 := ioKernel(t)
	g2, err := k2.NewGroup(context.Background(), "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	start := func(spec rack.Spec, prog rack.Program) func(context.Context) error {
		return func(ctx context.Context) error {
			p, err := k.Start(ctx, spec, prog)
			if p != nil {
				p.Kill(ctx)
				return errors.New("started a process")
			}
			return err
		}
	}
	long := strings.Repeat("n", 300)
	cases := []badCase{
		{"nil program", start(rack.Spec{}, nil), rack.ErrInvalid, []string{"program"}},
		{"unknown Spec.Program", start(rack.Spec{Program: "no-such-program"}, nil), rack.ErrInvalid, []string{"no-such-program"}},
		{"Spec.Name with /", start(rack.Spec{Name: "a/b"}, ioNop), rack.ErrInvalid, []string{"Spec.Name", "a/b"}},
		{"Spec.Name ..", start(rack.Spec{Name: ".."}, ioNop), rack.ErrInvalid, []string{"Spec.Name", `".."`}},
		{"Spec.Name .", start(rack.Spec{Name: "."}, ioNop), rack.ErrInvalid, []string{"Spec.Name"}},
		{"Spec.Name NUL", start(rack.Spec{Name: "a\x00b"}, ioNop), rack.ErrInvalid, []string{"Spec.Name", `\x00`}},
		{"Spec.Name non-UTF-8", start(rack.Spec{Name: "a\xffb"}, ioNop), rack.ErrInvalid, []string{"Spec.Name", `\xff`}},
		{"Spec.Name control", start(rack.Spec{Name: "a\nb"}, ioNop), rack.ErrInvalid, []string{"Spec.Name"}},
		{"Spec.Name 300 bytes", start(rack.Spec{Name: long}, ioNop), rack.ErrInvalid, []string{"Spec.Name", "nnnnnnnn", "255"}},
		{"Args with NUL", start(rack.Spec{Args: []string{"ok", "x\x00y"}}, ioNop), rack.ErrInvalid, []string{"Spec.Args[1]"}},
		{"Args non-UTF-8", start(rack.Spec{Args: []string{"\xfe"}}, ioNop), rack.ErrInvalid, []string{"Spec.Args[0]"}},
		{"Args too large", start(rack.Spec{Args: []string{strings.Repeat("a", 200<<10)}}, ioNop), rack.ErrInvalid, []string{"Spec.Args"}},
		{"Env key with =", start(rack.Spec{Env: map[string]string{"A=B": "c"}}, ioNop), rack.ErrInvalid, []string{"Spec.Env", "A=B"}},
		{"Env empty key", start(rack.Spec{Env: map[string]string{"": "c"}}, ioNop), rack.ErrInvalid, []string{"Spec.Env"}},
		{"Env value with NUL", start(rack.Spec{Env: map[string]string{"K": "a\x00"}}, ioNop), rack.ErrInvalid, []string{"Spec.Env", "K"}},
		{"Stdout os.Stdout", start(rack.Spec{Stdout: os.Stdout}, ioNop), rack.ErrInvalid, []string{"Spec.Stdout", "*os.File"}},
		{"Stdout bytes.Buffer", start(rack.Spec{Stdout: new(bytes.Buffer)}, ioNop), rack.ErrInvalid, []string{"Spec.Stdout", "*bytes.Buffer"}},
		{"Stderr bytes.Buffer", start(rack.Spec{Stderr: new(bytes.Buffer)}, ioNop), rack.ErrInvalid, []string{"Spec.Stderr"}},
		{"Stdin strings.Reader", start(rack.Spec{Stdin: strings.NewReader("x")}, ioNop), rack.ErrInvalid, []string{"Spec.Stdin"}},
		{"Group of another kernel", start(rack.Spec{Group: g2}, ioNop), rack.ErrInvalid, []string{"Spec.Group"}},
		{"ParseSignal FOO", func(context.Context) error { _, err := rack.ParseSignal("FOO"); return err }, rack.ErrInvalid, []string{"FOO"}},
		{"ParseSignal 99", func(context.Context) error { _, err := rack.ParseSignal("99"); return err }, rack.ErrInvalid, []string{"99"}},
		{"ParseSignal empty", func(context.Context) error { _, err := rack.ParseSignal(""); return err }, rack.ErrInvalid, []string{`""`}},
		{"NewGroup empty name", func(ctx context.Context) error { _, err := k.NewGroup(ctx, ""); return err }, rack.ErrInvalid, []string{"group name"}},
		{"NewGroup with /", func(ctx context.Context) error { _, err := k.NewGroup(ctx, "a/b"); return err }, rack.ErrInvalid, []string{"a/b"}},
		{"Mkfifo with /", func(ctx context.Context) error { return k.Mkfifo(ctx, "x/y") }, rack.ErrInvalid, []string{"x/y"}},
		{"Mkfifo empty", func(ctx context.Context) error { return k.Mkfifo(ctx, "") }, rack.ErrInvalid, []string{"fifo name"}},
	}
	// A valid spec with an empty name gets the default name.
	p, err := k.Start(context.Background(), rack.Spec{}, ioNop)
	if err != nil {
		t.Fatalf("Start with the zero Spec: %v", err)
	}
	if p.Name() == "" {
		t.Errorf("default name is empty")
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A signal rack does not deliver.
	cases = append(cases, badCase{"Signal 99", func(ctx context.Context) error { return p.Signal(ctx, rack.Signal(99)) }, rack.ErrInvalid, []string{"99"}},
		badCase{"Signal 0", func(ctx context.Context) error { return p.Signal(ctx, 0) }, rack.ErrInvalid, nil},
		badCase{"Signal -1", func(ctx context.Context) error { return p.Signal(ctx, -1) }, rack.ErrInvalid, []string{"-1"}},
	)
	runBadCases(t, cases)
	// None of the refused specs left a process behind.
	ps, err := k.Processes(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("ps after the refused starts = %v, %v; want only the valid one", ps, err)
	}
}

func TestBadFilePath(t *testing.T) {
	k := ioKernel(t)
	ctx := ioCtx(t, 10*time.Second)
	ioWriteFile(ctx, t, k, "/c/o", []byte("x"))
	paths := []string{
		"", "relative", "c/o", "/", "/c", "/c/", "/c//o", "/c/o/", "//o", "/c/../o", "/c/./o", "/../c/o", "/./o",
		"/c/\xffo", "/c/o\x00", "/c\x00/o",
		"/" + strings.Repeat("c", 300) + "/o",
		"/c/" + strings.Repeat("o", 2000),
	}
	var cases []badCase
	for _, p := range paths {
		// The message quotes the path (at least its start).
		quoted := strconv.Quote(p)
		names := []string{quoted[:min(len(quoted), 40)]}
		ops := map[string]func(context.Context) error{
			"Open":   func(ctx context.Context) error { _, err := k.Open(ctx, p); return err },
			"Create": func(ctx context.Context) error { _, err := k.Create(ctx, p); return err },
			"OpenFile O_EXCL": func(ctx context.Context) error {
				_, err := k.OpenFile(ctx, p, rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL)
				return err
			},
		}
		if p != "/" && p != "/c" { // directories: valid for Stat, ReadDir, Remove
			ops["Stat"] = func(ctx context.Context) error { _, err := k.Stat(ctx, p); return err }
			ops["ReadDir"] = func(ctx context.Context) error { _, err := k.ReadDir(ctx, p); return err }
			ops["Remove"] = func(ctx context.Context) error { return k.Remove(ctx, p) }
		}
		for op, call := range ops {
			cases = append(cases, badCase{fmt.Sprintf("%s(%q)", op, p), call, fs.ErrInvalid, names})
		}
	}
	runBadCases(t, cases)
	// The good file is still there, untouched.
	if got := ioReadFile(ctx, t, k, "/c/o"); string(got) != "x" {
		t.Fatalf("/c/o = %q", got)
	}
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
		"swift://user:s3cret-key@mycloud/c", // credentials belong in clouds.yaml
		"swift://no-such-cloud/c",           // no such cloud
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
