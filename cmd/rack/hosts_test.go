package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

func init() {
	// A child that runs on a host: it prints a line, then blocks.
	rack.Register("hosts-test-child", func(ctx context.Context, self *rack.Self) error {
		fmt.Fprintln(self.Stdout(), "running")
		<-ctx.Done()
		return ctx.Err()
	})
}

// TestHostsBuiltin: hosts lists a busy host (a copy of this test binary
// in host mode, running one child), as a table and as JSON; ps -f shows
// the child's host.
func TestHostsBuiltin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a host OS process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=2&idle=1s", rack.WithLease(3*time.Second),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var out, errOut string
	var code int
	var child *rack.Process
	var hosts []rack.HostInfo
	root, err := k.Start(ctx, rack.Spec{Name: "hosts-test"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		if child, err = self.Fork(ctx, rack.Spec{Program: "hosts-test-child", Stdout: w}); err != nil {
			return err
		}
		w.Close()
		if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
			return fmt.Errorf("the child's line: %w", err)
		}
		if hosts, err = k.Hosts(ctx); err != nil {
			return err
		}
		out, errOut, code = runShell(t, dir, "hosts\nhosts --json\nps -f\nhosts -x\n")
		child.Kill(ctx)
		child.Wait(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 {
		t.Fatalf("Hosts = %+v: want the one host", hosts)
	}
	h := hosts[0]
	if code != 1 || !strings.Contains(errOut, `hosts: unknown argument "-x"`) {
		t.Errorf("hosts -x: status %d, errors %q", code, errOut)
	}
	table := regexp.MustCompile(`(?m)^HOST +INSTANCE +STATE +SLOTS +IDLE +IDLE-LIMIT +AGE\n` +
		regexp.QuoteMeta(h.Kernel) + ` +` + regexp.QuoteMeta(h.Instance) + ` +busy +1/2 +- +1s +[0-9.]+(ms|s)$`)
	if !table.MatchString(out) {
		t.Errorf("hosts printed no row for %+v:\n%s", h, out)
	}
	start := strings.Index(out, "[")
	end := strings.Index(out, "]\n")
	var rows []hostRow
	if start < 0 || end < start {
		t.Fatalf("no JSON in:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[start:end+1]), &rows); err != nil {
		t.Fatalf("hosts --json: %v:\n%s", err, out)
	}
	if len(rows) != 1 || rows[0].Kernel != h.Kernel || rows[0].State != "busy" || rows[0].Used != 1 || rows[0].Slots != 2 ||
		rows[0].IdleLimit != 1 || rows[0].Age <= 0 {
		t.Errorf("hosts --json = %+v, want the busy host %s, 1 of 2 slots", rows, h.Kernel)
	}
	psRow := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +%d +running +%s +\\_ hosts-test-child$`, child.PID(), root.PID(), h.Kernel))
	if !psRow.MatchString(out) || !regexp.MustCompile(`(?m)^PID +PPID +STATE +STATUS +HOST +CMD$`).MatchString(out) {
		t.Errorf("ps -f shows no host %s for the child %d:\n%s", h.Kernel, child.PID(), out)
	}
	// Idle for 1 s, the host ends (before the test's directory goes).
	for {
		hosts, err := k.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the idle host did not end: %+v", hosts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // its last writes, as its OS process exits
}

// TestHostsListed: hosts is completed and in help, right after ps.
func TestHostsListed(t *testing.T) {
	sh := &shell{}
	found := false
	for _, c := range sh.commands("hos") {
		found = found || c == "hosts"
	}
	if !found {
		t.Errorf("completing hos: %v, want hosts", sh.commands("hos"))
	}
	var b strings.Builder
	builtinHelpFunc(context.Background(), &builtinEnv{stdout: &b}, nil)
	if !regexp.MustCompile(`(?m)^  ps \[-a\].*\n  hosts \[--json\] +list the namespace's hosts`).MatchString(b.String()) {
		t.Errorf("help does not list hosts after ps:\n%s", b.String())
	}
}
