package backend

import (
	"strconv"
	"strings"
)

// OpError is the error the in-repo drivers return: it names the driver,
// the operation, the container and the object, and wraps one of the
// sentinel errors above (or a context or I/O error). The message is built
// only when asked for, so error paths that are part of normal operation (a
// create-only Put losing, a Head of a missing object) stay cheap.
type OpError struct {
	Driver    string // "mem", "file"...
	Op        string
	Container string // "" for an error about the store as a whole
	Name      string // "" for an error about a container as a whole
	Detail    string
	Err       error
}

func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString(e.Driver)
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.Container != "" {
		b.WriteString(" container ")
		b.WriteString(strconv.Quote(e.Container))
	}
	if e.Name != "" {
		b.WriteString(" object ")
		b.WriteString(strconv.Quote(e.Name))
	}
	b.WriteString(": ")
	if e.Detail != "" {
		b.WriteString(e.Detail)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the wrapped error.
func (e *OpError) Unwrap() error { return e.Err }
