package nova_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// publishedStager stages nothing of its own (its Stage URL leads nowhere)
// and hands out the test binary as the published program sum.
type publishedStager struct {
	url, sum string
	staged   atomic.Int32 // calls of Stage
}

func (s *publishedStager) Stage(context.Context) (string, string, error) {
	s.staged.Add(1)
	return s.url + "-not-this-one", strings.Repeat("1", 64), nil
}

func (s *publishedStager) StagePublished(_ context.Context, sum string) (string, error) {
	if sum != s.sum {
		return "", backend.ErrNotFound
	}
	return s.url, nil
}

// TestPublishedProgram: a request with backend.ProgramOption boots the
// published program of that digest (StagePublished), not the stager's
// own (Stage is not called); a malformed digest, and a stager that cannot
// boot published programs, are the caller's errors.
func TestPublishedProgram(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	url, sum := stagedBinary(t)
	st := &publishedStager{url: url, sum: sum}
	c := newCompute(t, e, func(cfg *nova.Config) { cfg.Stager = st })
	m := newMarkers(t)
	req := request(m, "published", 100, computetest.ExitAtOnce)
	req.Options = map[string]string{backend.ProgramOption: sum}
	if _, err := c.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the program to run", func() bool { return observe(t, m, req.Name).Started == 1 })
	if n := st.staged.Load(); n != 0 {
		t.Errorf("Stage was called %d times for a published program", n)
	}
	servers := e.Servers()
	if len(servers) != 1 || !strings.Contains(string(servers[0].UserData), sum) {
		t.Errorf("the server's user-data does not name the published digest: %+v", servers)
	}

	bad := request(m, "published", 101, computetest.ExitAtOnce)
	bad.Options = map[string]string{backend.ProgramOption: "../" + sum}
	if _, err := c.Start(context.Background(), bad); !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "want a SHA-256 in lower-case hex") {
		t.Errorf("malformed digest: %v", err)
	}
	plain := newCompute(t, e, func(cfg *nova.Config) { cfg.Stager = staticStager{url, sum} })
	other := request(m, "published", 102, computetest.ExitAtOnce)
	other.Options = map[string]string{backend.ProgramOption: sum}
	if _, err := plain.Start(context.Background(), other); !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "cannot boot published programs") {
		t.Errorf("a stager without published programs: %v", err)
	}
}
