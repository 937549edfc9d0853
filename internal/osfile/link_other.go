//go:build !linux

package osfile

import "os"

// LinkNoReplace gives tmp the name path unless path exists: a link, so tmp
// is still there for the caller to remove.
func LinkNoReplace(tmp, path string) (moved bool, err error) {
	return false, os.Link(tmp, path)
}
