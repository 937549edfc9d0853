package computetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/inproc"
)

func TestInProcess(t *testing.T) {
	computetest.Run(t, computetest.InProcess(func(context.Context) (backend.Compute, error) {
		return inproc.New(), nil
	}))
}

func TestParseBehaviour(t *testing.T) {
	for _, b := range []computetest.Behaviour{computetest.ExitAtOnce, computetest.RunUntilStopped} {
		got, err := computetest.ParseBehaviour(b.String())
		if err != nil || got != b {
			t.Errorf("ParseBehaviour(%q) = %v, %v; want %v", b.String(), got, err, b)
		}
	}
	if _, err := computetest.ParseBehaviour("Behaviour(0)"); err == nil {
		t.Error("ParseBehaviour of an unknown behaviour succeeded")
	}
}

// broken wraps an inproc compute and breaks one rule of the contract.
type broken struct {
	*inproc.Compute
	flaw string
}

func (c *broken) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	switch c.flaw {
	case "start-twice":
		// Starts a second copy when the name is taken.
		inst, err := c.Compute.Start(ctx, req)
		if errors.Is(err, backend.ErrExist) {
			r := *req
			r.Name += "~"
			_, err = c.Compute.Start(ctx, &r)
			inst.Name, inst.Namespace, inst.PID, inst.Created = req.Name, req.Namespace, req.PID, time.Now()
		}
		return inst, err
	case "instance-uses-start-ctx":
		r := *req
		r.Run = func(runCtx context.Context) {
			ctx2, cancel := context.WithCancel(runCtx)
			defer context.AfterFunc(ctx, cancel)()
			req.Run(ctx2)
		}
		return c.Compute.Start(ctx, &r)
	case "ignores-start-ctx":
		return c.Compute.Start(context.Background(), req)
	case "no-created":
		inst, err := c.Compute.Start(ctx, req)
		inst.Created = time.Time{}
		return inst, err
	}
	return c.Compute.Start(ctx, req)
}

func (c *broken) Stop(ctx context.Context, name string) error {
	switch c.flaw {
	case "stop-does-nothing":
		return nil
	case "stop-unknown-succeeds":
		if err := c.Compute.Stop(ctx, name); !errors.Is(err, backend.ErrNotFound) {
			return err
		}
		return nil
	}
	return c.Compute.Stop(ctx, name)
}

func (c *broken) List(ctx context.Context, namespace string) ([]backend.Instance, error) {
	insts, err := c.Compute.List(ctx, "")
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(insts, func(i backend.Instance) bool {
		if c.flaw == "list-by-prefix" {
			return !strings.HasPrefix(i.Namespace, namespace)
		}
		return namespace != "" && i.Namespace != namespace
	}), nil
}

func (c *broken) Close() error {
	if c.flaw == "close-does-nothing" {
		return nil
	}
	return c.Compute.Close()
}

// sameMachine claims backend.SameMachine for an in-process compute.
type sameMachine struct{ *broken }

func (sameMachine) SameMachine() bool { return true }

// selfDeleter is a backend.SelfDeleter that, called outside any instance,
// succeeds or stops the instances there are.
type selfDeleter struct{ *broken }

func (c selfDeleter) DeleteSelf(ctx context.Context) error {
	if c.flaw == "self-delete-succeeds" {
		return nil
	}
	insts, _ := c.List(ctx, "")
	for _, in := range insts {
		c.Stop(ctx, in.Name)
	}
	return errors.New("not in an instance")
}

// startRetrier claims backend.StartRetrier and retries every failure,
// permanent ones included, until its context ends (or 2 s pass).
type startRetrier struct{ *broken }

func (startRetrier) RetriesStart() bool { return true }

func (c startRetrier) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		in, err := c.broken.Start(ctx, req)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return in, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// impatient shortens the suite's waits, which broken computes run out.
type impatient struct{ computetest.Harness }

func (impatient) Patience() (wait, settle time.Duration) {
	return 500 * time.Millisecond, 20 * time.Millisecond
}

const flawEnv = "COMPUTETEST_FLAW"

// TestBrokenCompute runs the suite against a broken compute when
// TestSuiteCatchesFlaws runs it in a child process.
func TestBrokenCompute(t *testing.T) {
	flaw, ok := os.LookupEnv(flawEnv)
	if !ok {
		t.Skip("run by TestSuiteCatchesFlaws")
	}
	inner := computetest.InProcess(func(context.Context) (backend.Compute, error) {
		b := &broken{Compute: inproc.New(), flaw: flaw}
		switch flaw {
		case "claims-same-machine":
			return sameMachine{b}, nil
		case "self-delete-succeeds", "self-delete-stops-others":
			return selfDeleter{b}, nil
		case "retries-permanent-failures":
			return startRetrier{b}, nil
		}
		return b, nil
	})
	computetest.Run(t, func(ctx context.Context, t testing.TB) (computetest.Harness, error) {
		h, err := inner(ctx, t)
		return impatient{h}, err
	})
}

// TestSuiteCatchesFlaws checks that the suite fails computes that break the
// contract, in the tests meant to catch each flaw, and passes a sound one.
func TestSuiteCatchesFlaws(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs the suite in child processes")
	}
	for flaw, wantFailed := range map[string][]string{
		"":                           nil,
		"start-twice":                {"DuplicateNameWhileLive", "ConcurrentDuplicateStarts"},
		"instance-uses-start-ctx":    {"InstanceOutlivesStartContext"},
		"ignores-start-ctx":          {"StartCancelledContext"},
		"no-created":                 {"StartRunsOnce", "ListFiltersByNamespace"},
		"stop-does-nothing":          {"StopEndsInstance", "ConcurrentStarts"},
		"stop-unknown-succeeds":      {"StopUnknown", "ExitedInstanceLeavesList"},
		"list-by-prefix":             {"ListFiltersByNamespace"},
		"close-does-nothing":         {"CloseStopsEverything"},
		"claims-same-machine":        {"SameMachine"},
		"self-delete-succeeds":       {"SelfDeleteOutsideInstance"},
		"self-delete-stops-others":   {"SelfDeleteOutsideInstance"},
		"retries-permanent-failures": {"StartRetrierFailsPermanentAtOnce"},
	} {
		t.Run("flaw="+flaw, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBrokenCompute$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), flawEnv+"="+flaw)
			out, err := cmd.CombinedOutput()
			failed := regexp.MustCompile(`--- FAIL: TestBrokenCompute/(\w+)`).FindAllStringSubmatch(string(out), -1)
			var got []string
			for _, m := range failed {
				got = append(got, m[1])
			}
			if len(wantFailed) == 0 {
				if err != nil || len(got) > 0 {
					t.Errorf("suite failed a sound compute (%v):\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("suite passed a compute with flaw %q:\n%s", flaw, out)
			}
			for _, w := range wantFailed {
				if !slices.Contains(got, w) {
					t.Errorf("flaw %q: test %s passed; failed tests: %q\n%s", flaw, w, got, out)
				}
			}
		})
	}
}
