package mem

import (
	"errors"

	"github.com/rackfork/rack/backend"
)

// ErrClosed is wrapped by the errors of calls made on a Store after Close
// (never on a Shared store, whose Close is a no-op).
var ErrClosed = errors.New("mem: store is closed")

// storeError returns an error about the store as a whole.
func storeError(op, detail string, err error) error {
	return &backend.OpError{Driver: "mem", Op: op, Detail: detail, Err: err}
}

// containerError returns an error about a container as a whole.
func containerError(op, container, detail string, err error) error {
	return &backend.OpError{Driver: "mem", Op: op, Container: container, Detail: detail, Err: err}
}

// objectError returns an error about one object.
func objectError(op, container, name, detail string, err error) error {
	return &backend.OpError{Driver: "mem", Op: op, Container: container, Name: name, Detail: detail, Err: err}
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
