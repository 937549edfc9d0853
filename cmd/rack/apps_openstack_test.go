package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
	"github.com/rackfork/rack/openstack"
)

// TestInstalledAppOnOpenStack: on openstack:// (real Keystone and Swift,
// the Nova emulator) an installed app's process boots from the published
// binary: the server's user-data fetches BinaryObject(sha256) of the
// binaries container, which install put there, and nothing of the shell's
// own is staged; the app reads its input and writes its output through
// rack pipes on Swift.
func TestInstalledAppOnOpenStack(t *testing.T) {
	cloud, addr := os.Getenv("RACK_KEYSTONE_CLOUD"), os.Getenv("RACK_NOVA_ADDR")
	if os.Getenv("RACK_KEYSTONE") != "1" || cloud == "" || addr == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" && os.Getenv("RACK_KEYSTONE") == "1" {
			t.Fatal("RACK_KEYSTONE=1 needs RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR (the compute endpoint in Keystone's catalog)")
		}
		t.Skip("no OpenStack: RACK_KEYSTONE=1, RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR select Keystone, Swift and the Nova emulator")
	}
	// Other packages' tests use the same address: take turns.
	unlock, err := novaemu.LockAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	locked := time.Now()
	buildApps(t)
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 3,
		Faults: novaemu.Faults{BootDelay: 100 * time.Millisecond, DeleteDelay: 10 * time.Minute}}) // deleted servers stay visible
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()

	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	url := "openstack://" + cloud + "/rack-apps-os-" + id + "?image=cirros&flavor=m1.tiny&network=none"
	name := "upper-" + id
	upper := filepath.Join(appsDir, "upper")
	sum := fileSHA256(t, upper)
	env := map[string]string{"XDG_CACHE_HOME": t.TempDir(), "PATH": t.TempDir()}
	defer runAt(t, url, env, "", "uninstall", name)

	out, errOut, code := runAt(t, url, env, "install "+upper+" "+name+"\necho hello cloud | "+name+"\necho status $?\n")
	if code != 0 || !strings.Contains(out, "installed "+name+": sha256 "+sum[:12]) || !strings.Contains(out, "HELLO CLOUD\nstatus 0\n") {
		for _, s := range emu.Servers() {
			t.Logf("server %s %s exit %d: console:\n%s", s.Name, s.Status, s.ExitCode, s.Console)
		}
		t.Fatalf("status %d:\n%s%s", code, out, errOut)
	}
	t.Logf("install and run on an emulated server: %v", time.Since(locked).Round(time.Millisecond))
	servers := emu.Servers()
	if len(servers) != 1 {
		t.Fatalf("%d servers, want 1 (the app's)", len(servers))
	}
	object := openstack.BinariesContainer + "/" + nova.BinaryObject(sum)
	if ud := string(servers[0].UserData); !strings.Contains(ud, object) || !strings.Contains(ud, sum) {
		t.Errorf("the server does not boot %s:\n%s", object, ud)
	}
	if entries, _ := os.ReadDir(env["XDG_CACHE_HOME"]); len(entries) != 0 {
		t.Errorf("the shell fetched the app on openstack://: %v", entries)
	}
}
