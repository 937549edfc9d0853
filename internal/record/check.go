package record

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Records are read from a store that others can write to (a child's
// credential, a forged object): every record is read with a size limit
// and checked before use, so that a bad one is an error naming it, never
// a panic or a huge allocation.

// ErrCorrupt is wrapped by every error about a record that is too large,
// does not parse or is out of range.
var ErrCorrupt = errors.New("corrupt record")

// MaxSize bounds a record's size. The largest legal record is a process
// record: Spec.Args, Spec.Env and Spec.Options are each limited to 128 KiB,
// which JSON escaping can make at most 6 times larger (about 2.3 MiB),
// plus short names and a moved pipe reader's positions (MaxPipeEnd).
const MaxSize = 8 << 20

// MaxPipeEnd bounds a pipe's writer end numbers: a record naming an end
// at or above it is corrupt (a reader holds a slot for every end below the
// highest it has read from).
const MaxPipeEnd = 1 << 20

// Bounds on a record's JSON shape, checked before it is decoded: decoding
// allocates per element (a process record's files are 72 bytes each in
// memory, 3 in JSON), so the size limit alone would let an 8 MiB record
// cost a gigabyte. Legal records are flat: a depth of 3, a dozen objects,
// and elements (array items, object members) counted in args, env,
// options and a moved reader's positions (at most MaxPipeEnd).
const (
	maxDepth      = 8
	maxContainers = 1024
	maxElements   = 1 << 17
)

// maxID bounds a kernel or pipe id (ids rack makes are 16 to 30 bytes).
const maxID = 255

// Read reads a whole record named name from r, which the store says holds
// size bytes. A size over MaxSize is refused before anything is read; a
// body longer than MaxSize is refused once MaxSize+1 bytes are read,
// having allocated MaxSize bytes for them (size is only a hint: the store may
// not know it, or be wrong).
func Read(name string, r io.Reader, size int64) ([]byte, error) {
	if size > MaxSize {
		return nil, fmt.Errorf("record %s: %w: %d bytes, over the %d-byte limit", name, ErrCorrupt, size, MaxSize)
	}
	// Chunks, not one growing buffer: copies while growing would allocate
	// several times the limit before it is reached.
	next := 4 << 10
	if size > 0 {
		next = int(size) + 1 // +1: EOF without another chunk
	}
	var chunks [][]byte
	total := 0
	for {
		if total == MaxSize {
			// Full: one more byte says too large, EOF says not.
			var probe [1]byte
			m, err := io.ReadFull(r, probe[:])
			if m > 0 {
				return nil, fmt.Errorf("record %s: %w: over the %d-byte limit", name, ErrCorrupt, MaxSize)
			}
			if err != io.EOF {
				return nil, fmt.Errorf("record %s: %w", name, err)
			}
			break
		}
		buf := make([]byte, min(next, MaxSize-total))
		m, err := io.ReadFull(r, buf)
		chunks = append(chunks, buf[:m])
		total += m
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", name, err)
		}
		next = total
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}

// Check refuses data that Decode would refuse before parsing it: larger
// than MaxSize, or JSON nested deeper, or with more objects, arrays or
// elements, than any legal record. It allocates nothing. A writer calls
// it on a record it is about to store, so that it never writes one that
// readers refuse.
func Check(name string, data []byte) error {
	if len(data) > MaxSize {
		return fmt.Errorf("record %s: %w: %d bytes, over the %d-byte limit", name, ErrCorrupt, len(data), MaxSize)
	}
	depth, containers, elements := 0, 0, 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			containers++
			if depth > maxDepth {
				return fmt.Errorf("record %s: %w: nested over %d deep", name, ErrCorrupt, maxDepth)
			}
			if containers > maxContainers {
				return fmt.Errorf("record %s: %w: over %d objects and arrays", name, ErrCorrupt, maxContainers)
			}
		case c == '}' || c == ']':
			depth--
		case c == ',':
			if elements++; elements >= maxElements {
				return fmt.Errorf("record %s: %w: over %d elements", name, ErrCorrupt, maxElements)
			}
		}
	}
	return nil // what is malformed, json says
}

