package mem

import (
	"errors"
	"strconv"
	"strings"

	"github.com/rackfork/rack/backend"
)

// ErrClosed is wrapped by the errors of calls made on a Store after Close
// (never on a Shared store, whose Close is a no-op).
var ErrClosed = errors.New("mem: store is closed")

// opError is the error every Store method returns. It names the operation,
// the container and the object, and wraps one of the backend sentinel
// errors (or ErrClosed, or a context or reader error). The message is built
// only when asked for, so that error paths that are part of normal operation
// (a create-only Put losing, a Head of a missing object) stay cheap.
type opError struct {
	op        string
	container string
	name      string
	scope     scope
	detail    string
	err       error
}

// scope says what an opError is about.
type scope uint8

const (
	scopeStore     scope = iota // the store as a whole (ListContainers)
	scopeContainer              // one container
	scopeObject                 // one object
)

func (e *opError) Error() string {
	var b strings.Builder
	b.WriteString("mem: ")
	b.WriteString(e.op)
	if e.scope >= scopeContainer {
		b.WriteString(" container ")
		b.WriteString(strconv.Quote(e.container))
	}
	if e.scope == scopeObject {
		b.WriteString(" object ")
		b.WriteString(strconv.Quote(e.name))
	}
	b.WriteString(": ")
	if e.detail != "" {
		b.WriteString(e.detail)
		b.WriteString(": ")
	}
	b.WriteString(e.err.Error())
	return b.String()
}

func (e *opError) Unwrap() error { return e.err }

// storeError returns an error about the store as a whole.
func storeError(op, detail string, err error) error {
	return &opError{op: op, scope: scopeStore, detail: detail, err: err}
}

// containerError returns an error about a container as a whole.
func containerError(op, container, detail string, err error) error {
	return &opError{op: op, container: container, scope: scopeContainer, detail: detail, err: err}
}

// objectError returns an error about one object.
func objectError(op, container, name, detail string, err error) error {
	return &opError{op: op, container: container, name: name, scope: scopeObject, detail: detail, err: err}
}

// faultError is an injected transient failure (see WithFaults). It wraps
// backend.ErrTransient; after reports whether the call ran (and took effect,
// if it could) before failing.
type faultError struct {
	after bool
}

func (e *faultError) Error() string {
	if e.after {
		return "injected fault after the call ran: " + backend.ErrTransient.Error()
	}
	return "injected fault: " + backend.ErrTransient.Error()
}

func (e *faultError) Unwrap() error { return backend.ErrTransient }

var (
	faultBefore = &faultError{after: false}
	faultAfter  = &faultError{after: true}
)
