package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rackfork/rack/internal/osfile"
)

// The interactive shell's history is kept in $XDG_STATE_HOME/rack/history
// (~/.local/state/rack/history without it), one line per entry, so that
// Up and Ctrl-R find the lines of earlier runs. The directory is made
// 0700 and must be this user's and writable by nobody else; the file is
// made 0600, opened without following a symbolic link (internal/osfile)
// and must be this user's alone. It is read bounded: its last
// historyMaxBytes, and of them the last historySize lines; a file grown
// past twice that is cut back to them when a shell starts.

const (
	historySize     = 1000    // lines kept in memory and read from the file
	historyMaxBytes = 1 << 20 // read from the file's end
	historyMaxLine  = 8 << 10 // a longer line is not kept in the file
	historyName     = "history"
)

// history is a bounded line history without repeats, shared by the line
// editor (Up, Down) and Ctrl-R; a line that ^C discarded is not kept. It
// is safe for concurrent use.
type history struct {
	skip *atomic.Bool

	mu      sync.Mutex
	entries []string
	file    *os.File // appended to; nil: kept in memory only
}

// Add keeps s (x/term's History).
func (h *history) Add(s string) {
	if h.skip.Load() || strings.TrimSpace(s) == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) > 0 && h.entries[len(h.entries)-1] == s {
		return
	}
	h.push(s)
	if h.file != nil && len(s) <= historyMaxLine && !strings.ContainsAny(s, "\r\n") {
		_, _ = h.file.WriteString(s + "\n")
	}
}

// push adds s to the entries, forgetting the oldest past historySize.
func (h *history) push(s string) {
	if len(h.entries) == historySize {
		h.entries = append(h.entries[:0], h.entries[1:]...)
	}
	h.entries = append(h.entries, s)
}

// Len returns the number of entries (x/term's History).
func (h *history) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

// At returns the entry i lines back, 0 the newest (x/term's History).
func (h *history) At(i int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i < 0 || i >= len(h.entries) {
		return ""
	}
	return h.entries[len(h.entries)-1-i]
}

// search returns the newest entry at least from entries back that contains
// query, and how many back it is; ok is false if none does.
func (h *history) search(query string, from int) (entry string, back int, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := max(from, 0); i < len(h.entries); i++ {
		e := h.entries[len(h.entries)-1-i]
		if strings.Contains(e, query) {
			return e, i, true
		}
	}
	return "", 0, false
}

// close closes the history file.
func (h *history) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file != nil {
		_ = h.file.Close()
		h.file = nil
	}
}

// historyDir returns the directory of the history file.
func historyDir(getenv func(string) string) (string, error) {
	base := getenv("XDG_STATE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home := getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			home = h
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "rack"), nil
}

// open loads the history file of dir (created if missing) and keeps it
// open for appending. On error the history stays in memory only.
func (h *history) open(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := osfile.CheckDir(dir, false); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	root, err := osfile.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer root.Close()
	f, err := root.OpenOwned(historyName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	lines, rewrite, err := readHistory(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("history %s: %w", f.Name(), err)
	}
	if rewrite {
		// Cut back to what is kept.
		var b bytes.Buffer
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt(b.Bytes(), 0)
		}
	}
	f.Close()
	// Appended to from here: O_APPEND, so that two shells' lines do not
	// overwrite each other.
	if f, err = root.OpenOwned(historyName, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range lines {
		if len(h.entries) == 0 || h.entries[len(h.entries)-1] != l {
			h.push(l)
		}
	}
	h.file = f
	return nil
}

// readHistory reads the last lines of a history file, bounded; rewrite
// says the file holds more than twice what is kept.
func readHistory(f *os.File) (lines []string, rewrite bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, &fs.PathError{Op: "read", Path: f.Name(), Err: osfile.ErrNotRegular}
	}
	size := fi.Size()
	start := max(size-historyMaxBytes, 0)
	r := bufio.NewReader(io.NewSectionReader(f, start, size-start))
	if start > 0 {
		// Mid-line: skip to the next whole one.
		if _, err := r.ReadString('\n'); err != nil {
			return nil, true, nil
		}
	}
	total := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		if l = strings.TrimSuffix(l, "\n"); l != "" && len(l) <= historyMaxLine {
			lines = append(lines, l)
			total++
			if len(lines) > historySize {
				lines = lines[1:]
			}
		}
		if err != nil {
			break
		}
	}
	return lines, size > 2*historyMaxBytes || total > 2*historySize, nil
}
