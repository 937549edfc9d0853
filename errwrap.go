package rack

import (
	"fmt"
	"strings"
)

// wrapf is fmt.Errorf for a kernel message ("rack: ...") that wraps another
// rack error: the wrapped error's own "rack: " prefix is not repeated, so
// a chain reads "rack: process 7: not found", not "rack: process 7: rack:
// not found". errors.Is and errors.As see through it as through
// fmt.Errorf.
func wrapf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "rack: "), ": rack: ", ": ")
	return &chainError{msg: "rack: " + msg, err: err}
}

// chainError is wrapf's error: err with its message cleaned.
type chainError struct {
	msg string
	err error
}

func (e *chainError) Error() string { return e.msg }

// Unwrap returns the fmt.Errorf error, which unwraps to what it wraps.
func (e *chainError) Unwrap() error { return e.err }
