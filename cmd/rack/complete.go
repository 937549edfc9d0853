package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rackfork/rack"
)

// Tab completes the word before the cursor: in a command's place, the
// builtins and the programs in $RACK_APPS and on $PATH; after kill, the
// pids of the namespace's running processes; after fg and bg, job
// numbers (%N); a word that begins with / is a rack path (/container/obj,
// through the kernel's ReadDir). One candidate completes the word; several
// complete their common prefix and, when that adds nothing, are listed
// under the prompt.

// completeTimeout bounds the store requests of one completion.
const completeTimeout = 3 * time.Second

// maxListed is the most candidates listed under the prompt; past it, only
// their number is.
const maxListed = 200

// complete completes the word of line that ends at pos.
// Candidates are listed on w (the terminal, which redraws the prompt).
func (sh *shell) complete(ctx context.Context, w io.Writer, line string, pos int) (string, int, bool) {
	if pos > len(line) {
		pos = len(line)
	}
	start := strings.LastIndexAny(line[:pos], " \t|;&<>()") + 1
	word := line[start:pos]
	before := strings.TrimRight(line[:start], " \t")
	cmdPlace := before == "" || strings.ContainsAny(before[len(before)-1:], "|;&(")
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	var cands []string
	switch {
	case strings.HasPrefix(word, "/"):
		cands = sh.rackPaths(ctx, word)
	case cmdPlace:
		if strings.Contains(word, "/") {
			return line, pos, true
		}
		cands = sh.commands(word)
	default:
		fields := strings.Fields(before[strings.LastIndexAny(before, "|;&(")+1:])
		if len(fields) == 0 {
			return line, pos, true
		}
		switch cmd := fields[0]; {
		case cmd == "kill" && !strings.HasPrefix(word, "-"):
			cands = sh.runningPIDs(ctx, word)
		case cmd == "fg" || cmd == "bg":
			cands = sh.jobSpecs(word)
		}
	}
	if len(cands) == 0 {
		return line, pos, true
	}
	common := cands[0]
	for _, c := range cands[1:] {
		for !strings.HasPrefix(c, common) {
			common = common[:len(common)-1]
		}
	}
	if len(cands) == 1 && !strings.HasSuffix(common, "/") {
		common += " "
	}
	if common == word {
		listCandidates(w, cands)
		return line, pos, true
	}
	newLine := line[:start] + common + line[pos:]
	return newLine, start + len(common), true
}

// listCandidates prints cands under the prompt, which is then redrawn.
func listCandidates(w io.Writer, cands []string) {
	var b strings.Builder
	if len(cands) > maxListed {
		// bash asks before listing so many; here, type more.
		fmt.Fprintf(&b, "(%d possibilities: type more of the name)\n", len(cands))
		_, _ = w.Write([]byte(b.String()))
		return
	}
	for i, c := range cands {
		if i > 0 {
			b.WriteString("  ")
		}
		b.WriteString(c)
	}
	b.WriteString("\n")
	_, _ = w.Write([]byte(b.String()))
}

// commands returns the builtins and programs whose name starts with word.
func (sh *shell) commands(word string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if strings.HasPrefix(name, word) && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for name := range builtins {
		add(name)
	}
	dirs := filepath.SplitList(os.Getenv("PATH"))
	if sh.appsDir != "" {
		dirs = append([]string{sh.appsDir}, dirs...)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), word) || seen[e.Name()] {
				continue
			}
			fi, err := os.Stat(filepath.Join(d, e.Name()))
			if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				add(e.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// rackPaths returns the rack paths that start with word ("/c", "/c/o").
func (sh *shell) rackPaths(ctx context.Context, word string) []string {
	i := strings.LastIndex(word, "/")
	dir, base := word[:i], word[i+1:]
	listed := dir
	if listed == "" {
		listed = "/"
	}
	entries, err := sh.k.ReadDir(ctx, listed)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base) {
			continue
		}
		p := dir + "/" + e.Name()
		if e.IsDir() {
			p += "/"
		}
		out = append(out, p)
	}
	return out
}

// runningPIDs returns the pids of running processes that start with word.
func (sh *shell) runningPIDs(ctx context.Context, word string) []string {
	infos, err := sh.k.Processes(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, in := range infos {
		if in.State != rack.Running && in.State != rack.Stopped {
			continue
		}
		if s := strconv.FormatInt(int64(in.PID), 10); strings.HasPrefix(s, word) {
			out = append(out, s)
		}
	}
	return out
}

// jobSpecs returns the %N of the shell's jobs that start with word.
func (sh *shell) jobSpecs(word string) []string {
	var out []string
	for _, j := range sh.jobList() {
		if s := "%" + strconv.Itoa(j.id); strings.HasPrefix(s, word) {
			out = append(out, s)
		}
	}
	return out
}
