package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/novaemu"
)

// TestMain lets this test binary serve as the program that file://
// namespaces start for each worker.
func TestMain(m *testing.M) {
	if rack.Launched() {
		rack.Main(parent) // a forked worker: runs it and exits
	}
	os.Exit(m.Run())
}

// text returns n random words (some with capitals, digits or non-ASCII
// letters) separated by spaces, punctuation and newlines.
func text(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"pi", "Pi", "rack", "cloud", "façade", "日本語", "x2", "42", "über", "a"}
	seps := []string{" ", "\n", ", ", "! ", "\t", " — ", "...", "'"}
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteString(seps[rng.IntN(len(seps))])
	}
	return b.String()
}

// reference counts the words of s the simplest way.
func reference(s string) map[string]int64 {
	counts := map[string]int64{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isWordRune(r) }) {
		counts[strings.ToLower(w)]++
	}
	return counts
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestChunksNeverSplitWords deals the same text out in chunks of every
// small size, read a byte at a time or whole: the chunks rejoin to the
// text and counting them one by one gives the reference counts.
func TestChunksNeverSplitWords(t *testing.T) {
	s := text(1, 2000)
	want := reference(s)
	for size := 1; size < 64; size++ {
		for _, r := range []io.Reader{strings.NewReader(s), iotest.OneByteReader(strings.NewReader(s))} {
			var joined bytes.Buffer
			got := map[string]int64{}
			err := Chunks(r, size, func(c []byte) error {
				joined.Write(c)
				countChunk(c, got)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if joined.String() != s {
				t.Fatalf("size %d: chunks do not rejoin to the input", size)
			}
			if !equalCounts(got, want) {
				t.Fatalf("size %d: counts differ from the reference", size)
			}
		}
	}
	// A reader's error ends it.
	boom := errors.New("boom")
	if err := Chunks(iotest.ErrReader(boom), 8, func([]byte) error { return nil }); !errors.Is(err, boom) {
		t.Errorf("Chunks of a failing reader: %v", err)
	}
}

// runWordcount starts wordcount in the namespace url with stdin as its
// input.
func runWordcount(t *testing.T, url, stdin string, setup func(k *rack.Kernel), args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	k, err := rack.Open(ctx, url, rack.WithConsole(strings.NewReader(stdin), &out, &errb),
		rack.WithPolling(5*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if setup != nil {
		setup(k)
	}
	p, err := k.Start(ctx, rack.Spec{Name: "wordcount", Args: args}, parent)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait(ctx)
	return out.String(), errb.String(), err
}

// format prints counts as wordcount does.
func format(counts map[string]int64, top int) string {
	var b strings.Builder
	for i, wc := range Sorted(counts) {
		if top > 0 && i == top {
			break
		}
		fmt.Fprintf(&b, "%7d %s\n", wc.Count, wc.Word)
	}
	return b.String()
}

func TestStdin(t *testing.T) {
	out, stderr, err := runWordcount(t, "mem://", "the cat The dog\ncat, cat! dog\n", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if want := "      3 cat\n      2 dog\n      2 the\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	out, _, err = runWordcount(t, "mem://", "b a b c b a\n", nil, "--top", "2")
	if err != nil || out != "      3 b\n      2 a\n" {
		t.Errorf("--top 2: %q, %v", out, err)
	}
}

// TestWorkers deals standard input, and files, out to workers: the counts
// are exactly the reference's, on goroutines and on OS processes.
func TestWorkers(t *testing.T) {
	s := text(2, 300000) // about 2 MB: several chunks per worker
	want := format(reference(s), 0)
	files := []string{text(3, 5000), text(4, 1), "", text(5, 70000)}
	wantFiles := format(reference(strings.Join(files, " ")), 0)
	setup := func(k *rack.Kernel) {
		for i, content := range files {
			f, err := k.Create(context.Background(), fmt.Sprintf("/books/b%d.txt", i))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(f, content)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, url := range []string{"mem://", "file://" + t.TempDir()} {
		out, stderr, err := runWordcount(t, url, s, nil, "--workers", "3")
		if err != nil || out != want {
			t.Errorf("%s: stdin with 3 workers: %v (%d bytes of output, want %d)\n%s", url, err, len(out), len(want), stderr)
		}
		// A directory: one worker per file.
		out, stderr, err = runWordcount(t, url, "", setup, "/books")
		if err != nil || out != wantFiles {
			t.Errorf("%s: /books: %v\n%s\nwant:\n%s\n%s", url, err, out, wantFiles, stderr)
		}
		out, stderr, err = runWordcount(t, url, "", setup, "--workers", "1", "/books/b0.txt", "/books/b3.txt")
		if want := format(reference(files[0]+" "+files[3]), 0); err != nil || out != want {
			t.Errorf("%s: two files, one worker: %v\n%s", url, err, stderr)
		}
	}
}

// TestOnOpenStack runs the workers as Nova servers (the emulator of
// internal/novaemu, registered in a real Keystone's catalog) that fetch
// this test binary from a real Swift: they get their input through pipes
// in the namespace's container, the only one their credential reaches.
func TestOnOpenStack(t *testing.T) {
	cloud, addr := os.Getenv("RACK_KEYSTONE_CLOUD"), os.Getenv("RACK_NOVA_ADDR")
	if os.Getenv("RACK_KEYSTONE") != "1" || cloud == "" || addr == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" && os.Getenv("RACK_KEYSTONE") == "1" {
			t.Fatal("RACK_KEYSTONE=1 needs RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR")
		}
		t.Skip("no OpenStack: RACK_KEYSTONE=1, RACK_KEYSTONE_CLOUD and RACK_NOVA_ADDR select it (.ci/run sets them)")
	}
	unlock, err := novaemu.LockAddr(addr) // other packages' tests use it too
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	emu, err := novaemu.Start(novaemu.Config{Addr: addr, WorkDir: t.TempDir(), Seed: 6,
		Faults: novaemu.Faults{BootDelay: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	s := text(7, 100000)
	url := fmt.Sprintf("openstack://%s/wordcount-os-%d?image=cirros&flavor=m1.tiny&network=none", cloud, time.Now().UnixNano())
	start := time.Now()
	out, stderr, err := runWordcount(t, url, s, nil, "--workers", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if want := format(reference(s), 0); out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}
	t.Logf("3 workers on emulated servers: %v; Nova calls %v", time.Since(start).Round(time.Millisecond), emu.Calls())
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--workers", "-1"}, 2, "--workers must be at least 1"},
		{[]string{"--top", "x"}, 2, "invalid value"},
		{[]string{"/nope/missing.txt"}, 1, "wordcount: stat /nope/missing.txt: "},
		{[]string{"relative"}, 1, "wordcount: stat relative"},
	} {
		_, stderr, err := runWordcount(t, "mem://", "", nil, c.args...)
		var ee *rack.ExitError
		if !errors.As(err, &ee) || ee.Code() != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%q: %v, stderr %q; want code %d and %q", c.args, err, stderr, c.code, c.msg)
		}
	}
}

// BenchmarkWordcount counts about 8 MB with 1 and 4 workers on mem://.
func BenchmarkWordcount(b *testing.B) {
	s := text(9, 1_200_000)
	for _, workers := range []string{"1", "4"} {
		b.Run("workers="+workers, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for i := 0; i < b.N; i++ {
				ctx := context.Background()
				k, err := rack.Open(ctx, "mem://", rack.WithConsole(strings.NewReader(s), io.Discard, io.Discard))
				if err != nil {
					b.Fatal(err)
				}
				p, err := k.Start(ctx, rack.Spec{Name: "wordcount", Args: []string{"--workers", workers}}, parent)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				k.Close()
			}
		})
	}
}
