// Command wordcount counts the words of its input the rack way: the parent
// reads its input (its standard input, or the rack files and directories
// it is given), deals it out in chunks through pipes to worker processes
// that count, and merges their counts; it prints "COUNT WORD" lines, most
// frequent first, as `tr -s ' ' '\n' | sort | uniq -c | sort -rn` would.
// A word is a run of letters and digits, in lower case.
//
//	wordcount [--workers N] [--top K] [PATH...]
//
// With no PATH it reads standard input, so it sits in a pipeline:
//
//	(rack)$ montecarlo --trials 1000000 --workers 4 | wordcount > /out/words.txt
//	(rack)$ cat /logs/a.txt /logs/b.txt | wordcount --top 10
//	(rack)$ wordcount --workers 8 /books          # every object of container books
//
// --workers defaults to one per file (at most 8), and to 1 for standard
// input; with 1 the parent counts by itself, forking nothing. The parent
// reads every input itself and the workers get theirs through pipes, so
// it runs the same on every backend: on openstack:// a child's credential
// reaches only the namespace's own containers, not the user's files.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rackfork/rack"
	_ "github.com/rackfork/rack/openstack" // swift:// and openstack:// namespaces
)

func main() { rack.Main(parent) }

func init() { rack.Register(workerProgram, worker) }

// workerProgram is the registered name of the counting worker.
const workerProgram = "wordcount-worker"

const (
	chunkSize     = 256 << 10 // what the parent deals out at a time, cut at a space
	maxChunk      = 16 << 20  // a chunk with no space grows to this, then is cut anyway
	maxAutoWorker = 8
)

