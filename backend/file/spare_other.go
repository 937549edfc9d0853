//go:build !linux

package file

// sparesHelp reports whether spare files pay in dir: measured on Linux
// only, so elsewhere files are made as they are needed.
func sparesHelp(dir string) bool { return false }
