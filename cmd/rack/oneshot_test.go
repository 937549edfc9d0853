package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/file"
)

// namespaceObjects lists the objects of the namespace container "rack" in
// the file store at dir.
func namespaceObjects(t *testing.T, dir string) []string {
	t.Helper()
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	marker := ""
	for {
		page, err := s.List(context.Background(), "rack", backend.ListOptions{Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return names
		}
		for _, o := range page {
			names = append(names, o.Name)
		}
		marker = page[len(page)-1].Name
	}
}

// TestOneShotLeavesNothing: successive one-shot builtins (rack ps, rack
// -c 'ls /x', rack gc, rack kill N) leave no process record and claim no
// pid block: the namespace's objects stay what the first run left (its
// marker), and the first app a later shell forks gets pid 100.
func TestOneShotLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := runShell(t, dir, "", "ps"); code != 0 {
		t.Fatalf("rack ps: status %d: %s", code, errOut)
	}
	first := namespaceObjects(t, dir)
	if len(first) != 1 || first[0] != "rack-namespace" {
		t.Errorf("after one rack ps the namespace holds %q, want only its marker", first)
	}
	for i := range 4 {
		out, errOut, code := runShell(t, dir, "", "ps", "-a")
		if code != 0 || out != "PID  PPID  STATE  STATUS  CMD\n" {
			t.Errorf("rack ps -a #%d: status %d, output %q, stderr %q", i+2, code, out, errOut)
		}
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"-c", "echo x > /out/x; ls /out; cat /out/x"}, 0},
		{[]string{"gc"}, 0},
		{[]string{"kill", "99999"}, 1},
		{[]string{"-c", "ps; exit 3"}, 3},
		{[]string{"-c", ""}, 0},
		{[]string{"-c", "# a comment"}, 0},
		{[]string{"-c", "ps |"}, 2},
		{[]string{"apps"}, 0},
	} {
		if _, errOut, code := runShell(t, dir, "", c.args...); code != c.code {
			t.Errorf("rack %q: status %d, want %d: %s", c.args, code, c.code, errOut)
		}
	}
	if got := namespaceObjects(t, dir); strings.Join(got, " ") != strings.Join(first, " ") {
		t.Errorf("one-shot builtins left objects: %q, want %q", got, first)
	}
	// A line with an app, a pipe or a background job still runs as a
	// process: ps shows the shell while it runs.
	out, errOut, code := runShell(t, dir, "", "-c", "echo a | cat; ps")
	if code != 0 || !strings.Contains(out, "a\n") || !strings.Contains(out, "100  1     running          rack --url file://") {
		t.Errorf("a pipeline: status %d, output %q, stderr %q", code, out, errOut)
	}
}
