// Command upper is a tiny rack app for the shell's tests: it copies its
// input to its output in upper case; with arguments it prints them
// instead, "sleep" blocks until it is signalled, "oslog" prints to its
// OS stdout and stderr instead of rack's, "env NAME..." prints variables
// of its environment and "both" prints a line to its stdout and one to its
// stderr.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rackfork/rack"
	_ "github.com/rackfork/rack/openstack" // to join openstack:// namespaces, booted on a server
)

func main() { rack.Main(run) }

func run(ctx context.Context, self *rack.Self) error {
	args := self.Args()
	switch {
	case len(args) == 1 && args[0] == "sleep":
		fmt.Fprintln(self.Stdout(), "sleeping")
		<-ctx.Done()
		return context.Cause(ctx)
	case len(args) == 1 && args[0] == "oslog":
		// Outside rack's streams: to the OS process's own output, which
		// the shell's logs command shows.
		fmt.Fprintln(os.Stdout, "printed to the OS stdout")
		fmt.Fprintln(os.Stderr, "printed to the OS stderr")
		return nil
	case len(args) > 0 && args[0] == "env":
		for _, name := range args[1:] {
			fmt.Fprintf(self.Stdout(), "%s=%s\n", name, self.Getenv(name))
		}
		return nil
	case len(args) == 1 && args[0] == "both":
		fmt.Fprintln(self.Stdout(), "to stdout")
		fmt.Fprintln(self.Stderr(), "to stderr")
		return nil
	case len(args) == 1 && args[0] == "fail":
		return fmt.Errorf("failing as asked")
	case len(args) > 0:
		_, err := fmt.Fprintln(self.Stdout(), strings.Join(args, " "))
		return err
	}
	sc := bufio.NewScanner(self.Stdin())
	for sc.Scan() {
		if _, err := fmt.Fprintln(self.Stdout(), strings.ToUpper(sc.Text())); err != nil {
			return err
		}
	}
	return sc.Err()
}
