//go:build !linux

package osproc

import "os"

// linkNoReplace gives tmp the name path unless path exists: a link, so tmp
// is still there.
func linkNoReplace(tmp, path string) (moved bool, err error) {
	return false, os.Link(tmp, path)
}
