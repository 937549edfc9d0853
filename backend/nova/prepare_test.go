package nova_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// failingStager fails every Stage with err, counting the calls.
type failingStager struct {
	err   error
	calls atomic.Int64
}

func (s *failingStager) Stage(context.Context) (string, string, error) {
	s.calls.Add(1)
	return "", "", s.err
}

// TestStagePermanentFailure: a Stage or ExtraEnv error that is neither
// transient nor a network error (a refused credential, a missing
// container) fails the Start at its first attempt; a transient one is
// tried again.
func TestStagePermanentFailure(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	m := newMarkers(t)
	for i, tc := range []struct {
		name      string
		err       error
		extra     bool // fail in ExtraEnv, not Stage
		wantCalls int64
	}{
		{"forbidden", errors.New("swift: put rack-bin/x: 403 Forbidden"), false, 1},
		{"not found", backend.ErrNotFound, false, 1},
		{"extra forbidden", errors.New("keystone: 403 Forbidden"), true, 1},
		{"transient", backend.ErrTransient, false, 6},
	} {
		st := &failingStager{err: tc.err}
		var extraCalls atomic.Int64
		c := newCompute(t, e, func(cfg *nova.Config) {
			if tc.extra {
				cfg.ExtraEnv = func(context.Context, *backend.StartRequest) (map[string]string, error) {
					extraCalls.Add(1)
					return nil, tc.err
				}
			} else {
				cfg.Stager = st
			}
		})
		_, err := c.Start(context.Background(), request(m, "stage", int64(100+i), computetest.ExitAtOnce))
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: Start = %v, want it to wrap %v", tc.name, err, tc.err)
		}
		calls := st.calls.Load()
		if tc.extra {
			calls = extraCalls.Load()
		}
		if calls != tc.wantCalls {
			t.Errorf("%s: %d attempts, want %d", tc.name, calls, tc.wantCalls)
		}
	}
}

// TestExtraEnvOncePerStart: a Start that waits for quota delivers what
// ExtraEnv adds (a one-time credential) once, not once per attempt, and
// its server gets it.
func TestExtraEnvOncePerStart(t *testing.T) {
	e := startEmu(t, novaemu.Config{Faults: novaemu.Faults{InstanceQuota: 1}})
	var mu sync.Mutex
	calls := map[string]int{}
	c := newCompute(t, e, func(cfg *nova.Config) {
		cfg.ExtraEnv = func(ctx context.Context, req *backend.StartRequest) (map[string]string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls[req.Name]++
			return map[string]string{"RACK_ONE_TIME": req.Name + "-" + strings.Repeat("x", calls[req.Name])}, nil
		}
	})
	m := newMarkers(t)
	first := request(m, "once", 100, computetest.RunUntilStopped)
	if _, err := c.Start(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	second := request(m, "once", 101, computetest.RunUntilStopped)
	started := make(chan error, 1)
	go func() {
		_, err := c.Start(context.Background(), second)
		started <- err
	}()
	// Let the second wait for quota through several attempts.
	waitFor(t, 30*time.Second, "refused creates", func() bool { return e.Calls()["POST /servers"] >= 4 })
	if err := c.Stop(context.Background(), first.Name); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatalf("Start within the quota: %v", err)
	}
	mu.Lock()
	n := calls[second.Name]
	mu.Unlock()
	if n != 1 {
		t.Errorf("ExtraEnv called %d times for one Start (%d creates); want once", n, e.Calls()["POST /servers"])
	}
	for _, s := range serversNamed(e, second.Name) {
		if !strings.Contains(string(s.UserData), "RACK_ONE_TIME="+second.Name+"-x\n") &&
			!strings.Contains(string(s.UserData), "RACK_ONE_TIME='"+second.Name+"-x'") {
			t.Errorf("server %s: user-data lacks the one delivery:\n%s", s.Name, s.UserData)
		}
	}
}
