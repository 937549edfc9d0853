package racktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// forkedProgram is a registered program for testForked: a program other
// than its forker's.
const forkedProgram = "racktest-forked"

func init() { rack.Register(forkedProgram, forkedReport) }

// forkedReport ends with exit code 10, plus 1 if it is Forked, plus 2 if
// the child it forks as its first argument says ("same": Fork with no
// Spec.Program; "named": Fork of forkedProgram by name; none: no child)
// is Forked.
func forkedReport(ctx context.Context, self *rack.Self) error {
	code := 10
	if self.Forked() {
		code++
	}
	spec := rack.Spec{}
	switch ioArg(self, 0) {
	case "":
		return rack.Exit(code)
	case "named":
		spec.Program = forkedProgram
	}
	c, err := self.Fork(ctx, spec)
	if err != nil {
		return err
	}
	var ee *rack.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) {
		return fmt.Errorf("child: %v", err)
	} else if ee.Code() == 11 {
		code += 2
	}
	return rack.Exit(code)
}

// testForked: Forked tells a child its program forked from a process
// started any other way, in the process itself and in the handle another
// kernel reads from the record.
func (s *suite) testForked(t *testing.T) {
	ctx := s.pgCtx(t, 20*time.Second)
	name := s.sharedName(t)
	k := s.pgOpen(t, name)
	other := s.pgOpen(t, name)
	code := func(err error) int {
		var ee *rack.ExitError
		if errors.As(err, &ee) {
			return ee.Code()
		}
		return -1
	}
	cases := []struct {
		what string
		args []string
		want int // forkedReport's exit code
	}{
		{"a child started as another program", nil, 10},
		{"a child started as another program, and its fork of itself", []string{"same"}, 12},
		{"a child started as another program, and its fork of itself by name", []string{"named"}, 12},
	}
	var rootForked bool
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "child" {
			if !self.Forked() {
				return rack.Exit(20)
			}
			return nil
		}
		rootForked = self.Forked()
		// The root runs a closure, not forkedProgram: a child started as
		// forkedProgram is another program, not Forked; its own forks are.
		for _, c := range cases {
			p, err := self.Fork(ctx, rack.Spec{Program: forkedProgram, Args: c.args})
			if err != nil {
				return err
			}
			if got := code(p.Wait(ctx)); got != c.want {
				return fmt.Errorf("%s: exit code %d, want %d", c.what, got, c.want)
			}
			h, err := other.Process(ctx, p.PID())
			if err != nil {
				return err
			}
			if h.Forked() || p.Forked() {
				return fmt.Errorf("%s: Forked (handle from the record %v, from Fork %v), want false: another program", c.what, h.Forked(), p.Forked())
			}
		}
		// A child running the root's own program (no Spec.Program) is.
		p, err := self.Fork(ctx, rack.Spec{Args: []string{"child"}})
		if err != nil {
			return err
		}
		h, err := other.Process(ctx, p.PID())
		if err != nil {
			return err
		}
		if !p.Forked() || !h.Forked() {
			return fmt.Errorf("a child of the root's program: Forked %v (from Fork), %v (from the record), want true", p.Forked(), h.Forked())
		}
		if err := p.Wait(ctx); err != nil {
			return fmt.Errorf("a child of the root's program: %w (exit 20: not Forked in itself)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rootForked {
		t.Error("a root started by Kernel.Start is Forked")
	}
	// A root started as a registered program is not Forked either.
	p, err := k.Start(ctx, rack.Spec{Program: forkedProgram}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := code(p.Wait(ctx)); got != 10 {
		t.Errorf("a root running %s: exit code %d, want 10 (not Forked)", forkedProgram, got)
	}
}
