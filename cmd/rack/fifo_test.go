package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// TestNamedPipeLsRm: ls shows a named pipe in the namespace's directory
// (ls -l marks it p, as on Linux), and rm removes it.
func TestNamedPipeLsRm(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := rack.Open(ctx, "file://"+dir, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	ns := k.Namespace()
	if err := k.Mkfifo(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	k.Close()
	out, errOut, code := runShell(t, dir, strings.Join([]string{
		"ls /",
		"ls -l /" + ns,
		"ls -l /" + ns + "/jobs",
		"rm /" + ns + "/jobs",
		"echo rm $?",
		"ls /" + ns,
		"rm /" + ns + "/jobs",
		"echo rm again $?",
	}, "\n")+"\n")
	if code != 0 {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, re := range []string{
		`(?m)^` + ns + `/$`,
		`(?m)^\s+p\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+jobs$`,
		`(?m)^\s+p\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+/` + ns + `/jobs$`,
		`(?m)^rm 0\n(rm again 1)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s\nstderr:\n%s", re, out, errOut)
		}
	}
	if !strings.Contains(errOut, "rm: cannot remove '/"+ns+"/jobs': No such file or directory") {
		t.Errorf("second rm: stderr %q, want a not-exist error", errOut)
	}
}
