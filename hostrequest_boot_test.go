package rack_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

func init() {
	rack.Register("req-top", reqTop)
	rack.Register("sleepy", sleepy)
}

// sleepy d sleeps for d and exits 0.
func sleepy(ctx context.Context, self *rack.Self) error {
	d, err := time.ParseDuration(self.Args()[0])
	if err != nil {
		return err
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reqTop d forks sleepy 8s (into its own host's last free slot), then
// sleepy 1s (onto a new host, asked for), waits d, forks sleepy 1s again,
// and waits for the three.
func reqTop(ctx context.Context, self *rack.Self) error {
	d, err := time.ParseDuration(self.Args()[0])
	if err != nil {
		return err
	}
	var kids []*rack.Process
	for i, arg := range []string{"8s", "1s", "1s"} {
		if i == 2 {
			time.Sleep(d)
		}
		c, err := self.Fork(ctx, rack.Spec{Program: "sleepy", Args: []string{arg}})
		if err != nil {
			return fmt.Errorf("fork %d: %w", i, err)
		}
		kids = append(kids, c)
	}
	for i, c := range kids {
		if err := c.Wait(ctx); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
	}
	return nil
}

// TestHostRequestBooting: a host started on a host's request that boots
// for longer than a lease (5 s against 2 s) is the asker's to use while
// it boots: the asker's next fork, a lease later, goes to its free slot
// rather than asking for another host. (The kernel that started it keeps
// its lease, and its record is not rewritten until it runs: the asker
// took it for dead from its record's age, as it would any host's.)
func TestHostRequestBooting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	t.Setenv(rack.PowerlessHostsEnv, "1")
	t.Setenv("RACK_TEST_SLOW_HOST", "5s")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	k, _ := openHostsDir(t, ctx, "?hosts=1&slots=2&idle=2s", rack.WithLease(2*time.Second))
	root, err := k.Start(ctx, rack.Spec{Name: "req-root"}, func(ctx context.Context, self *rack.Self) error {
		c, err := self.Fork(ctx, rack.Spec{Program: "req-top", Args: []string{"3s"}})
		if err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	top, first, second := psTree(t, ctx, k)["req-top 3s"].Host, "", ""
	infos, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.Name == "sleepy" && len(in.Args) == 1 && in.Args[0] == "1s" {
			if first == "" {
				first = in.Host
			} else {
				second = in.Host
			}
		}
	}
	if first == "" || first == top || first != second {
		t.Errorf("hosts of top, the first child asked for and the second: %q %q %q; want the two children on one host, another than top's", top, first, second)
	}
	if n := k.HostRequestsServedForTest(); n != 1 {
		t.Errorf("the root's kernel served %d host requests, want 1", n)
	}
}
