package file

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/rackfork/rack/backend"
)

// ErrClosed is wrapped by the errors of calls made on a Store after Close.
var ErrClosed = errors.New("file: store is closed")

// storeError returns an error about the store as a whole.
func storeError(op, detail string, err error) error {
	return &backend.OpError{Driver: "file", Op: op, Detail: detail, Err: err}
}

// containerError returns an error about a container as a whole.
func containerError(op, container, detail string, err error) error {
	return &backend.OpError{Driver: "file", Op: op, Container: container, Detail: detail, Err: err}
}

// objectError returns an error about one object.
func objectError(op, container, name, detail string, err error) error {
	return &backend.OpError{Driver: "file", Op: op, Container: container, Name: name, Detail: detail, Err: err}
}

// ioError wraps an unexpected file system error: it keeps the *PathError
// for the message and adds backend.ErrTransient when a retry may help
// (out of space, too many open files, interrupted, I/O error), so that
// errors.Is works for both.
type ioError struct {
	err       error
	transient bool
}

func (e *ioError) Error() string { return e.err.Error() }

func (e *ioError) Unwrap() []error {
	if e.transient {
		return []error{e.err, backend.ErrTransient}
	}
	return []error{e.err}
}

// fsErr classifies an unexpected file system error.
func fsErr(err error) error {
	var errno syscall.Errno
	transient := errors.As(err, &errno) && (errno == syscall.ENOSPC || errno == syscall.EMFILE ||
		errno == syscall.ENFILE || errno == syscall.EINTR || errno == syscall.EIO || errno == syscall.EAGAIN ||
		errno == syscall.ENOMEM || errno == syscall.EBUSY)
	return &ioError{err: err, transient: transient}
}

// notExist reports whether err says a path does not exist (ENOENT, or
// ENOTDIR when a path component is a file).
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
