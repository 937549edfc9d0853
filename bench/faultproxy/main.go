// Command faultproxy runs internal/tcpfault's proxy for scripts: it
// forwards 127.0.0.1:PORT (printed on its first line of output) to
// -target, and reads commands, one a line, from its standard input:
//
//	pass | refuse | hang   switch the mode
//	latency 200ms          delay every chunk, each way
//	hangfrac 0.05          leave that fraction of new connections hanging
//	stats                  print accepted and hung connections
//
// It stops at the end of its input. bench/outage.sh drives it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rackfork/rack/internal/tcpfault"
)

func main() {
	target := flag.String("target", "127.0.0.1:8080", "host:port to forward to")
	flag.Parse()
	p, err := tcpfault.New(*target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultproxy:", err)
		os.Exit(1)
	}
	defer p.Close()
	fmt.Println(p.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var err error
		switch {
		case f[0] == "pass":
			err = p.SetMode(tcpfault.Pass)
		case f[0] == "refuse":
			err = p.SetMode(tcpfault.Refuse)
		case f[0] == "hang":
			err = p.SetMode(tcpfault.Hang)
		case f[0] == "latency" && len(f) == 2:
			var d time.Duration
			if d, err = time.ParseDuration(f[1]); err == nil {
				p.SetLatency(d)
			}
		case f[0] == "hangfrac" && len(f) == 2:
			var x float64
			if x, err = strconv.ParseFloat(f[1], 64); err == nil {
				p.SetHangFraction(x)
			}
		case f[0] == "stats":
			a, h := p.Stats()
			fmt.Printf("accepted %d hung %d\n", a, h)
		default:
			err = fmt.Errorf("unknown command %q", sc.Text())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "faultproxy:", err)
		}
		fmt.Fprintf(os.Stderr, "faultproxy: %s %s\n", time.Now().Format("15:04:05.000"), sc.Text())
	}
}
