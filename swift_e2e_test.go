package rack_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// swiftURL returns a swift+v1 URL for a fresh namespace on the Swift that
// SWIFT_AUTH_URL names, or skips (fails under RACK_REQUIRE_SWIFT=1).
func swiftURL(t *testing.T) string {
	t.Helper()
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			t.Fatal("Swift required (RACK_REQUIRE_SWIFT=1) but SWIFT_AUTH_URL is unset: start it with scripts/swift-saio.sh")
		}
		t.Skip("no Swift: SWIFT_AUTH_URL unset (scripts/swift-saio.sh starts one)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "swift+v1:///rack-e2e-" + hex.EncodeToString(b[:])
}

func openSwift(t *testing.T, ctx context.Context, url string) *rack.Kernel {
	t.Helper()
	k, err := rack.Open(ctx, url, rack.WithPolling(5*time.Millisecond, 200*time.Millisecond),
		rack.WithRecordTTL(time.Hour), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestSwiftEndToEnd runs the protocol over a real Swift, which cannot
// notify: exit statuses, pipe EOF with a killed writer, a signal and a wait
// across kernels, ps, and files other Swift clients can read.
func TestSwiftEndToEnd(t *testing.T) {
	url := swiftURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := openSwift(t, ctx, url)
	b := openSwift(t, ctx, url)

	blocked := make(chan rack.PID, 1)
	root, err := a.Start(ctx, rack.Spec{Name: "e2e"}, func(ctx context.Context, self *rack.Self) error {
		if args := self.Args(); len(args) == 1 {
			fmt.Fprintf(self.Stdout(), "line from %s\n", args[0])
			switch args[0] {
			case "ok":
				return nil
			case "error":
				return errors.New("it failed")
			case "panic":
				panic("boom")
			case "exit3":
				return rack.Exit(3)
			case "block":
				<-ctx.Done()
				return ctx.Err()
			}
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		want := map[string]int{"ok": 0, "error": 1, "panic": 2, "exit3": 3, "block": 128 + 9}
		kids := map[string]*rack.Process{}
		for name := range want {
			c, err := self.Fork(ctx, rack.Spec{Name: name, Args: []string{name}, Stdout: w})
			if err != nil {
				return err
			}
			kids[name] = c
		}
		w.Close()
		blocked <- kids["block"].PID()
		lines := 0
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines++
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading the pipe: %w", err)
		}
		if lines != len(want) {
			return fmt.Errorf("read %d lines, want %d", lines, len(want))
		}
		for name, code := range want {
			err := kids[name].Wait(ctx)
			var ee *rack.ExitError
			switch {
			case code == 0 && err != nil:
				return fmt.Errorf("%s: %v", name, err)
			case code != 0 && (!errors.As(err, &ee) || ee.Code() != code):
				return fmt.Errorf("%s: Wait = %v, want exit code %d", name, err, code)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Kernel b kills the blocked child through kernel a's signal inbox.
	var pid rack.PID
	select {
	case pid = <-blocked:
	case <-ctx.Done():
		t.Fatal("root never forked")
	}
	p, err := b.Process(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	var ee *rack.ExitError
	if err := p.Wait(ctx); !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL {
		t.Fatalf("wait from kernel b: %v, want SIGKILL", err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := b.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 6 {
		t.Errorf("ps from kernel b: %d processes, want 6: %+v", len(ps), ps)
	}
}

// TestSwiftFilesInterop: a file written through rack is an ordinary Swift
// object that the swift command-line client reads, and the other way round.
func TestSwiftFilesInterop(t *testing.T) {
	url := swiftURL(t)
	cli, err := exec.LookPath("swift")
	if err != nil {
		t.Fatal("the swift CLI (python3-swiftclient) is missing: scripts/swift-saio.sh installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := openSwift(t, ctx, url)
	container := strings.TrimPrefix(url, "swift+v1:///") + "-files"
	f, err := k.Create(ctx, "/"+container+"/dir/result.txt")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "written by rack\n")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "ST_AUTH="+os.Getenv("SWIFT_AUTH_URL"), "ST_USER="+os.Getenv("SWIFT_USER"), "ST_KEY="+os.Getenv("SWIFT_KEY"))
	cmd := exec.CommandContext(ctx, cli, "download", container, "dir/result.txt", "-o", "-")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "written by rack\n" {
		t.Fatalf("swift download: %q, %v", out, err)
	}
	src := t.TempDir() + "/up.txt"
	if err := os.WriteFile(src, []byte("uploaded by the swift CLI\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, cli, "upload", "--object-name", "from-cli.txt", container, src)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("swift upload: %s, %v", out, err)
	}
	g, err := k.Open(ctx, "/"+container+"/from-cli.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	data, _ := io.ReadAll(g)
	if string(data) != "uploaded by the swift CLI\n" {
		t.Fatalf("rack read %q", data)
	}
}

// TestOpenSwiftCloud opens a namespace by clouds.yaml entry (Keystone v3)
// and runs a fork, a pipe and a wait in it; ps then shows the processes
// from the summaries in Swift's listings.
func TestOpenSwiftCloud(t *testing.T) {
	cloud := os.Getenv("RACK_KEYSTONE_CLOUD")
	if os.Getenv("RACK_KEYSTONE") != "1" || cloud == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" && os.Getenv("RACK_KEYSTONE") == "1" {
			t.Fatal("RACK_KEYSTONE=1 but RACK_KEYSTONE_CLOUD is unset")
		}
		t.Skip("no Keystone: RACK_KEYSTONE=1 with RACK_KEYSTONE_CLOUD and OS_CLIENT_CONFIG_FILE selects it (.ci/run sets them)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	url := "swift://" + cloud + "/rack-cloud-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := openSwift(t, ctx, url)
	var out strings.Builder
	root, err := k.Start(ctx, rack.Spec{Name: "cloud-root"}, func(ctx context.Context, self *rack.Self) error {
		if len(self.Args()) > 0 {
			fmt.Fprintf(self.Stdout(), "hello from %d\n", self.PID())
			return rack.Exit(4)
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		c, err := self.Fork(ctx, rack.Spec{Name: "cloud-child", Args: []string{"x"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if _, err := io.Copy(&out, r); err != nil {
			return err
		}
		var ee *rack.ExitError
		if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Code() != 4 {
			return fmt.Errorf("child: Wait = %v, want exit 4", err)
		}
		infos, err := k.Processes(ctx)
		if err != nil {
			return err
		}
		for _, in := range infos {
			if in.PID == c.PID() && in.State == rack.Exited && in.ExitCode == 4 && in.Name == "cloud-child" {
				return nil
			}
		}
		return fmt.Errorf("ps does not show the child exited 4: %+v", infos)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "hello from ") {
		t.Errorf("child's output %q", out.String())
	}
}
