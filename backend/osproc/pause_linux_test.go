package osproc_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack/backend/osproc"
)

// groupSpawner runs `sleep 60` in a process group of its own (as the
// shell's bridge runs a command), writes its pid to dir/name.grandchild,
// and blocks.
func groupSpawner(dir, name string) int {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 2
	}
	if err := os.WriteFile(filepath.Join(dir, name+".grandchild"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return 2
	}
	cmd.Wait()
	return 0
}

// procState returns the state letter of pid from /proc/PID/stat.
func procState(t *testing.T, pid int) byte {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(data, ')')
	return data[i+2]
}

// TestPauseStopsTheJob: Pause stops the processes an instance runs in a
// group of their own too, and Resume continues them, as a shell stops and
// continues a job (before, a command run by the shell's bridge went on
// running while its process was stopped).
func TestPauseStopsTheJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := osproc.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := "t-900"
	if _, err := c.Start(ctx, request(name, "group-spawner", dir)); err != nil {
		t.Fatal(err)
	}
	var pid int
	for pid == 0 {
		data, err := os.ReadFile(filepath.Join(dir, name+".grandchild"))
		if err == nil {
			pid, _ = strconv.Atoi(string(data))
		} else if ctx.Err() != nil {
			t.Fatal("the grandchild never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	waitState := func(want func(byte) bool, what string) {
		t.Helper()
		for st := procState(t, pid); !want(st); st = procState(t, pid) {
			if ctx.Err() != nil {
				t.Fatalf("the grandchild in its own group is in state %c, want %s", st, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := c.Pause(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitState(func(b byte) bool { return b == 'T' }, "stopped (T)")
	if err := c.Resume(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitState(func(b byte) bool { return b != 'T' }, "running again")
}
