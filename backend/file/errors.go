package file

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/rackfork/rack/backend"
)

// ErrClosed is wrapped by the errors of calls made on a Store after Close.
var ErrClosed = errors.New("file: store is closed")

// opError is the error every Store method returns. It names the operation,
// the container and the object, and wraps one of the backend sentinel
// errors (or ErrClosed, or a context or reader error).
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
	b.WriteString("file: ")
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

func storeError(op, detail string, err error) error {
	return &opError{op: op, scope: scopeStore, detail: detail, err: err}
}

func containerError(op, container, detail string, err error) error {
	return &opError{op: op, container: container, scope: scopeContainer, detail: detail, err: err}
}

func objectError(op, container, name, detail string, err error) error {
	return &opError{op: op, container: container, name: name, scope: scopeObject, detail: detail, err: err}
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
