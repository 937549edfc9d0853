// Command montecarlo estimates pi the way the original OpenStack RACK
// sample did: a parent forks workers that throw random points at the unit
// square, each prints how many fell inside the quarter circle to a shared
// pipe, and the parent sums them and writes a report.
//
//	go run ./examples/montecarlo --trials 100000000 --workers 10
//	RACK_URL=mem:// go run ./examples/montecarlo --trials 1000000 --workers 3 --stdout /output/result.txt
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rackfork/rack"
	_ "github.com/rackfork/rack/openstack" // swift:// and openstack:// namespaces
)

func main() { rack.Main(parent) }

func init() { rack.Register("montecarlo-worker", worker) }

// config is the parent's parsed command line.
type config struct {
	trials  int64
	workers int
	stdout  string
	seed    uint64
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fl := flag.NewFlagSet("montecarlo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Int64Var(&c.trials, "trials", 0, "number of random points in all (required)")
	fl.IntVar(&c.workers, "workers", 0, "number of worker processes (required)")
	fl.StringVar(&c.stdout, "stdout", "", "rack file for the report, e.g. /output/result.txt (default: standard output)")
	fl.Uint64Var(&c.seed, "seed", 0, "base seed; worker i uses seed+i (default: from the clock)")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fl.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fl.Arg(0))
	case c.workers < 1:
		return c, fmt.Errorf("--workers must be at least 1 (got %d)", c.workers)
	case c.trials < int64(c.workers):
		return c, fmt.Errorf("--trials must be at least --workers (got %d trials, %d workers)", c.trials, c.workers)
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return c, nil
}

// parent forks the workers, sums their counts and writes the report.
func parent(ctx context.Context, self *rack.Self) error {
	cfg, err := parseFlags(self.Args(), self.Stderr())
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		fmt.Fprintln(self.Stderr(), "montecarlo:", err)
		return rack.Exit(2, "usage: "+err.Error())
	}
	start := time.Now()
	r, w, err := self.Pipe(ctx)
	if err != nil {
		return err
	}
	specs := make([]rack.Spec, cfg.workers)
	per := cfg.trials / int64(cfg.workers)
	for i := range specs {
		n := per
		if i == 0 {
			n += cfg.trials % int64(cfg.workers) // worker 0 takes the remainder, as in RACK
		}
		specs[i] = rack.Spec{
			Program: "montecarlo-worker",
			Args:    []string{strconv.FormatInt(n, 10), strconv.FormatUint(cfg.seed+uint64(i), 10)},
			Stdout:  w,
		}
	}
	progress := isTerminal(os.Stderr) && self.PPID() == rack.InitPID
	// Fork in chunks, so that the first workers run while the others are
	// forked and a terminal shows how far forking got. A failed chunk
	// fails the job: the workers forked end with their parent.
	var children []*rack.Process
	for len(children) < len(specs) {
		chunk := specs[len(children):min(len(children)+forkChunk, len(specs))]
		kids, err := self.ForkAll(ctx, chunk)
		if err != nil {
			return err
		}
		children = append(children, kids...)
		if progress {
			fmt.Fprintf(self.Stderr(), "\rworkers started: %d/%d", len(children), cfg.workers)
		}
	}
	if err := w.Close(); err != nil { // our copy: EOF comes when the workers' close
		return err
	}
	if progress {
		fmt.Fprintln(self.Stderr())
	}
	var points int64
	done := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		if err != nil {
			return fmt.Errorf("worker output %q: %w", sc.Text(), err)
		}
		points += n
		done++
		if progress {
			fmt.Fprintf(self.Stderr(), "\rworkers finished: %d/%d", done, cfg.workers)
		}
	}
	if progress {
		fmt.Fprintln(self.Stderr())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, c := range children {
		if err := c.Wait(ctx); err != nil {
			return err
		}
	}
	if done != cfg.workers {
		return fmt.Errorf("got %d results from %d workers", done, cfg.workers)
	}
	report := formatReport(cfg, points, time.Since(start))
	if cfg.stdout == "" {
		_, err = io.WriteString(self.Stdout(), report)
		return err
	}
	f, err := self.Kernel().Create(ctx, cfg.stdout)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, report); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// forkChunk is how many workers one ForkAll forks.
const forkChunk = 1000

// worker counts the points inside the quarter circle and prints the count.
func worker(ctx context.Context, self *rack.Self) error {
	args := self.Args()
	if len(args) != 2 {
		return fmt.Errorf("worker: want TRIALS SEED, got %q", args)
	}
	trials, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return fmt.Errorf("worker: trials: %w", err)
	}
	seed, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return fmt.Errorf("worker: seed: %w", err)
	}
	_, err = fmt.Fprintln(self.Stdout(), CountInside(seed, trials))
	return err
}

// CountInside throws trials points with a PCG generator seeded by seed
// and counts those inside the quarter circle.
func CountInside(seed uint64, trials int64) int64 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var inside int64
	for i := int64(0); i < trials; i++ {
		x, y := r.Float64(), r.Float64()
		if x*x+y*y <= 1 {
			inside++
		}
	}
	return inside
}

// formatReport renders the table of the original sample.
func formatReport(cfg config, points int64, elapsed time.Duration) string {
	result := 4 * float64(points) / float64(cfg.trials)
	rows := [][2]string{
		{"trials", strconv.FormatInt(cfg.trials, 10)},
		{"workers", strconv.Itoa(cfg.workers)},
		{"points", strconv.FormatInt(points, 10)},
		{"pi", strconv.FormatFloat(math.Pi, 'f', 11, 64)},
		{"result", strconv.FormatFloat(result, 'f', 11, 64)},
		{"error", strconv.FormatFloat(math.Abs(result-math.Pi), 'f', 11, 64)},
		{"time", strconv.FormatFloat(elapsed.Seconds(), 'f', 3, 64)},
	}
	w0, w1 := len("Property"), len("Value")
	for _, r := range rows {
		w0, w1 = max(w0, len(r[0])), max(w1, len(r[1]))
	}
	line := "+" + strings.Repeat("-", w0+2) + "+" + strings.Repeat("-", w1+2) + "+\n"
	var b strings.Builder
	b.WriteString(line)
	fmt.Fprintf(&b, "| %-*s | %-*s |\n", w0, "Property", w1, "Value")
	b.WriteString(line)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %-*s | %-*s |\n", w0, r[0], w1, r[1])
	}
	b.WriteString(line)
	return b.String()
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
