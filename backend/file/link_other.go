//go:build !linux

package file

import "os"

// linkNoReplace gives tmp the name final unless final exists: a link, so
// tmp stays for the caller to remove.
func linkNoReplace(tmp, final string) (moved bool, err error) {
	return false, os.Link(tmp, final)
}
