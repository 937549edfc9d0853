package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// The hosts builtin: the namespace's hosts (rack.Kernel.Hosts), as ps
// lists its processes.

func init() {
	builtins["hosts"] = builtinHosts
	help := struct{ usage, text string }{"hosts [--json]", "list the namespace's hosts: state, slots used/total, idle time, idle limit, age"}
	// Right after ps.
	at := 1
	for i, h := range builtinHelp {
		if strings.HasPrefix(h.usage, "ps ") {
			at = i + 1
		}
	}
	builtinHelp = append(builtinHelp[:at:at], append([]struct{ usage, text string }{help}, builtinHelp[at:]...)...)
}

// hostRow is a hosts line, and its --json form.
type hostRow struct {
	Kernel    string  `json:"kernel"`
	Instance  string  `json:"instance"`
	State     string  `json:"state"`
	Used      int     `json:"used"`
	Slots     int     `json:"slots"`
	Idle      float64 `json:"idle_seconds"`
	IdleLimit float64 `json:"idle_limit_seconds"`
	Age       float64 `json:"age_seconds"`
}

func builtinHosts(ctx context.Context, e *builtinEnv, args []string) int {
	asJSON := false
	for _, a := range args {
		if a != "--json" {
			return e.errorf("hosts: unknown argument %q (usage: hosts [--json])", a)
		}
		asJSON = true
	}
	infos, err := e.sh.k.Hosts(ctx)
	if err != nil {
		return e.errorf("hosts: %s", cleanError(err))
	}
	if asJSON {
		rows := make([]hostRow, 0, len(infos))
		for _, h := range infos {
			rows = append(rows, hostRow{Kernel: h.Kernel, Instance: h.Instance, State: h.State, Used: h.Used, Slots: h.Slots,
				Idle: h.Idle.Seconds(), IdleLimit: h.IdleLimit.Seconds(), Age: h.Age.Seconds()})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return e.errorf("hosts: %s", cleanError(err))
		}
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tINSTANCE\tSTATE\tSLOTS\tIDLE\tIDLE-LIMIT\tAGE")
	for _, h := range infos {
		idle := "-"
		if h.State != "busy" {
			idle = shortDuration(h.Idle)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", h.Kernel, printable(h.Instance), printable(h.State),
			h.Used, h.Slots, idle, shortDuration(h.IdleLimit), shortDuration(h.Age))
	}
	if err := tw.Flush(); err != nil {
		return e.errorf("hosts: %s", cleanError(err))
	}
	return 0
}

// shortDuration rounds d for a table: tenths of a second under a minute,
// seconds above.
func shortDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// printable replaces control characters (a host's record is anyone's
// write to the namespace) with spaces.
func printable(s string) string {
	return strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return ' '
		}
		return c
	}, s)
}
