// Package record holds the layout of a rack namespace in its store: the
// object names (all computable, so correctness never needs a listing) and
// the JSON codecs of the records stored there.
//
// Every record that two parties could race on is created once
// (create-only) and never changed; the only mutable objects are a kernel's
// lease and a process's status text.
package record

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Object name prefixes inside the namespace container.
const (
	PIDBlocks = "pids/"    // pids/<block>: create-only claim of a block of pids
	Procs     = "procs/"   // procs/<pid>: the process record, written at fork
	Exits     = "exits/"   // exits/<pid>: the exit record, first writer wins
	Status    = "status/"  // status/<pid>: free text set by the process
	Kernels   = "kernels/" // kernels/<id>: a kernel's lease, kept fresh
	Signals   = "signals/" // signals/<kernel>/<pid>.<sender>.<seq>: inbox
	Groups    = "groups/"  // groups/<gid>: group record; groups/<gid>/<pid>: member
	Pipes     = "pipes/"   // pipes/<id>/...: see PipeEnd and friends
	Fifos     = "fifos/"   // fifos/<name>: a named pipe's record
	Hosts     = "hosts/"   // hosts/<pid>: the kernel that runs a process started as a new program
)

// NamespaceMarker names the object that marks a container as a rack
// namespace, written create-only (present already: nothing to do) and
// never expiring by every kernel that opens the namespace with a lease of
// its own, so by its first one. GC's namespace pass (rack gc -a) collects
// only containers that hold it.
const NamespaceMarker = "rack-namespace"

// NamespaceType is the marker's content type (Head shows it).
const NamespaceType = "application/x-rack-namespace"

// PIDKey is the name of a pid's block claim.
func PIDKey(block int64) string { return PIDBlocks + pad(block) }

// ProcKey, ExitKey and StatusKey name a process's records.
func ProcKey(pid int64) string   { return Procs + pad(pid) }
func ExitKey(pid int64) string   { return Exits + pad(pid) }
func StatusKey(pid int64) string { return Status + pad(pid) }

// HostKey names the record of the kernel hosting pid.
func HostKey(pid int64) string { return Hosts + pad(pid) }

// KernelKey names a kernel's lease.
func KernelKey(id string) string { return Kernels + id }

// SignalInbox is the prefix of a kernel's signal inbox.
func SignalInbox(kernel string) string { return Signals + kernel + "/" }

// GroupKey names a group record; GroupMemberKey one member of it.
func GroupKey(gid int64) string              { return Groups + pad(gid) }
func GroupMembers(gid int64) string          { return Groups + pad(gid) + "/" }
func GroupMemberKey(gid, pid int64) string   { return GroupMembers(gid) + pad(pid) }
func FifoKey(name string) string             { return Fifos + name }
func PipePrefix(pipe string) string          { return Pipes + pipe + "/" }
func PipeEndKey(pipe string, end int) string { return PipePrefix(pipe) + "ends/" + strconv.Itoa(end) }
func PipeCloseKey(pipe string, end int) string {
	return PipePrefix(pipe) + "close/" + strconv.Itoa(end)
}

// FifoOverKey marks a named pipe's session (a pipe) over: every end was
// closed, its data dropped, and the next open starts the next session.
func FifoOverKey(pipe string) string { return PipePrefix(pipe) + "over" }

// PipeSegmentKey names segment seq written by end.
func PipeSegmentKey(pipe string, end, seq int) string {
	return PipePrefix(pipe) + "seg/" + strconv.Itoa(end) + "/" + strconv.Itoa(seq)
}

// pad writes numbers with a fixed width so that listings sort numerically.
func pad(n int64) string {
	s := strconv.FormatInt(n, 10)
	if len(s) >= 10 {
		return s
	}
	return "0000000000"[len(s):] + s
}

// ParseNumber reads the number at the end of a name made by one of the
// functions above (after the last '/').
func ParseNumber(name string) (int64, error) {
	return strconv.ParseInt(name[strings.LastIndexByte(name, '/')+1:], 10, 64)
}

// Stream says where a process's stdin, stdout or stderr goes.
type Stream struct {
	// Kind is "" (nothing: empty input, discarded output), "console"
	// (the hosting kernel's own terminal or log), "pipe" or "file".
	Kind string `json:"kind,omitempty"`
	Pipe string `json:"pipe,omitempty"`
	// End is the writer end number for a pipe writer; -1 for a reader.
	End int `json:"end,omitempty"`
	// Read holds, for a moved reader, how many segments of each end had
	// been consumed already.
	Read map[int]int `json:"read,omitempty"`
	Path string      `json:"path,omitempty"`
}

// Proc is the process record, written create-only when the process is forked.
type Proc struct {
	PID     int64             `json:"pid"`
	PPID    int64             `json:"ppid"`
	Group   int64             `json:"group,omitempty"`
	Name    string            `json:"name"`
	Program string            `json:"program,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Kernel  string            `json:"kernel"`
	Started int64             `json:"started"` // Unix nanoseconds (cheaper to encode than a time)
	Stdin   Stream            `json:"stdin"`
	Stdout  Stream            `json:"stdout"`
	Stderr  Stream            `json:"stderr"`
	Files   []Stream          `json:"files,omitempty"`
	// Options are compute settings (image, flavor, exe...).
	Options map[string]string `json:"options,omitempty"`
	// Detached children do not share their parent's fate.
	Detached bool `json:"detached,omitempty"`
	// Forked: the process was forked by a process running the same
	// program (rack.Process.Forked).
	Forked bool `json:"forked,omitempty"`
}

// Exit is the exit record: the first one written wins.
type Exit struct {
	PID    int64  `json:"pid"`
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	Reason string `json:"reason,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Lost   bool   `json:"lost,omitempty"`
	Ended  int64  `json:"ended"` // Unix nanoseconds
	// By names the kernel that recorded it.
	By string `json:"by"`
}

