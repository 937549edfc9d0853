package racktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

func (s *suite) testSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.deadline(20*time.Second))
	defer cancel()
	k, err := s.openPrivate(ctx, t)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	root, err := k.Start(ctx, rack.Spec{Name: "root"}, func(ctx context.Context, self *rack.Self) error {
		if a := self.Args(); len(a) == 1 {
			if a[0] == "sleep" {
				<-ctx.Done()
				return ctx.Err()
			}
			_, err := fmt.Fprintf(self.Stdout(), "hello%s", a[0])
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		var kids []*rack.Process
		for i := 0; i < 5; i++ {
			c, err := self.Fork(ctx, rack.Spec{Stdout: w, Args: []string{fmt.Sprint(i)}, Program: ""})
			if err != nil {
				return err
			}
			kids = append(kids, c)
		}
		w.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(data) != 5*6 {
			return fmt.Errorf("read %q", data)
		}
		for _, c := range kids {
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		c, err := self.Fork(ctx, rack.Spec{Args: []string{"sleep"}})
		if err != nil {
			return err
		}
		if err := c.Kill(ctx); err != nil {
			return err
		}
		var ee *rack.ExitError
		if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL {
			return fmt.Errorf("kill: wait = %v", err)
		}
		return nil
	})
	_ = root
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := k.Processes(ctx)
	if err != nil || len(ps) != 7 {
		t.Fatalf("ps = %v, %v", ps, err)
	}
}

func init() {
	_ = rack.Exit
}
