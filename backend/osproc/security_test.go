//go:build linux

package osproc_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/osproc"
	"github.com/rackfork/rack/internal/handoff"
)

// reportHandoff writes dir/<name>.result: the digest of the RACK_PROC it
// was handed over, and the leaks it finds in its /proc/self/environ.
func reportHandoff(dir, name string) int {
	v, ok := handoff.Get("RACK_PROC")
	sum := sha256.Sum256([]byte(v))
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var out strings.Builder
	fmt.Fprintf(&out, "handed %v %s\n", ok, hex.EncodeToString(sum[:]))
	for _, k := range []string{"RACK_PROC=", "OS_PASSWORD=", "OS_AUTH_URL=", "ST_KEY=", "RACK_CREDENTIAL_URL=", "RACK_KERNEL=", handoff.FDEnv + "="} {
		if strings.Contains(string(environ), k) && k != handoff.FDEnv+"=" { // the descriptor's number is no secret
			fmt.Fprintf(&out, "environ has %s\n", k)
		}
		if os.Getenv(strings.TrimSuffix(k, "=")) != "" {
			fmt.Fprintf(&out, "getenv has %s\n", k)
		}
	}
	if os.Getenv("OSPROC_TEST_KEPT") != "kept" {
		fmt.Fprintln(&out, "did not inherit OSPROC_TEST_KEPT")
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(out.String()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0 // the test waits for the exit hook, then reads tmp
}

// The process record (RACK_PROC) reaches a child through the hand-over
// pipe, small or larger than a pipe's buffer, and neither it nor the
// parent's credentials are in the child's environment; the rest of the
// parent's environment is.
func TestHandoffAndWithheldEnvironment(t *testing.T) {
	t.Setenv("OS_PASSWORD", "pw")
	t.Setenv("OS_AUTH_URL", "http://keystone.example")
	t.Setenv("ST_KEY", "key")
	t.Setenv("RACK_CREDENTIAL_URL", "http://cred.example")
	t.Setenv("RACK_KERNEL", "0123")
	t.Setenv("OSPROC_TEST_KEPT", "kept")
	var ex exits
	c, err := osproc.New(osproc.WithExitHook(ex.hook))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	for i, size := range []int{100, 16 << 10, 300 << 10} {
		name := fmt.Sprintf("hand-%03d", i+1)
		record := strings.Repeat("r", size)
		req := request(name, "handoff", dir)
		req.Env["RACK_PROC"] = record
		if _, err := c.Start(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, name+"'s exit", func() bool { return ex.get(name) != nil })
		if code := ex.get(name).ExitCode(); code != 0 {
			t.Fatalf("%s exited %d", name, code)
		}
		got, err := os.ReadFile(filepath.Join(dir, "."+name+".tmp"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(record))
		want := "handed true " + hex.EncodeToString(sum[:]) + "\n"
		if string(got) != want {
			t.Errorf("%d-byte record: the child reports\n%s\nwant\n%s", size, got, want)
		}
	}
}

func TestWithheld(t *testing.T) {
	for k, want := range map[string]bool{
		"OS_PASSWORD": true, "OS_APPLICATION_CREDENTIAL_SECRET": true, "OS_TOKEN": true, "OS_CLOUD": true,
		"ST_KEY": true, "ST_USER": true, "ST_AUTH": true,
		"RACK_PROC": true, "RACK_KERNEL": true, "RACK_CREDENTIAL_URL": true, "RACK_CREDENTIAL_DELETE_URL": true, handoff.FDEnv: true,
		"PATH": false, "HOME": false, "RACK_URL": false, "RACK_PID": false, "GOMAXPROCS": false, "HOSTNAME": false,
	} {
		if got := osproc.Withheld(k); got != want {
			t.Errorf("Withheld(%q) = %v, want %v", k, got, want)
		}
	}
}

// A log planted as a link to a file of this user's, or as another user's
// file, is replaced, not written through; a log directory of another
// user's, or that others may write in, is refused.
func TestLogsNotWrittenThroughPlantedFiles(t *testing.T) {
	logs := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(logs, "planted-001"+osproc.LogSuffix)); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, filepath.Join(logs, "planted-002"+osproc.LogSuffix)); err != nil {
		t.Fatal(err)
	}
	var ex exits
	c, err := osproc.New(osproc.WithLogDir(logs), osproc.WithExitHook(ex.hook))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	for _, name := range []string{"planted-001", "planted-002"} {
		if _, err := c.Start(context.Background(), request(name, "print", dir)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, name+"'s exit", func() bool { return ex.get(name) != nil })
		rc, err := c.Logs(context.Background(), name, false)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(data), "out 1 "+name) {
			t.Errorf("log of %s: %q", name, data)
		}
	}
	if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
		t.Fatalf("a log was written into the victim: %q", data)
	}

	for _, bad := range []struct {
		name  string
		mode  os.FileMode
		owner int
		why   string
	}{
		{"open", 0o777, -1, "every user may write"},
		{"group", 0o770, -1, "its group may write"},
		{"nobodys", 0o700, 65534, "belongs to user 65534"},
	} {
		if bad.owner >= 0 && os.Geteuid() != 0 {
			continue
		}
		d := filepath.Join(t.TempDir(), bad.name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, bad.mode)
		if bad.owner >= 0 {
			os.Chown(d, bad.owner, bad.owner)
		}
		c, err := osproc.New(osproc.WithLogDir(d))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Start(context.Background(), request("x-001", "print", dir))
		c.Close()
		if err == nil || !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), d) || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("Start with log directory %s (mode %#o): %v, want an ErrInvalid naming it and saying %q", d, bad.mode, err, bad.why)
		}
	}
}