// Signal is one signal sent to a process, in its host kernel's inbox.
type Signal struct {
	PID    int64  `json:"pid"`
	Signal int    `json:"signal"`
	From   string `json:"from"`
	// Child, with signal SIGCHLD, is the child of PID whose exit record
	// has just been written by the kernel that ran it.
	Child int64 `json:"child,omitempty"`
	// Exit, with Child, is that exit record when it says no more than a
	// summary can (no Reason, no Stderr): its forker ends the child's
	// stand-in without reading the record.
	Exit *Exit `json:"exit,omitempty"`
}

// Group is a group record.
type Group struct {
	GID     int64     `json:"gid"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// PipeEnd registers writer end number N of a pipe.
type PipeEnd struct {
	PID    int64  `json:"pid"`
	Kernel string `json:"kernel"`
	// From is the end it was duplicated from, or -1 for an original end.
	From int `json:"from"`
	// Count is how many ends the record registers, numbered from N (the
	// children of one ForkAll get theirs with one record; PID is then the
	// forker's); 0 means 1.
	Count int `json:"count,omitempty"`
	// Kind is "" for writer ends; a named pipe's session also registers
	// its readers (EndReader) and, once every end is closed, its end
	// (EndOver), after which no end joins it.
	Kind string `json:"kind,omitempty"`
}

// Kinds of PipeEnd records besides writer ends, in a named pipe's session.
const (
	EndReader = "reader"
	EndOver   = "over"
)

// PipeClose closes a writer end: it wrote Segments segments, numbered
// from 0. Recheck lists segments whose create may have been stored twice
// (an attempt whose answer was lost, then a retry that created it again):
// if the reader had consumed the first copy, the second is garbage, which
// the reader deletes once it has read past it. At most MaxRecheck.
type PipeClose struct {
	Segments int   `json:"segments"`
	Recheck  []int `json:"recheck,omitempty"`
}

// MaxRecheck bounds PipeClose.Recheck; a writer with more such segments
// leaves the rest to gc and expiry.
const MaxRecheck = 64

// Fifo is a named pipe's record.
type Fifo struct {
	Name string `json:"name"`
	Pipe string `json:"pipe"`
}

// Host says which kernel runs a process that was started as a new copy
// of the program (its process record names the forker's kernel).
type Host struct {
	PID    int64  `json:"pid"`
	Kernel string `json:"kernel"`
}

// HostRequest asks a kernel that can start hosts for one new host, on
// behalf of a kernel whose compute cannot (a host on a server whose
// credential may not create servers). It names nothing of the host to
// start: the kernel that serves it starts one like its own, or refuses.
type HostRequest struct {
	By     string `json:"by"`     // the requesting kernel (a host's)
	Digest string `json:"digest"` // SHA-256 (hex) of the program it runs
	Made   int64  `json:"made"`   // when, ns
}

// Host request answers' states.
const (
	HostStarting = "starting" // claimed: a host is being started
	HostStarted  = "started"  // Host runs (or boots)
	HostFailed   = "failed"   // Error says why
)

// HostReply answers a HostRequest. A kernel serving the request writes it
// create-only (its claim: one host per request) and then overwrites it
// with the outcome.
type HostReply struct {
	State string `json:"state"`
	Host  string `json:"host,omitempty"`  // the new host's kernel id
	Error string `json:"error,omitempty"` // why it failed
}

// MaxHostError bounds HostReply.Error.
const MaxHostError = 1024

// Lease is a kernel's liveness record.
type Lease struct {
	Kernel  string    `json:"kernel"`
	Renewed time.Time `json:"renewed"`
	// Stopped: another kernel (the stopped process's forker) keeps this
	// lease while the kernel's process is stopped and cannot renew it.
	Stopped bool `json:"stopped,omitempty"`
}

// HostSpent is a host's life, for its namespace's budget of server time
// (max_server_hours): the host writes it under hostd-spent/<kernel> as it
// runs and once more as it ends, and it stays while the namespace lives.
// Started and Until are Unix nanoseconds.
type HostSpent struct {
	Kernel  string `json:"kernel"`
	Started int64  `json:"started"`
	Until   int64  `json:"until"`
}

// MaxHostLife bounds a HostSpent's Until-Started: a longer life is a
// corrupt (or forged) record, not a host.
const MaxHostLife = 10 * 366 * 24 * time.Hour

// Namespace is the namespace marker's content.
type Namespace struct {
	Version int       `json:"version"` // 1
	Created time.Time `json:"created"`
}

// Encode marshals a record.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Records are plain structs of strings, numbers and maps: only a
		// programming error can fail here.
		panic(fmt.Sprintf("record: encode %T: %v", v, err))
	}
	return b
}

// Decode unmarshals a record read from name and, for the record types of
// this package, checks it (see Validate): data that Check refuses, JSON
// that does not parse, and a record out of range are all errors that wrap
// ErrCorrupt and name the object.
func Decode(name string, data []byte, v any) error {
	if err := Check(name, data); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("record %s: %w: %w", name, ErrCorrupt, err)
	}
	if err := Validate(v); err != nil {
		return fmt.Errorf("record %s: %w: %w", name, ErrCorrupt, err)
	}
	return nil
}