// Validate checks a decoded record of this package (a pointer to one);
// other values pass. Decode calls it.
func Validate(v any) error {
	switch r := v.(type) {
	case *Proc:
		return r.validate()
	case *Exit:
		return r.validate()
	case *Signal:
		return r.validate()
	case *Group:
		if r.GID <= 0 {
			return fmt.Errorf("group id %d is not positive", r.GID)
		}
	case *PipeEnd:
		if r.PID < 0 {
			return fmt.Errorf("pipe end: pid %d is negative", r.PID)
		}
		if r.From < -1 || r.From >= MaxPipeEnd {
			return fmt.Errorf("pipe end: from %d out of range [-1, %d)", r.From, MaxPipeEnd)
		}
		if r.Kind != "" && r.Kind != EndReader && r.Kind != EndOver {
			return fmt.Errorf("pipe end: kind %.32q is none of %q, %q", r.Kind, EndReader, EndOver)
		}
		if r.Count < 0 || r.Count > MaxPipeEnd {
			return fmt.Errorf("pipe end: count %d out of range [0, %d]", r.Count, MaxPipeEnd)
		}
		return checkID("pipe end: kernel", r.Kernel)
	case *PipeClose:
		if r.Segments < 0 {
			return fmt.Errorf("pipe close: segments %d is negative", r.Segments)
		}
		if len(r.Recheck) > MaxRecheck {
			return fmt.Errorf("pipe close: %d segments to recheck, over %d", len(r.Recheck), MaxRecheck)
		}
		for _, s := range r.Recheck {
			if s < 0 || s >= r.Segments {
				return fmt.Errorf("pipe close: segment %d to recheck out of range [0, %d)", s, r.Segments)
			}
		}
	case *Fifo:
		return checkID("fifo: pipe", r.Pipe)
	case *Host:
		if r.PID <= 0 {
			return fmt.Errorf("host: pid %d is not positive", r.PID)
		}
		return checkID("host: kernel", r.Kernel)
	case *Lease:
		return checkID("lease: kernel", r.Kernel)
	case *HostSpent:
		if r.Started <= 0 || r.Until < r.Started || r.Until-r.Started > int64(MaxHostLife) {
			return fmt.Errorf("host spent: life from %d to %d ns out of range [0, %v]", r.Started, r.Until, MaxHostLife)
		}
		return checkID("host spent: kernel", r.Kernel)

	case *HostRequest:
		if r.Made < 0 {
			return fmt.Errorf("host request: made %d is negative", r.Made)
		}
		if !isHexDigest(r.Digest) {
			return fmt.Errorf("host request: digest %.80q is not 64 lower-case hex digits", r.Digest)
		}
		return checkID("host request: kernel", r.By)
	case *HostReply:
		switch r.State {
		case HostStarting, HostStarted:
			if err := checkID("host reply: host", r.Host); err != nil {
				return err
			}
		case HostFailed:
			if r.Host != "" {
				if err := checkID("host reply: host", r.Host); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("host reply: state %.32q is none of %q, %q, %q", r.State, HostStarting, HostStarted, HostFailed)
		}
		if len(r.Error) > MaxHostError {
			return fmt.Errorf("host reply: error of %d bytes, over %d", len(r.Error), MaxHostError)
		}
	case *Namespace:
		if r.Version < 1 {
			return fmt.Errorf("namespace marker: version %d", r.Version)
		}
	case Validator:
		return r.Validate()
	}
	return nil
}

// Validator is a record type of another package that Decode checks, as it
// checks this package's own.
type Validator interface {
	Validate() error
}

func (p *Proc) validate() error {
	switch {
	case p.PID <= 0:
		return fmt.Errorf("process: pid %d is not positive", p.PID)
	case p.PPID < 0:
		return fmt.Errorf("process %d: ppid %d is negative", p.PID, p.PPID)
	case p.Group < 0:
		return fmt.Errorf("process %d: group %d is negative", p.PID, p.Group)
	}
	if err := checkID(fmt.Sprintf("process %d: kernel", p.PID), p.Kernel); err != nil {
		return err
	}
	if err := p.Stdin.check(fmt.Sprintf("process %d: stdin", p.PID), true); err != nil {
		return err
	}
	if err := p.Stdout.check(fmt.Sprintf("process %d: stdout", p.PID), false); err != nil {
		return err
	}
	if err := p.Stderr.check(fmt.Sprintf("process %d: stderr", p.PID), false); err != nil {
		return err
	}
	for i, f := range p.Files {
		if err := f.check(fmt.Sprintf("process %d: files[%d]", p.PID, i), f.End < 0); err != nil {
			return err
		}
	}
	return nil
}

// check validates a stream; reader says it is an input (a pipe's reader,
// End -1, with the positions it was moved at), else an output (a writer
// end).
func (s *Stream) check(what string, reader bool) error {
	switch s.Kind {
	case "", "console":
		return nil
	case "file":
		if s.Path == "" {
			return fmt.Errorf("%s: file without a path", what)
		}
		return nil
	case "pipe":
	default:
		return fmt.Errorf("%s: unknown kind %.40q", what, s.Kind)
	}
	if err := checkID(what+": pipe", s.Pipe); err != nil {
		return err
	}
	if !reader {
		if s.End < 0 || s.End >= MaxPipeEnd {
			return fmt.Errorf("%s: pipe end %d out of range [0, %d)", what, s.End, MaxPipeEnd)
		}
		if len(s.Read) > 0 {
			return fmt.Errorf("%s: a writer end with read positions", what)
		}
		return nil
	}
	if s.End != -1 {
		return fmt.Errorf("%s: pipe reader with end %d, not -1", what, s.End)
	}
	for end, next := range s.Read {
		if end < 0 || end >= MaxPipeEnd {
			return fmt.Errorf("%s: read position of pipe end %d, out of range [0, %d)", what, end, MaxPipeEnd)
		}
		if next < 0 {
			return fmt.Errorf("%s: read position %d of pipe end %d is negative", what, next, end)
		}
	}
	return nil
}

func (e *Exit) validate() error {
	switch {
	case e.PID <= 0:
		return fmt.Errorf("exit: pid %d is not positive", e.PID)
	case e.Signal < 0 || e.Signal > maxSignal:
		return fmt.Errorf("exit of %d: signal %d out of range [0, %d]", e.PID, e.Signal, maxSignal)
	}
	return nil
}

// maxSignal is the highest signal number a record may carry (Linux's
// real-time signals end at 64).
const maxSignal = 127

func (s *Signal) validate() error {
	switch {
	case s.PID < 0:
		return fmt.Errorf("signal: pid %d is negative", s.PID)
	case s.Child < 0:
		return fmt.Errorf("signal: child %d is negative", s.Child)
	case s.Signal <= 0 || s.Signal > maxSignal:
		return fmt.Errorf("signal for %d: number %d out of range [1, %d]", s.PID, s.Signal, maxSignal)
	case s.Exit == nil:
		return nil
	case s.Exit.PID != s.Child:
		return fmt.Errorf("signal for %d: the exit of %d, not of its child %d", s.PID, s.Exit.PID, s.Child)
	case s.Exit.By == "":
		return fmt.Errorf("signal for %d: the exit of %d names no kernel", s.PID, s.Exit.PID)
	}
	return s.Exit.validate()
}

// isHexDigest reports whether s is a SHA-256 in lower-case hex.
func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkID checks a kernel or pipe id, which becomes part of object names:
// non-empty, bounded, UTF-8 without '/' or control characters.
func checkID(what, id string) error {
	if id == "" || len(id) > maxID {
		return fmt.Errorf("%s id of %d bytes, not 1 to %d", what, len(id), maxID)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%s id %q is not UTF-8", what, id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == '/' {
			return fmt.Errorf("%s id %q contains '/' or a control character", what, id)
		}
	}
	return nil
}
