package racktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
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

func runBadCases(t *testing.T, timeout time.Duration, cases []badCase) {
	t.Helper()
	kit := make([]testkit.BadCase, len(cases))
	for i, c := range cases {
		kit[i] = testkit.BadCase{Name: c.name, Call: c.call, Want: c.want, Names: c.names}
	}
	testkit.RunBadCases(t, timeout, kit)
}

func ioNop(context.Context, *rack.Self) error { return nil }
func (s *suite) testBadSpec(t *testing.T) {
	k := s.ioKernel(t)
	k2 := s.ioKernel(t)
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
	runBadCases(t, s.deadline(5*time.Second), cases)
	// None of the refused specs left a process behind.
	ps, err := k.Processes(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("ps after the refused starts = %v, %v; want only the valid one", ps, err)
	}
}

func (s *suite) testBadFilePath(t *testing.T) {
	k := s.ioKernel(t)
	ctx := s.ioCtx(t, 10*time.Second)
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
	runBadCases(t, s.deadline(5*time.Second), cases)
	// The good file is still there, untouched.
	if got := ioReadFile(ctx, t, k, "/c/o"); string(got) != "x" {
		t.Fatalf("/c/o = %q", got)
	}
}