// config is the parent's parsed command line.
type config struct {
	workers int
	top     int
	paths   []string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fl := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.IntVar(&c.workers, "workers", 0, "worker processes (default: one per file, at most 8; 1 for standard input)")
	fl.IntVar(&c.top, "top", 0, "print only the K most frequent words (default: all)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: wordcount [--workers N] [--top K] [PATH...]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	c.paths = fl.Args()
	switch {
	case c.workers < 0:
		return c, fmt.Errorf("--workers must be at least 1 (got %d)", c.workers)
	case c.top < 0:
		return c, fmt.Errorf("--top must be positive (got %d)", c.top)
	}
	return c, nil
}

// parent counts its input with cfg.workers workers and prints the counts.
func parent(ctx context.Context, self *rack.Self) error {
	cfg, err := parseFlags(self.Args(), self.Stderr())
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		fmt.Fprintln(self.Stderr(), "wordcount:", err)
		return rack.Exit(2, "usage: "+err.Error())
	}
	files, err := listInputs(ctx, self.Kernel(), cfg.paths)
	if err != nil {
		fmt.Fprintln(self.Stderr(), "wordcount:", err)
		return rack.Exit(1, err.Error())
	}
	if cfg.workers == 0 {
		cfg.workers = min(max(len(files), 1), maxAutoWorker)
	}
	// each calls fn with every input in turn: standard input, or the files.
	each := func(fn func(io.Reader) error) error {
		if files == nil {
			return fn(self.Stdin())
		}
		for _, p := range files {
			f, err := self.Kernel().Open(ctx, p)
			if err != nil {
				return err
			}
			err = fn(f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	var counts map[string]int64
	if cfg.workers == 1 {
		counts = map[string]int64{}
		err = each(func(r io.Reader) error { return Count(r, counts) })
	} else {
		counts, err = countWithWorkers(ctx, self, each, cfg.workers)
	}
	if err != nil {
		fmt.Fprintln(self.Stderr(), "wordcount:", err)
		return rack.Exit(1, err.Error())
	}
	w := bufio.NewWriterSize(self.Stdout(), 64<<10)
	for i, wc := range Sorted(counts) {
		if cfg.top > 0 && i == cfg.top {
			break
		}
		fmt.Fprintf(w, "%7d %s\n", wc.Count, wc.Word)
	}
	return w.Flush()
}

// listInputs returns the files that paths name (a directory stands for
// every object under it), or nil for none: standard input.
func listInputs(ctx context.Context, k *rack.Kernel, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	files := []string{}
	for _, p := range paths {
		fi, err := k.Stat(ctx, p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		err = fs.WalkDir(k.FS(ctx), strings.Trim(p, "/"), func(name string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, "/"+name)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", p, err)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no files in %s", strings.Join(paths, " "))
	}
	return files, nil
}

// countWithWorkers forks n workers, each with a pipe in and a pipe out,
// deals the inputs out to them in chunks, round robin, and merges what
// they count.
func countWithWorkers(ctx context.Context, self *rack.Self, each func(func(io.Reader) error) error, n int) (map[string]int64, error) {
	ins := make([]*rack.PipeWriter, n)
	outs := make([]*rack.PipeReader, n)
	specs := make([]rack.Spec, n)
	var outWs []*rack.PipeWriter
	closeAll := func() {
		for _, w := range ins {
			if w != nil {
				w.Close()
			}
		}
		for _, w := range outWs {
			w.Close()
		}
		for _, r := range outs {
			if r != nil {
				r.Close()
			}
		}
	}
	for i := range specs {
		inR, inW, err := self.Pipe(ctx)
		if err != nil {
			closeAll()
			return nil, err
		}
		outR, outW, err := self.Pipe(ctx)
		if err != nil {
			inR.Close()
			inW.Close()
			closeAll()
			return nil, err
		}
		ins[i], outs[i] = inW, outR
		outWs = append(outWs, outW)
		specs[i] = rack.Spec{Program: workerProgram, Args: []string{strconv.Itoa(i)}, Stdin: inR, Stdout: outW}
	}
	kids, err := self.ForkAll(ctx, specs)
	if err != nil {
		closeAll()
		return nil, err
	}
	for _, w := range outWs { // the workers hold their copies
		w.Close()
	}
	// Deal the chunks out, then close the inputs: each worker sees EOF.
	next := 0
	err = each(func(in io.Reader) error {
		return Chunks(in, chunkSize, func(chunk []byte) error {
			_, err := ins[next].Write(chunk)
			next = (next + 1) % n
			return err
		})
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	for i, w := range ins {
		if err := w.Close(); err != nil {
			closeAll()
			return nil, err
		}
		ins[i] = nil
	}
	counts := map[string]int64{}
	for i, r := range outs {
		if err := Merge(r, counts); err != nil {
			closeAll()
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		r.Close()
		outs[i] = nil
	}
	for _, kid := range kids {
		if err := kid.Wait(ctx); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// worker counts the words of its standard input and prints "WORD COUNT"
// lines, in no order.
func worker(ctx context.Context, self *rack.Self) error {
	counts := map[string]int64{}
	if err := Count(self.Stdin(), counts); err != nil {
		return err
	}
	w := bufio.NewWriterSize(self.Stdout(), 256<<10)
	for word, n := range counts {
		fmt.Fprintf(w, "%s %d\n", word, n)
	}
	return w.Flush()
}

// Count adds the words of r to counts.
func Count(r io.Reader, counts map[string]int64) error {
	return Chunks(r, chunkSize, func(chunk []byte) error {
		countChunk(chunk, counts)
		return nil
	})
}

// isWordRune says whether r belongs to a word.
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// countChunk adds the words of b, which ends at a word's end, to counts.
func countChunk(b []byte, counts map[string]int64) {
	start := -1
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			counts[strings.ToLower(string(b[start:i]))]++
			start = -1
		}
		i += size
	}
	if start >= 0 {
		counts[strings.ToLower(string(b[start:]))]++
	}
}

// Chunks reads r to EOF and calls fn with pieces of about size bytes, each
// cut after a byte that is no part of a word (so no word is split), except
// a run of over maxChunk bytes without one. fn must not keep the slice.
func Chunks(r io.Reader, size int, fn func([]byte) error) error {
	buf := make([]byte, 0, size+utf8.UTFMax)
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), maxChunk+utf8.UTFMax))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) >= size {
			cut := cutPoint(buf)
			if cut == 0 && len(buf) >= maxChunk {
				cut = len(buf)
			}
			if cut > 0 {
				if ferr := fn(buf[:cut]); ferr != nil {
					return ferr
				}
				rest := copy(buf, buf[cut:])
				buf = buf[:rest]
			}
		}
		if err == io.EOF {
			if len(buf) > 0 {
				return fn(buf)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// cutPoint returns the length of the longest prefix of b that ends with
// an ASCII byte that is no part of a word (a space, a newline, a
// punctuation mark: never inside a multi-byte rune), or 0.
func cutPoint(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if c := b[i]; c < utf8.RuneSelf && !isWordRune(rune(c)) {
			return i + 1
		}
	}
	return 0
}

// Merge adds "WORD COUNT" lines from r to counts.
func Merge(r io.Reader, counts map[string]int64) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxChunk+64)
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.LastIndexByte(line, ' ')
		if i < 0 {
			return fmt.Errorf("bad count line %q", line)
		}
		n, err := strconv.ParseInt(string(line[i+1:]), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad count line %q", line)
		}
		counts[string(line[:i])] += n
	}
	return sc.Err()
}

// WordCount is a word and how often it occurs.
type WordCount struct {
	Word  string
	Count int64
}

// Sorted returns counts most frequent first, then by word.
func Sorted(counts map[string]int64) []WordCount {
	out := make([]WordCount, 0, len(counts))
	for w, n := range counts {
		out = append(out, WordCount{w, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Word < out[j].Word
	})
	return out
}
