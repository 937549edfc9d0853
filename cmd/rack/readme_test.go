package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// readmeTour returns the Go block of the README's "A short tour" and the
// same part of examples/tour, between its markers.
func readmeTour(t *testing.T) (readme, example string) {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n## A short tour\n\n```go\n(.*?)```\n").FindSubmatch(data)
	if m == nil {
		t.Fatal("README.md has no Go block under \"## A short tour\"")
	}
	src, err := os.ReadFile("../../examples/tour/main.go")
	if err != nil {
		t.Fatal(err)
	}
	e := regexp.MustCompile("(?s)// README tour begin\n(.*?)// README tour end\n").FindSubmatch(src)
	if e == nil {
		t.Fatal("examples/tour/main.go has no README tour markers")
	}
	return strings.TrimSpace(string(m[1])), strings.TrimSpace(string(e[1]))
}

// TestReadmeExamples runs each program of the README both ways it shows,
// directly and from the shell, and wants the same result: the tour (whose
// code examples/tour holds, byte for byte) and montecarlo. The README's
// other Go blocks are fragments (a TestMain, a driver's init), not
// programs.
func TestReadmeExamples(t *testing.T) {
	readme, example := readmeTour(t)
	if readme != example {
		t.Fatalf("the README's tour and examples/tour/main.go differ:\nREADME:\n%s\n\nexamples/tour:\n%s", readme, example)
	}
	buildApps(t)
	cmd := exec.Command("go", "build", "-o", appsDir+"/", "github.com/rackfork/rack/examples/tour")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// direct runs the app as a user would, in namespace url (mem:// or a
	// new file:// one), and returns its stdout.
	direct := func(t *testing.T, url string, app string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, filepath.Join(appsDir, app), args...)
		c.Env = append(os.Environ(), "RACK_URL="+url)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			t.Fatalf("%s %s on %s: %v\nstdout:\n%s\nstderr:\n%s", app, strings.Join(args, " "), url, err, out.String(), errb.String())
		}
		return out.String()
	}
	shell := func(t *testing.T, line string) string {
		t.Helper()
		out, errOut, code := runShell(t, t.TempDir(), line+"\n")
		if code != 0 || errOut != "" {
			t.Fatalf("rack -c %q: status %d\nstdout:\n%s\nstderr:\n%s", line, code, out, errOut)
		}
		return out
	}
	sorted := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	t.Run("tour", func(t *testing.T) {
		// The children's lines come in either order.
		const want = "worked on a\nworked on b"
		for name, got := range map[string]string{
			"directly on mem://":            direct(t, "mem://", "tour"),
			"directly on file://":           direct(t, "file://"+t.TempDir(), "tour"),
			"from the shell":                shell(t, "tour"),
			"from the shell, in a pipeline": shell(t, "tour | upper"),
		} {
			if name == "from the shell, in a pipeline" {
				got = strings.ToLower(got)
			}
			if sorted(got) != want {
				t.Errorf("tour %s printed %q, want the lines of %q", name, got, want)
			}
		}
	})
	t.Run("montecarlo", func(t *testing.T) {
		// The README's quick start and its shell demo, smaller; a seed
		// makes the runs repeatable. Only the time row may differ.
		args := []string{"--trials", "1000000", "--workers", "10", "--seed", "7"}
		noTime := func(s string) string {
			return regexp.MustCompile(`(?m)^\| time .*\n`).ReplaceAllString(s, "")
		}
		want := noTime(direct(t, "mem://", "montecarlo", args...))
		if !strings.Contains(want, "| pi ") {
			t.Fatalf("montecarlo printed no report:\n%s", want)
		}
		for name, got := range map[string]string{
			"directly on file://":                 direct(t, "file://"+t.TempDir(), "montecarlo", args...),
			"from the shell":                      shell(t, "montecarlo "+strings.Join(args, " ")),
			"from the shell, through a rack file": shell(t, fmt.Sprintf("montecarlo %s --stdout /output/result.txt; cat /output/result.txt", strings.Join(args, " "))),
		} {
			if noTime(got) != want {
				t.Errorf("montecarlo %s printed\n%s\nwant (directly on mem://)\n%s", name, got, want)
			}
		}
	})
}
