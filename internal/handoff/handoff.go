// Package handoff hands a new local program (an OS process that
// backend/osproc starts) the variables it must not keep in its
// environment: a variable given in an environment stays readable in
// /proc/PID/environ for the program's whole life, even after os.Unsetenv,
// which changes only the Go runtime's copy. osproc writes them into a
// pipe that the program inherits as a descriptor named by FDEnv, and
// closes its end; the program reads them once at start-up (Get), and
// closes its end. A program that does not read them loses nothing but
// what they would have spared it (rack's process record is then read
// from the store).
package handoff

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// FDEnv names the environment variable that holds the number of the
// descriptor to read the hand-over from.
const FDEnv = "RACK_HANDOFF_FD"

// maxSize bounds a hand-over: a process record of rack's is at most
// 16 KiB when handed over this way.
const maxSize = 1 << 20

// Private reports whether environment variable key is handed over
// through the pipe rather than in the environment: rack's process record
// (RACK_PROC), which holds the process's arguments and environment.
func Private(key string) bool { return key == "RACK_PROC" }

// Encode returns the hand-over of vars: each "key=value" ended by a NUL
// (which neither holds), and then one more NUL, which tells a whole
// hand-over from one cut short.
func Encode(vars map[string]string) []byte {
	var b bytes.Buffer
	for k, v := range vars {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	return b.Bytes()
}

// Decode parses a hand-over; ok is false if it is not whole or malformed.
func Decode(data []byte) (vars map[string]string, ok bool) {
	if len(data) == 0 || data[len(data)-1] != 0 {
		return nil, false
	}
	data = data[:len(data)-1]
	vars = map[string]string{}
	for len(data) > 0 {
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return nil, false // cut short: no end marker after the last
		}
		k, v, found := strings.Cut(string(data[:i]), "=")
		if !found || k == "" {
			return nil, false
		}
		vars[k] = v
		data = data[i+1:]
	}
	return vars, true
}

var (
	once sync.Once
	vars map[string]string
	mu   sync.Mutex
)

// Get returns the value of the handed-over variable key, and forgets it:
// a second Get of the same key finds nothing. The first call reads the
// hand-over, if this program was given one, and closes its descriptor.
func Get(key string) (string, bool) {
	once.Do(read)
	mu.Lock()
	defer mu.Unlock()
	v, ok := vars[key]
	delete(vars, key)
	return v, ok
}

// read reads the hand-over named by FDEnv, once.
func read() {
	s := os.Getenv(FDEnv)
	if s == "" {
		return
	}
	os.Unsetenv(FDEnv) // not for this program's own children
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 || !isPipe(fd) {
		return
	}
	f := os.NewFile(uintptr(fd), "handoff")
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	f.Close()
	if err != nil || len(data) > maxSize {
		return
	}
	vars, _ = Decode(data)
}
