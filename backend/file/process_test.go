package file_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/file"
)

// The multi-process tests re-execute the test binary as helper processes
// (TestHelperProcess with RACK_FILE_HELPER set) that take commands, one
// per line, on stdin and answer on stdout.

const helperEnv = "RACK_FILE_HELPER"

// raceContent is what helper id writes in a create-only race for name.
func raceContent(id, name string) []byte {
	return bytes.Repeat([]byte("process "+id+" writes "+name+"|"), 8000) // ~200 KiB
}

// overwriteVersion is version v of the object the overwrite helper writes.
func overwriteVersion(v int) ([]byte, map[string]string) {
	size := 1000 + (v%7)*40000
	return bytes.Repeat([]byte{byte('a' + v%26)}, size), map[string]string{"v": strconv.Itoa(v % 26), "size": strconv.Itoa(size)}
}

// TestHelperProcess is not a test: it is the body of the helper processes.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("only runs as a helper process")
	}
	os.Exit(helper(mode, os.Getenv("RACK_FILE_DIR"), os.Getenv("RACK_FILE_ID")))
}

func helper(mode, dir, id string) int {
	ctx := context.Background()
	s, err := file.New(dir, file.WithoutSync())
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer s.Close()
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	switch mode {
	case "race":
		fmt.Fprintln(out, "ready")
		out.Flush()
		for in.Scan() {
			name := in.Text()
			_, err := s.Put(ctx, "c", name, bytes.NewReader(raceContent(id, name)), &backend.PutOptions{CreateOnly: true})
			switch {
			case err == nil:
				fmt.Fprintln(out, "won")
			case errors.Is(err, backend.ErrExist):
				fmt.Fprintln(out, "lost")
			default:
				fmt.Fprintln(out, "error", err)
			}
			out.Flush()
		}
	case "put":
		fmt.Fprintln(out, "ready")
		out.Flush()
		for in.Scan() {
			name := in.Text()
			t0 := time.Now().UnixNano()
			_, err := s.Put(ctx, "c", name, strings.NewReader(name), nil)
			t1 := time.Now().UnixNano()
			if err != nil {
				fmt.Fprintln(out, "error", err)
			} else {
				fmt.Fprintln(out, t0, t1)
			}
			out.Flush()
		}
	case "overwrite":
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
		fmt.Fprintln(out, "ready")
		out.Flush()
		for v := 1; ; v++ {
			select {
			case <-done:
				fmt.Fprintln(out, v-1)
				out.Flush()
				return 0
			default:
			}
			data, meta := overwriteVersion(v)
			if _, err := s.Put(ctx, "c", "obj", bytes.NewReader(data), &backend.PutOptions{Metadata: meta}); err != nil {
				fmt.Fprintln(out, "error", err)
				out.Flush()
				return 1
			}
		}
	}
	return 0
}

// child is a running helper process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startHelper starts a helper in mode on dir and waits until it is ready.
func startHelper(t *testing.T, mode, dir, id string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "RACK_FILE_DIR="+dir, "RACK_FILE_ID="+id)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		c.in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if line := c.line(t); line != "ready" {
		t.Fatalf("helper %s: %q, want ready", id, line)
	}
	return c
}

// line reads the child's next answer.
func (c *child) line(t *testing.T) string {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("helper %d ended: %v", c.cmd.Process.Pid, c.out.Err())
	}
	return c.out.Text()
}

// Eight OS processes race create-only Puts of one name, round after round:
// in each, exactly one wins and the object holds its content.
func TestMultiProcessCreateOnlyRace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	const procs, rounds = 8, 25
	kids := make([]*child, procs)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kids[i] = startHelper(t, "race", dir, strconv.Itoa(i))
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	wins := make([]int, procs)
	for r := range rounds {
		name := fmt.Sprintf("contested/%d", r)
		// The barrier: every helper is blocked reading stdin; release
		// them all at once.
		for _, k := range kids {
			io.WriteString(k.in, name+"\n")
		}
		winner := -1
		for i, k := range kids {
			switch ans := k.line(t); ans {
			case "won":
				if winner >= 0 {
					t.Fatalf("round %d: processes %d and %d both won", r, winner, i)
				}
				winner = i
			case "lost":
			default:
				t.Fatalf("round %d: process %d: %s", r, i, ans)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no process won", r)
		}
		wins[winner]++
		got, _ := mustGet(t, s, "c", name)
		if want := raceContent(strconv.Itoa(winner), name); !bytes.Equal(got, want) {
			t.Fatalf("round %d: stored content is not the winner's (%d bytes, starts %q)", r, len(got), got[:min(len(got), 30)])
		}
	}
	t.Logf("wins per process over %d rounds: %v", rounds, wins)
}

