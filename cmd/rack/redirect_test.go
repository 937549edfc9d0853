package main

import (
	"context"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rackfork/rack"
)

// TestAppendFile checks >>'s read-and-rewrite: appends one after another
// keep every line, and two first appends racing to create the file both
// land (the loser of the create-only write appends to the winner's file).
func TestAppendFile(t *testing.T) {
	ctx := context.Background()
	k, err := rack.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	read := func(path string) string {
		t.Helper()
		f, err := k.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, line := range []string{"a\n", "b\n", "c\n"} {
		a := &appendFile{ctx: ctx, k: k, path: "/x/seq"}
		if _, err := io.WriteString(a, line); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := read("/x/seq"); got != "a\nb\nc\n" {
		t.Errorf("sequential appends: %q", got)
	}

	for round := 0; round < 20; round++ {
		path := "/x/race" + strings.Repeat("r", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, line := range []string{"one\n", "two\n"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := &appendFile{ctx: ctx, k: k, path: path}
				_, _ = io.WriteString(a, line)
				errs[i] = a.Close()
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("racing first appends: %v, %v", errs[0], errs[1])
		}
		lines := strings.SplitAfter(read(path), "\n")
		sort.Strings(lines)
		if got := strings.Join(lines, ""); got != "one\ntwo\n" {
			t.Fatalf("racing first appends: the file holds %q, want both lines", got)
		}
	}
}
