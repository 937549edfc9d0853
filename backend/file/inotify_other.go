//go:build !linux

package file

import "errors"

// inotify is missing here: Stores poll.
type inotify struct{}

type event struct {
	wd       int32
	name     string
	removed  bool
	ignored  bool
	overflow bool
}

func newInotify() (*inotify, error) { return nil, errors.New("no inotify on this platform") }

func (n *inotify) add(dir string) (int32, error) { return 0, errors.New("no inotify") }
func (n *inotify) remove(wd int32)               {}
func (n *inotify) read(buf []byte) ([]event, error) {
	return nil, errors.New("no inotify")
}
func (n *inotify) close() {}