// A Put by another process wakes this process's watchers of the name, and
// only those, through inotify and through polling.
func TestCrossProcessNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name string
		opts []file.Option
	}{
		{"inotify", nil},
		{"polling", []file.Option{file.WithoutInotify()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := newStore(t, dir, tc.opts...)
			if err := s.CreateContainer(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			kid := startHelper(t, "put", dir, "0")
			unrelated := s.Changed("c", "unrelated")
			const rounds = 30
			var afterPut, afterStart []time.Duration
			for r := range rounds {
				key := fmt.Sprintf("k/%d", r)
				watch := s.Changed("c", key)
				if r%2 == 1 {
					watch = s.Changed("c", "k/") // a prefix
				}
				io.WriteString(kid.in, key+"\n")
				select {
				case <-watch:
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: no notification 10 s after asking the other process to Put", r)
				}
				fired := time.Now().UnixNano()
				fields := strings.Fields(kid.line(t))
				if len(fields) != 2 || fields[0] == "error" {
					t.Fatalf("round %d: helper: %v", r, fields)
				}
				t0, _ := strconv.ParseInt(fields[0], 10, 64)
				t1, _ := strconv.ParseInt(fields[1], 10, 64)
				afterStart = append(afterStart, time.Duration(fired-t0))
				afterPut = append(afterPut, time.Duration(max(fired-t1, 0)))
				if got, _ := mustGet(t, s, "c", key); string(got) != key {
					t.Fatalf("round %d: notified, then Get = %q", r, got)
				}
			}
			select {
			case <-unrelated:
				t.Fatal("the watcher of an unchanged name was woken")
			default:
			}
			slices.Sort(afterPut)
			slices.Sort(afterStart)
			t.Logf("%s: notification after the other process's Put returned: median %v, max %v; after it started: median %v, max %v",
				tc.name, afterPut[rounds/2], afterPut[rounds-1], afterStart[rounds/2], afterStart[rounds-1])
		})
	}
}

// Another process overwrites an object as fast as it can while this one
// reads it: every Get and Head sees one whole version.
func TestCrossProcessOverwriteVsReader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	data, meta := overwriteVersion(0)
	mustPut(t, s, "c", "obj", data, &backend.PutOptions{Metadata: meta})
	kid := startHelper(t, "overwrite", dir, "0")
	deadline := time.Now().Add(time.Second)
	reads := 0
	versions := map[byte]bool{}
	for time.Now().Before(deadline) {
		got, info := mustGet(t, s, "c", "obj")
		if len(got) == 0 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
			t.Fatalf("Get returned mixed content (%d bytes)", len(got))
		}
		if info.Metadata["v"] != strconv.Itoa(int(got[0]-'a')) || info.Metadata["size"] != strconv.Itoa(len(got)) || info.Size != int64(len(got)) {
			t.Fatalf("Get: metadata %v and size %d with %d bytes of %q", info.Metadata, info.Size, len(got), got[:1])
		}
		h, err := s.Head(ctx, "c", "obj")
		if err != nil {
			t.Fatal(err)
		}
		if h.Metadata["size"] != strconv.FormatInt(h.Size, 10) {
			t.Fatalf("Head: metadata %v with size %d", h.Metadata, h.Size)
		}
		versions[got[0]] = true
		reads++
	}
	kid.in.Close()
	written := kid.line(t)
	if len(versions) < 2 {
		t.Fatalf("saw only %d version(s) in %d reads: did the other process write?", len(versions), reads)
	}
	t.Logf("%d consistent reads while the other process wrote %s versions", reads, written)
}
