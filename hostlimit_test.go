package rack_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

func init() {
	rack.Register("ceiling-worker", ceilingWorker)
}

// ceilingWorker squares its argument, after a moment of work (so that a
// host's slots stay taken a while), prints it and exits with it mod 4.
func ceilingWorker(ctx context.Context, self *rack.Self) error {
	n, err := strconv.Atoi(self.Args()[0])
	if err != nil {
		return err
	}
	select {
	case <-time.After(150 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Fprintf(self.Stdout(), "%d %d\n", n, n*n)
	return rack.Exit(n % 4)
}

// TestHostLimitsMaxHosts: with max_hosts=3, 30 workers on hosts of 3
// slots (10 hosts' worth) wait for slots and all finish with exact
// results and statuses, never more than 3 hosts alive (as Kernel.Hosts
// and the OS show).
func TestHostLimitsMaxHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts host OS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, dir := openHostsDir(t, ctx, "?hosts=1&slots=3&idle=1m&max_hosts=3", rack.WithLease(3*time.Second))
	// Watch the hosts while the job runs.
	var mu sync.Mutex
	maxListed, maxOS := 0, 0
	watching, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for {
			hs, err := k.Hosts(ctx)
			pids := hostPIDs(t, dir)
			mu.Lock()
			if err == nil {
				maxListed = max(maxListed, len(hs))
			}
			maxOS = max(maxOS, len(pids))
			mu.Unlock()
			select {
			case <-watching:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	const workers = 30
	squares := map[int]int{}
	root, err := k.Start(ctx, rack.Spec{Name: "capped"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		specs := make([]rack.Spec, workers)
		for i := range specs {
			specs[i] = rack.Spec{Program: "ceiling-worker", Args: []string{strconv.Itoa(i)}, Stdout: w}
		}
		kids, err := self.ForkAll(ctx, specs)
		if err != nil {
			return err
		}
		w.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var n, sq int
			if _, err := fmt.Sscanf(sc.Text(), "%d %d", &n, &sq); err != nil {
				return fmt.Errorf("bad line %q", sc.Text())
			}
			if _, dup := squares[n]; dup {
				return fmt.Errorf("worker %d printed twice", n)
			}
			squares[n] = sq
		}
		if err := sc.Err(); err != nil {
			return err
		}
		for i, c := range kids {
			err := c.Wait(ctx)
			var ee *rack.ExitError
			if i%4 == 0 && err != nil || i%4 != 0 && (!errors.As(err, &ee) || ee.Code() != i%4) {
				return fmt.Errorf("worker %d: Wait = %v, want status %d", i, err, i%4)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	close(watching)
	<-watched
	if len(squares) != workers {
		t.Errorf("%d workers printed, want %d", len(squares), workers)
	}
	for n, sq := range squares {
		if sq != n*n {
			t.Errorf("worker %d printed %d", n, sq)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxListed > 3 || maxOS > 3 {
		t.Errorf("at most %d hosts listed, %d host OS processes at once: want at most 3 (max_hosts=3)", maxListed, maxOS)
	}
	if maxListed < 3 {
		t.Errorf("at most %d hosts listed at once: the job should have used all 3", maxListed)
	}
}

// TestHostLimitsFail: with at_limit=fail, a fork that needs a host past
// max_hosts fails at once, its error naming the options.
func TestHostLimitsFail(t *testing.T) {
	if testing.Short() {
		t.Skip("starts host OS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, _ := openHostsDir(t, ctx, "?hosts=1&slots=1&idle=1m&max_hosts=1&at_limit=fail", rack.WithLease(3*time.Second))
	root, err := k.Start(ctx, rack.Spec{Name: "fail-at-limit"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		blocker, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
			return fmt.Errorf("the blocker's line: %w", err)
		}
		// The one host's one slot is taken: a second fork needs a host.
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
		if err != nil {
			return err
		}
		werr := c.Wait(ctx)
		if werr == nil || !strings.Contains(werr.Error(), "max_hosts=1") || !strings.Contains(werr.Error(), "at_limit=fail") {
			return fmt.Errorf("the fork past max_hosts: Wait = %v, want an error naming max_hosts=1 and at_limit=fail", werr)
		}
		if err := blocker.Kill(ctx); err != nil {
			return err
		}
		blocker.Wait(ctx)
		// Its slot free again, a fork runs there.
		c, err = self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
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
}

// TestHostLimitsServerHours: once max_server_hours is spent (a budget of
// 0.36 s), a fork that needs a new host fails naming the option, while a
// warm host's free slot still runs a fork; the spend outlives its host
// and gc.
func TestHostLimitsServerHours(t *testing.T) {
	if testing.Short() {
		t.Skip("starts host OS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, dir := openHostsDir(t, ctx, "?hosts=1&slots=1&idle=1500ms&max_server_hours=0.0001", rack.WithLease(3*time.Second))
	fork := func(arg string) error {
		root, err := k.Start(ctx, rack.Spec{Name: "budget"}, func(ctx context.Context, self *rack.Self) error {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{arg}})
			if err != nil {
				return err
			}
			return c.Wait(ctx)
		})
		if err != nil {
			return err
		}
		return root.Wait(ctx)
	}
	// Nothing spent yet: a host starts.
	if err := fork("quiet"); err != nil {
		t.Fatalf("the first fork: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the warm host's age passes the budget
	// The warm host's free slot still serves.
	if err := fork("quiet"); err != nil {
		t.Fatalf("a fork to the warm host's free slot: %v", err)
	}
	var blockErr error
	blocked := make(chan struct{})
	root, err := k.Start(ctx, rack.Spec{Name: "over-budget"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		blocker, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
			return fmt.Errorf("the blocker's line: %w", err)
		}
		// The warm host is full: this one needs a new host.
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
		if err != nil {
			return err
		}
		blockErr = c.Wait(ctx)
		close(blocked)
		blocker.Kill(ctx)
		blocker.Wait(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	<-blocked
	if blockErr == nil || !strings.Contains(blockErr.Error(), "max_server_hours=0.0001") {
		t.Fatalf("a fork needing a new host past the budget: Wait = %v, want an error naming max_server_hours", blockErr)
	}
	// The host ends (idle); gc runs; the spend stays.
	deadline := time.Now().Add(30 * time.Second)
	for len(hostPIDs(t, dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle host did not end in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := k.GC(ctx, &rack.GCOptions{MinAge: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if hs, err := k.Hosts(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("Hosts after the host ended = %+v, %v", hs, err)
	}
	if err := fork("quiet"); err == nil || !strings.Contains(err.Error(), "max_server_hours") {
		t.Fatalf("a fork after the host ended and gc: %v, want the max_server_hours error (the spend outlives its host)", err)
	}
}

// TestHostLimitsValues: the ceilings' values on a URL and as an option;
// bad ones are errors naming the option.
func TestHostLimitsValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, q := range []string{"hosts=1&max_hosts=3", "hosts=1&max_hosts=3&at_limit=fail", "hosts=1&at_limit=wait",
		"hosts=1&max_server_hours=0.5", "hosts=1&slots=2&max_hosts=1&max_server_hours=1e3&at_limit=wait"} {
		k, err := rack.Open(ctx, "file://"+dir+"?"+q)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		k.Close()
	}
	for q, name := range map[string]string{
		"hosts=1&max_hosts=-1":            "max_hosts",
		"hosts=1&max_hosts=0":             "max_hosts",
		"hosts=1&max_hosts=three":         "max_hosts",
		"hosts=1&max_hosts=1e3":           "max_hosts",
		"hosts=1&max_hosts=1&max_hosts=2": "max_hosts",
		"hosts=1&max_server_hours=-1":     "max_server_hours",
		"hosts=1&max_server_hours=0":      "max_server_hours",
		"hosts=1&max_server_hours=NaN":    "max_server_hours",
		"hosts=1&max_server_hours=Inf":    "max_server_hours",
		"hosts=1&max_server_hours=lots":   "max_server_hours",
		"hosts=1&at_limit=maybe":          "at_limit",
		"max_hosts=3":                     "max_hosts",
		"hosts=0&at_limit=fail":           "at_limit",
	} {
		k, err := rack.Open(ctx, "file://"+dir+"?"+q)
		if err == nil {
			k.Close()
			t.Errorf("%s: opened, want an error", q)
		} else if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want ErrInvalid naming %s", q, err, name)
		}
	}
	for _, c := range []struct {
		l    rack.HostLimits
		name string
	}{
		{rack.HostLimits{MaxHosts: -1}, "max_hosts"},
		{rack.HostLimits{MaxServerHours: -0.5}, "max_server_hours"},
		{rack.HostLimits{MaxServerHours: math.NaN()}, "max_server_hours"},
		{rack.HostLimits{MaxServerHours: math.Inf(1)}, "max_server_hours"},
	} {
		k, err := rack.Open(ctx, "mem://limits", rack.WithHosts(2, 0), rack.WithHostLimits(c.l))
		if err == nil {
			k.Close()
			t.Errorf("%+v: opened, want an error", c.l)
		} else if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%+v: %v, want ErrInvalid naming %s", c.l, err, c.name)
		}
	}
	k, err := rack.Open(ctx, "mem://limits", rack.WithHostLimits(rack.HostLimits{MaxHosts: 2, MaxServerHours: 1.5, FailAtLimit: true}), rack.WithHosts(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
}

// BenchmarkHostLimitsJob runs, per op, 30 workers of 150 ms on cold hosts
// of 3 slots in a fresh local namespace: with max_hosts=3 (9 at a time,
// the others wait) and without (10 hosts). It reports the forker's store
// requests per op: what waiting costs.
func BenchmarkHostLimitsJob(b *testing.B) {
	for _, q := range []string{"max_hosts=3", "none"} {
		b.Run(q, func(b *testing.B) {
			var requests, lists int64
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				url := "file://" + dir + "?hosts=1&slots=3&idle=300ms"
				if q != "none" {
					url += "&" + q
				}
				ctx := context.Background()
				k, err := rack.Open(ctx, url, rack.WithLease(3*time.Second), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
				if err != nil {
					b.Fatal(err)
				}
				before := k.Stats()
				root, err := k.Start(ctx, rack.Spec{Name: "job"}, func(ctx context.Context, self *rack.Self) error {
					specs := make([]rack.Spec, 30)
					for i := range specs {
						specs[i] = rack.Spec{Program: "ceiling-worker", Args: []string{"4"}} // exits 0
					}
					kids, err := self.ForkAll(ctx, specs)
					if err != nil {
						return err
					}
					for _, c := range kids {
						if err := c.Wait(ctx); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := root.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				after := k.Stats()
				requests += after["total"] - before["total"]
				lists += after["list"] - before["list"]
				b.StopTimer()
				for len(hostPIDs(b, dir)) > 0 { // the idle hosts end before the next op
					time.Sleep(20 * time.Millisecond)
				}
				k.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
			b.ReportMetric(float64(lists)/float64(b.N), "lists/op")
		})
	}
}
