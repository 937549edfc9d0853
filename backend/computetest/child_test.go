package computetest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rackfork/rack/backend/computetest"
)

// TestMain lets this test binary act as a test instance (TestServeChild).
func TestMain(m *testing.M) {
	computetest.ServeChild()
	os.Exit(m.Run())
}

// startChild starts this binary as test instance name, the way a compute
// that ignores StartRequest.Run would.
func startChild(t *testing.T, dir, name string, b computetest.Behaviour) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = os.Environ()
	for k, v := range computetest.ChildEnv(dir, name, b) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// observeUntil polls m until name's observation is want.
func observeUntil(t *testing.T, m *computetest.Markers, name string, want computetest.Observation) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := m.Observe(name)
		if err != nil {
			t.Fatalf("Observe(%q): %v", name, err)
		}
		if o == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Observe(%q) = %+v, want %+v", name, o, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestServeChild checks the child half of Separate against Markers: a
// start is seen once recorded, an end once the program is gone however it
// ended, runs of one name add up, and a RunUntilStopped instance whose
// harness directory vanished exits by itself.
func TestServeChild(t *testing.T) {
	dir := t.TempDir()
	m := computetest.NewMarkers(dir)
	if o, err := m.Observe("never"); err != nil || o != (computetest.Observation{}) {
		t.Errorf("Observe of a name never started = %+v, %v", o, err)
	}
	if _, err := m.Observe("../x"); err == nil {
		t.Error("Observe of a name with a slash succeeded")
	}

	exit := startChild(t, dir, "ct-exit", computetest.ExitAtOnce)
	if err := exit.Wait(); err != nil {
		t.Fatalf("ExitAtOnce instance: %v", err)
	}
	observeUntil(t, m, "ct-exit", computetest.Observation{Started: 1, Ended: 1})

	run := startChild(t, dir, "ct-run", computetest.RunUntilStopped)
	observeUntil(t, m, "ct-run", computetest.Observation{Started: 1})
	time.Sleep(20 * time.Millisecond)
	observeUntil(t, m, "ct-run", computetest.Observation{Started: 1})
	startChild(t, dir, "ct-run", computetest.RunUntilStopped) // a second run of the name
	observeUntil(t, m, "ct-run", computetest.Observation{Started: 2})
	run.Process.Kill()
	run.Wait()
	observeUntil(t, m, "ct-run", computetest.Observation{Started: 2, Ended: 1})

	// The safety net: the harness's directory goes, the instance follows.
	dir2 := t.TempDir()
	orphan := startChild(t, dir2, "ct-orphan", computetest.RunUntilStopped)
	observeUntil(t, computetest.NewMarkers(dir2), "ct-orphan", computetest.Observation{Started: 1})
	if err := os.RemoveAll(filepath.Join(dir2, "ct-orphan")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- orphan.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("orphaned instance: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("an instance whose harness directory was removed still runs")
	}
}

// TestServeChildBadEnvironment: a malformed environment is exit status 3.
func TestServeChildBadEnvironment(t *testing.T) {
	for _, env := range [][]string{
		{computetest.ChildDirEnv + "=" + t.TempDir(), computetest.ChildNameEnv + "=x", computetest.ChildBehaviourEnv + "=dance"},
		{computetest.ChildDirEnv + "=relative", computetest.ChildNameEnv + "=x", computetest.ChildBehaviourEnv + "=exit-at-once"},
		{computetest.ChildDirEnv + "=" + t.TempDir(), computetest.ChildNameEnv + "=a/b", computetest.ChildBehaviourEnv + "=exit-at-once"},
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), env...)
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Errorf("environment %q: %v, want exit status 3", env, err)
		}
	}
}
