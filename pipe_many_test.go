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
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// TestPipeManyEndsStaleListings forks more children on one pipe writer
// than the reader looks at one by one, on stores whose listings lag an
// hour behind (they show nothing new): the listings the reader takes as
// hints never help, and it must still read every line and reach EOF, with
// notifications and without. Some children write nothing, some several
// lines, some a Write split over several segments.
func TestPipeManyEndsStaleListings(t *testing.T) {
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("notify=%v", notify), func(t *testing.T) {
			ctx := ioCtx(t, 60*time.Second)
			var s backend.Store = mem.New(mem.WithListLag(time.Hour))
			if !notify {
				s = pollOnly{s}
			}
			k, err := rack.New(ctx, s, inproc.New(),
				rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard),
				rack.WithPolling(time.Millisecond, 20*time.Millisecond),
				rack.WithPipeBuffer(64<<10, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { k.Close() })
			const n = 60
			want := 0
			for i := 0; i < n; i++ {
				want += i % 4
			}
			err = ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
				if ioArg(self, 0) == "child" {
					var i int
					fmt.Sscan(ioArg(self, 1), &i)
					for j := 0; j < i%4; j++ {
						line := fmt.Sprintf("child %d line %d\n", i, j)
						if j == 2 {
							// Larger than a segment: stored in two.
							line = fmt.Sprintf("child %d line %d %s\n", i, j, strings.Repeat("x", 100<<10))
						}
						if _, err := io.WriteString(self.Stdout(), line); err != nil {
							return err
						}
						time.Sleep(time.Duration(i%3) * time.Millisecond)
					}
					return nil
				}
				r, w, err := self.Pipe(ctx)
				if err != nil {
					return err
				}
				specs := make([]rack.Spec, n)
				for i := range specs {
					specs[i] = rack.Spec{Args: []string{"child", fmt.Sprint(i)}, Stdout: w}
				}
				kids, err := self.ForkAll(ctx, specs)
				if err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
				sc := bufio.NewScanner(r)
				sc.Buffer(nil, 1<<20)
				got := 0
				for sc.Scan() {
					got++
				}
				if err := sc.Err(); err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("read %d lines, want %d", got, want)
				}
				for _, c := range kids {
					if err := c.Wait(ctx); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
