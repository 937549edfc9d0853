package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/internal/novaemu"
)

// TestBridgeOnOpenStack runs pipelines of stock programs on openstack://
// against the Nova emulator, with real Keystone and Swift: each external
// stage boots a server of its own, which fetches this test binary (the
// shell's binary, so the bridge) from Swift and runs the command there,
// resolved by the server's PATH; the shell reads and writes the rack
// files (a child's credential reaches only the namespace's containers).
// It is the original RACK's shell-like sample: grep | sort | uniq -c over
// log files, distributed one stage per server.
func TestBridgeOnOpenStack(t *testing.T) {
	needPrograms(t, "grep", "sort", "uniq", "wc")
	cloud, addr := os.Getenv("RACK_KEYSTONE_CLOUD"), os.Getenv("RACK_NOVA_ADDR")
	if os.Getenv("RACK_KEYSTONE") != "1" || cloud == "" || addr == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" && os.Getenv("RACK_KEYSTONE") == "1" {
			t.Fatal("RACK_KEYSTONE=1 needs RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR")
		}
		t.Skip("no OpenStack: RACK_KEYSTONE=1, RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR select Keystone, Swift and the Nova emulator (.ci/run sets them)")
	}
	unlock, err := novaemu.LockAddr(addr) // other packages' tests use it too: take turns
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 3,
		Faults: novaemu.Faults{BootDelay: 100 * time.Millisecond, DeleteDelay: 10 * time.Minute}}) // deleted servers stay listed
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	ns := "rack-bridge-" + suffix
	logs, out := "/logs-"+suffix, "/out-"+suffix
	url := "openstack://" + cloud + "/" + ns + "?image=cirros&flavor=m1.tiny&network=none"
	script := strings.Join([]string{
		"echo 'ERROR disk full' > " + logs + "/a.txt",
		"echo 'INFO all well' > " + logs + "/b.txt",
		"echo 'ERROR disk full' > " + logs + "/c.txt",
		"echo 'ERROR net down' > " + logs + "/d.txt",
		fmt.Sprintf("cat %[1]s/a.txt %[1]s/b.txt %[1]s/c.txt %[1]s/d.txt | grep ERROR | sort | uniq -c > %[2]s/errors.txt", logs, out),
		"echo status $?",
		"cat " + out + "/errors.txt",
		"echo '| pi       | 3.14159265359 |' > " + out + "/result.txt",
		"cat " + out + "/result.txt | grep pi | wc -l",
		"no-such-program-anywhere; echo missing $?",
		"ps -a",
		fmt.Sprintf("rm %[1]s/a.txt %[1]s/b.txt %[1]s/c.txt %[1]s/d.txt %[2]s/errors.txt %[2]s/result.txt %[1]s %[2]s", logs, out),
	}, "\n") + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The servers' consoles, kept as they run (a deleted server's goes).
	consoles := map[string]string{}
	var consolesMu sync.Mutex
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			for _, s := range emu.Servers() {
				if s.Console != "" {
					consolesMu.Lock()
					consoles[s.Name] = s.Console
					consolesMu.Unlock()
				}
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var stdout, stderr syncBuffer
	start := time.Now()
	code := run(ctx, []string{"--url", url}, strings.NewReader(script), &stdout, &stderr, os.Getenv)
	elapsed := time.Since(start)
	close(stopWatch)
	<-watched
	o := stdout.String()
	if code != 0 {
		t.Errorf("status %d", code)
	}
	if want := "status 0\n      2 ERROR disk full\n      1 ERROR net down\n1\nmissing 127\n"; !strings.HasPrefix(o, want) {
		t.Errorf("output:\n%s\nwant it to start with:\n%s\nstderr:\n%s", o, want, stderr.String())
	}
	if !strings.Contains(stderr.String(), "rack: no-such-program-anywhere: command not found") {
		t.Errorf("stderr lacks the server's command not found:\n%s", stderr.String())
	}
	// ps -a: the stages as typed, and their pids.
	stagePIDs := map[string]string{}
	for _, cmd := range []string{"grep ERROR", "sort", "uniq -c", "grep pi", "wc -l", "no-such-program-anywhere"} {
		m := regexp.MustCompile(`(?m)^(\d+)\s+\d+\s+exit \d+\s+` + regexp.QuoteMeta(cmd) + `$`).FindStringSubmatch(o)
		if m == nil {
			t.Errorf("ps -a lacks %q:\n%s", cmd, o)
			continue
		}
		stagePIDs[m[1]] = cmd
	}
	// Each stage ran on a server of its own: one server per stage pid.
	servers := map[string]string{} // pid -> server name
	for _, s := range emu.Servers() {
		if s.Metadata["rack-namespace"] != ns {
			continue
		}
		pid := s.Metadata["rack-pid"]
		if prev, dup := servers[pid]; dup {
			t.Errorf("pid %s has two servers: %s and %s", pid, prev, s.Name)
		}
		servers[pid] = s.Name
	}
	var pids []string
	for pid := range stagePIDs {
		pids = append(pids, pid)
		if servers[pid] == "" {
			t.Errorf("stage %q (pid %s) ran on no server of its own; servers: %v", stagePIDs[pid], pid, servers)
		}
	}
	sort.Strings(pids)
	if len(servers) != len(stagePIDs) {
		t.Errorf("%d servers for %d stages: %v", len(servers), len(stagePIDs), servers)
	}
	t.Logf("%d stages on %d emulated servers in %v; Nova calls %v", len(stagePIDs), len(servers), elapsed.Round(time.Millisecond), emu.Calls())
	for _, s := range emu.Servers() {
		if s.Metadata["rack-namespace"] != ns {
			continue
		}
		if s.Status != "DELETED" && s.TaskState != "deleting" {
			t.Errorf("after the shell ended, server %s is %s (%s)", s.Name, s.Status, s.TaskState)
		}
		if t.Failed() {
			t.Logf("console of %s:\n%s", s.Name, consoles[s.Name])
		}
	}
}
