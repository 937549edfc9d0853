package osproc_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/computetest"
	"github.com/rackfork/rack/backend/osproc"
)

// TestMain lets this test binary serve as the program the Compute starts:
// a computetest instance (ServeChild), or one of the test children below.
func TestMain(m *testing.M) {
	computetest.ServeChild()
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(serveTestChild(mode))
	}
	os.Exit(m.Run())
}

// The environment of the test children.
const (
	modeEnv = "OSPROC_TEST_MODE" // what the child does
	dirEnv  = "OSPROC_TEST_DIR"  // where it records its start, and finds the release fifo
	nameEnv = "OSPROC_TEST_NAME" // its instance name
)

// testEnv is the environment of a test child.
func testEnv(mode, dir, name string) map[string]string {
	return map[string]string{modeEnv: mode, dirEnv: dir, nameEnv: name}
}

func request(name, mode, dir string) *backend.StartRequest {
	pid, _ := strconv.ParseInt(name[len(name)-3:], 10, 64)
	return &backend.StartRequest{Namespace: "t", PID: pid, Name: name, Env: testEnv(mode, dir, name)}
}

// TestConformance runs the compute conformance suite, with the test binary
// as the instances' program, as New makes it and with a log directory.
func TestConformance(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		computetest.Run(t, computetest.Separate(func(context.Context) (backend.Compute, error) {
			return osproc.New()
		}))
	})
	t.Run("logdir", func(t *testing.T) {
		computetest.Run(t, computetest.Separate(func(context.Context) (backend.Compute, error) {
			return osproc.New(osproc.WithLogDir(t.TempDir()))
		}))
	})
}

func BenchmarkConformance(b *testing.B) {
	computetest.RunBenchmarks(b, computetest.Separate(func(context.Context) (backend.Compute, error) {
		return osproc.New()
	}))
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
