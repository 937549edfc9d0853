package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/rackfork/rack"
)

// The shell's error messages read like bash's: "rack: NAME: what" for a
// builtin, with bash's words for the usual causes (No such file or
// directory, No such process...), and a kernel error's own "rack: "
// prefixes not repeated.

// cleanError returns err's text without its "rack: " prefixes: the shell
// adds one.
func cleanError(err error) string {
	s := strings.TrimPrefix(err.Error(), "rack: ")
	return strings.ReplaceAll(s, ": rack: ", ": ")
}

// reason returns why a file operation failed, in bash's words where bash
// has some, without the operation and path (the caller names the path).
func reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "Permission denied"
	case errors.Is(err, fs.ErrExist):
		return "File exists"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	s := cleanError(err)
	// "invalid argument: "/x": path names a container...": the path is
	// named by the caller.
	s = strings.TrimPrefix(s, "invalid argument: ")
	if pe != nil {
		s = strings.TrimPrefix(s, fmt.Sprintf("%q: ", pe.Path))
	}
	return s
}

// fileError is "PATH: reason", as bash reports a file it cannot open.
func fileError(path string, err error) string {
	return path + ": " + reason(err)
}

// processError is bash's "(PID) - No such process" for a process that
// does not exist (or has ended), else the error.
func processError(pid rack.PID, err error) string {
	if errors.Is(err, rack.ErrNotFound) || errors.Is(err, rack.ErrFinished) {
		return fmt.Sprintf("(%d) - No such process", pid)
	}
	return cleanError(err)
}

// report prints err on the shell's stderr as "rack: ...".
func (sh *shell) report(err error) {
	sh.errorf("rack: %s", cleanError(err))
}
