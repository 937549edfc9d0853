package rack

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/rackfork/rack/backend"
)

// checkInheritedExe vets the program a child of parent would inherit.
//
// A child inherits its parent's Spec.Options, and with them the program
// the compute starts for it: a path for the OS-process compute
// (backend.ExeOption), a published program's SHA-256 for one that boots
// servers (backend.ProgramOption). The Options of a process this kernel
// adopted come from a record another kernel wrote (handed over by its
// forker, or read from the store): its program can then only be the
// program running here, since that is what its forker started for it.
// Anything else comes from a forged record, which must not choose the
// program that later forks run: refused. A program a process names in its
// own Spec.Options is not inherited and not vetted.
func checkInheritedExe(parent *proc) error {
	if !parent.adopted {
		return nil
	}
	if exe := parent.rec.Options[backend.ExeOption]; exe != "" && !isRunningProgram(exe) {
		return fmt.Errorf("%w: the record of process %d names program %q (Spec.Options[%q]), which is not the program running it: a child does not inherit it", ErrInvalid, parent.pid, exe, backend.ExeOption)
	}
	if sum := parent.rec.Options[backend.ProgramOption]; sum != "" && sum != runningProgramSHA256() {
		return fmt.Errorf("%w: the record of process %d names program sha256 %.70q (Spec.Options[%q]), which is not the program running it: a child does not inherit it", ErrInvalid, parent.pid, sum, backend.ProgramOption)
	}
	return nil
}

// self is the running program's file, found once.
var self struct {
	once sync.Once
	fi   os.FileInfo

	sumOnce sync.Once
	sum     string // its SHA-256, lower-case hex, once needed
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

// runningProgramSHA256 returns the SHA-256 of the running program's file
// in lower-case hex ("" if it cannot be read), computed once.
func runningProgramSHA256() string {
	self.sumOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			return
		}
		f, err := os.Open(exe)
		if err != nil {
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err == nil {
			self.sum = hex.EncodeToString(h.Sum(nil))
		}
	})
	return self.sum
}
