//go:build !linux

package file

import (
	"errors"
	"os"
	"time"
)

// sparesHelp reports whether spare files pay in dir: measured on Linux
// only, so elsewhere files are made as they are needed.
func sparesHelp(dir string) bool { return false }

// renameNoReplace is never called here (no spares).
func renameNoReplace(old, new string) error { return errors.ErrUnsupported }

// lockRefill is never called here (no spares).
func lockRefill(dir *os.File) bool { return false }

// spreadDirs is a hint for Linux's ext file systems (see spare_linux.go).
func spreadDirs(dir *os.File) {}

// changed returns when the file fi describes was last written (no spares
// here: a file in DIR/tmp is made when its Put starts).
func changed(fi os.FileInfo) time.Time { return fi.ModTime() }
