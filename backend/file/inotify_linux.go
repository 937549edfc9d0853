package file

import (
	"os"
	"syscall"
	"unsafe"
)

// inotify is an inotify instance whose reads park in Go's poller, so that
// closing it ends a blocked read.
type inotify struct {
	f  *os.File
	fd int
}

// event is one inotify event, decoded.
type event struct {
	wd       int32
	name     string
	removed  bool // the named file was deleted or moved away
	ignored  bool // the watch is gone
	overflow bool // events were lost
}

func newInotify() (*inotify, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &inotify{f: os.NewFile(uintptr(fd), "inotify"), fd: fd}, nil
}

const watchMask = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM |
	syscall.IN_MOVED_TO | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR |
	syscall.IN_DONT_FOLLOW // a symbolic link planted for .notify is not followed

func (n *inotify) add(dir string) (int32, error) {
	wd, err := syscall.InotifyAddWatch(n.fd, dir, watchMask)
	return int32(wd), err
}

func (n *inotify) remove(wd int32) {
	syscall.InotifyRmWatch(n.fd, uint32(wd))
}

// read waits for events and decodes them.
func (n *inotify) read(buf []byte) ([]event, error) {
	k, err := n.f.Read(buf)
	if err != nil {
		return nil, err
	}
	var evs []event
	for off := 0; off+syscall.SizeofInotifyEvent <= k; {
		raw := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := ""
		if raw.Len > 0 {
			b := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(raw.Len)]
			for i, c := range b {
				if c == 0 {
					b = b[:i]
					break
				}
			}
			name = string(b)
		}
		evs = append(evs, event{
			wd:       raw.Wd,
			name:     name,
			removed:  raw.Mask&(syscall.IN_DELETE|syscall.IN_MOVED_FROM) != 0,
			ignored:  raw.Mask&syscall.IN_IGNORED != 0,
			overflow: raw.Mask&syscall.IN_Q_OVERFLOW != 0,
		})
		off += syscall.SizeofInotifyEvent + int(raw.Len)
	}
	return evs, nil
}

func (n *inotify) close() { n.f.Close() }
