package rack

import (
	"fmt"
	"os"
	"sync"

	"github.com/rackfork/rack/backend"
)

// checkInheritedExe vets the program a child of parent would inherit.
//
// A child inherits its parent's Spec.Options, and with them the program
// the OS-process compute starts for it (backend.ExeOption). The Options
// of a process this kernel adopted come from a record another kernel
// wrote (handed over by its forker, or read from the store): its exe can
// then only be the program running here, since that is what its forker
// started for it. Anything else comes from a forged record, which must
// not choose the program that later forks run: refused. A program a
// process names in its own Spec.Options is not inherited and not vetted.
func checkInheritedExe(parent *proc) error {
	exe := parent.rec.Options[backend.ExeOption]
	if exe == "" || !parent.adopted || isRunningProgram(exe) {
		return nil
	}
	return fmt.Errorf("%w: the record of process %d names program %q (Spec.Options[%q]), which is not the program running it: a child does not inherit it", ErrInvalid, parent.pid, exe, backend.ExeOption)
}

// self is the running program's file, found once.
var self struct {
	once sync.Once
	fi   os.FileInfo
}

// isRunningProgram reports whether path names the running program's file.
func isRunningProgram(path string) bool {
	self.once.Do(func() {
		if exe, err := os.Executable(); err == nil {
			self.fi, _ = os.Stat(exe)
		}
	})
	fi, err := os.Stat(path)
	return err == nil && self.fi != nil && os.SameFile(fi, self.fi)
}
