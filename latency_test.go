package rack_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// TestRoundTrips holds the critical path of the protocol's operations, in
// store round trips, to the figures the README gives: on a store that
// answers every request after a fixed latency (mem.WithLatency) and cannot
// notify, an operation's time divided by the latency counts the requests
// that waited for one another (and the polls' waits). The latency is long
// beside the CPU work, so load barely moves the count; each budget leaves
// about two round trips for the polls' timing. Before the round trips were
// cut the same three measured 2.0, 17.3 and 184.2.
func TestRoundTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for round trips of 100 ms")
	}
	const latency = 100 * time.Millisecond
	ctx := ioCtx(t, 2*time.Minute)
	k, err := rack.New(ctx, pollOnly{mem.New(mem.WithLatency(latency))}, inproc.New(),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	var figures []string
	measure := func(what string, budget float64, f func(ctx context.Context, self *rack.Self) error) {
		t.Helper()
		var took time.Duration
		root, err := k.Start(ctx, rack.Spec{Name: "rtt"}, func(ctx context.Context, self *rack.Self) error {
			switch ioArg(self, 0) {
			case "nop":
				return nil
			case "line":
				_, err := fmt.Fprintln(self.Stdout(), "a line")
				return err
			}
			// Warm up: the kernel's pid block is claimed once.
			c, err := self.Fork(ctx, rack.Spec{Args: []string{"nop"}})
			if err != nil {
				return err
			}
			if err := c.Wait(ctx); err != nil {
				return err
			}
			start := time.Now()
			err = f(ctx, self)
			took = time.Since(start)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := root.Wait(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := float64(took) / float64(latency)
		figures = append(figures, fmt.Sprintf("%-52s %5.1f round trips", what, got))
		if got > budget {
			t.Errorf("%s: %.1f round trips, budget %.0f", what, got, budget)
		}
	}
	measure("fork, exit, wait", 3, func(ctx context.Context, self *rack.Self) error {
		c, err := self.Fork(ctx, rack.Spec{Args: []string{"nop"}})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	readAll := func(r io.Reader, want int) error {
		sc := bufio.NewScanner(r)
		n := 0
		for sc.Scan() {
			n++
		}
		if n != want {
			return fmt.Errorf("read %d lines, want %d (%v)", n, want, sc.Err())
		}
		return sc.Err()
	}
	measure("pipe, fork a writer of one line, read to EOF, wait", 15, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		c, err := self.Fork(ctx, rack.Spec{Args: []string{"line"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if err := readAll(r, 1); err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	for _, n := range []struct {
		writers int
		budget  float64
	}{{10, 17}, {100, 21}} {
		measure(fmt.Sprintf("pipe, ForkAll %d writers of one line, read to EOF, wait", n.writers), n.budget, func(ctx context.Context, self *rack.Self) error {
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			specs := make([]rack.Spec, n.writers)
			for i := range specs {
				specs[i] = rack.Spec{Args: []string{"line"}, Stdout: w}
			}
			kids, err := self.ForkAll(ctx, specs)
			if err != nil {
				return err
			}
			w.Close()
			if err := readAll(r, len(specs)); err != nil {
				return err
			}
			for _, c := range kids {
				if err := c.Wait(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	t.Logf("critical path with %v per store request (no notifications):\n%s", latency, strings.Join(figures, "\n"))
}
