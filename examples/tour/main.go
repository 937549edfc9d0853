// Command tour is the program of the README's "A short tour", whole: a
// root forks two copies of itself that write to one pipe, and prints what
// they wrote. The part between the markers is the README's code block,
// byte for byte (cmd/rack's TestReadmeExamples fails if they drift), and
// runs the same directly and from the rack shell:
//
//	go run ./examples/tour
//	go build -o ~/bin/tour ./examples/tour && rack -c tour
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/rackfork/rack"
)

// work is what a child computes from its arguments.
func work(args []string) string { return "worked on " + strings.Join(args, " ") }

// README tour begin
func main() { rack.Main(run) } // a root process in $RACK_URL (default mem://), or a forked child

func run(ctx context.Context, self *rack.Self) error {
	if self.Forked() { // a child this program forked: same program, its own args
		_, err := fmt.Fprintln(self.Stdout(), work(self.Args()))
		return err
	}
	r, w, err := self.Pipe(ctx)
	if err != nil {
		return err
	}
	kids, err := self.ForkAll(ctx, []rack.Spec{{Args: []string{"a"}, Stdout: w}, {Args: []string{"b"}, Stdout: w}})
	if err != nil {
		return err // all or nothing: the ones started were killed and reaped
	}
	w.Close()                 // EOF comes when every copy of the write end is closed or its process ended
	io.Copy(self.Stdout(), r) // rack's stdout: the terminal, a pipe or a file, wherever it was started
	for _, k := range kids {
		var ee *rack.ExitError
		if err := k.Wait(ctx); errors.As(err, &ee) {
			log.Printf("%d exited %d (%s); stderr tail: %s", ee.PID, ee.Code(), ee.Reason, ee.Stderr)
		} else if errors.Is(err, rack.ErrLost) {
			log.Printf("the infrastructure lost it: %v", err)
		}
	}
	return nil
}

// README tour end
