//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package osproc_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/osproc"
)

// TestHostOutlivesClose: an instance started with backend.HostOption is
// left running by Close (a host ends itself), while an ordinary one is
// killed.
func TestHostOutlivesClose(t *testing.T) {
	dir := t.TempDir()
	release := releaseFifo(t, dir)
	c, err := osproc.New()
	if err != nil {
		t.Fatal(err)
	}
	host := request("t-host-100", "wait", dir)
	host.Options = map[string]string{backend.HostOption: "1"}
	plain := request("t-101", "wait", dir)
	ctx := context.Background()
	for _, req := range []*backend.StartRequest{host, plain} {
		if _, err := c.Start(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	pids := map[string]int{}
	waitFor(t, 30*time.Second, "both started", func() bool {
		for _, name := range []string{host.Name, plain.Name} {
			data, err := os.ReadFile(filepath.Join(dir, name+".started"))
			if err != nil {
				return false
			}
			pids[name], _ = strconv.Atoi(string(data))
		}
		return true
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pids[host.Name], 0); err != nil {
		t.Errorf("the host's process after Close: %v, want it running", err)
	}
	if err := syscall.Kill(pids[plain.Name], 0); err == nil {
		t.Errorf("the ordinary instance's process %d still runs after Close", pids[plain.Name])
	}
	release() // the host's program ends
}
