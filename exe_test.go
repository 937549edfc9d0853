package rack

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// A child inherits the exe of an adopted parent (its record written by
// another kernel) only if it is the program running here: a forged record
// must not choose what later forks run. A process's own Spec.Options, and
// those of a process this kernel started, are the user's choice.
func TestInheritedExe(t *testing.T) {
	me, err := os.Executable()
	if err != nil {
		t.Skip("no os.Executable here:", err)
	}
	for _, c := range []struct {
		exe     string
		adopted bool
		ok      bool
	}{
		{"", true, true},
		{me, true, true},
		{"/bin/sh", true, false},
		{"/nonexistent/program", true, false},
		{"/bin/sh", false, true},
	} {
		parent := &proc{pid: 12, adopted: c.adopted, rec: &record.Proc{PID: 12, Options: map[string]string{backend.ExeOption: c.exe}}}
		err := checkInheritedExe(parent)
		if (err == nil) != c.ok {
			t.Errorf("exe %q, adopted %v: %v, want ok %v", c.exe, c.adopted, err, c.ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.exe)) {
			t.Errorf("exe %q: error %v does not wrap ErrInvalid and name the program", c.exe, err)
		}
	}
}

// The same for a published program's digest (backend.ProgramOption): an
// adopted parent's is inherited only if it is the running program's.
func TestInheritedProgramDigest(t *testing.T) {
	mine := runningProgramSHA256()
	if mine == "" {
		t.Skip("the running program cannot be read here")
	}
	other := strings.Repeat("ab", 32)
	for _, c := range []struct {
		sum     string
		adopted bool
		ok      bool
	}{
		{mine, true, true},
		{other, true, false},
		{"../x", true, false},
		{other, false, true},
	} {
		parent := &proc{pid: 12, adopted: c.adopted, rec: &record.Proc{PID: 12, Options: map[string]string{backend.ProgramOption: c.sum}}}
		err := checkInheritedExe(parent)
		if (err == nil) != c.ok {
			t.Errorf("sum %q, adopted %v: %v, want ok %v", c.sum, c.adopted, err, c.ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.sum)) {
			t.Errorf("sum %q: error %v does not wrap ErrInvalid and name the digest", c.sum, err)
		}
	}
}
