package backend

import (
	"context"
	"time"
)

// Optional abilities. A driver implements the ones it has; the kernel finds
// them with a type assertion on the driver it was given (never on a concrete
// driver type), so a third-party driver can have them too. The conformance
// suites (storetest, computetest) check each one a driver implements.

// ExeOption is the StartRequest (and rack.Spec) option naming another
// program for a compute that starts new programs to run instead of this
// one: that program brings its own code. Computes that cannot start
// another program ignore it.
const ExeOption = "exe"

// ProgramOption is the StartRequest (and rack.Spec) option naming a
// published program to start instead of this one, by its SHA-256 in
// lower-case hex: a program the compute's stager holds already, as the
// rack shell's install publishes apps. A compute that boots servers from
// staged programs (backend/nova) boots that one, uploading nothing; like
// ExeOption, the program brings its own code, and a child inherits it
// with its parent's options. Computes that cannot start a published
// program ignore it, as they ignore ExeOption.
const ProgramOption = "exe-sha256"

// HostOption is set (to "1") in the StartRequest of an instance that is
// a host (see the rack README's "Hosts"): a program that runs many rack
// processes and ends itself once idle, or once its namespace has no
// other kernel. It outlives the Compute that started it: Close leaves it
// running, and its forker's death does not end it (its own watch does).
// A compute that cannot start an instance that outlives it refuses the
// request with ErrInvalid.
const HostOption = "host"

// HostStarter is implemented by computes that may be unable to start
// instances: a host's compute on a server whose credential reaches only
// its namespace's container and deletes servers (openstack's narrow
// credential) cannot create servers. When StartsHosts reports false, a
// kernel on that compute does not call Start for a new host: it asks for
// one with a request record that a kernel of the namespace with the power
// (the root's, which watches for requests while it lives) serves by
// starting a host of its own kind, which the asker then uses (see the rack
// README's "Hosts"). A compute without the method starts hosts itself.
type HostStarter interface {
	StartsHosts() bool
}

// HostSlots is implemented by computes that know how many processes a
// host (HostOption) they start can run at once: the vCPUs of the flavor a
// server is booted with, say. The kernel asks it once, when hosts are on
// and no slot count was given; without it (or when it fails) a host has
// as many slots as the forker's machine has CPUs.
type HostSlots interface {
	// HostSlots returns the slots of a host started with the compute's
	// defaults (at least 1).
	HostSlots(ctx context.Context) (int, error)
}

// PipeHints advise how rack's pipes buffer their data on a store.
type PipeHints struct {
	// SegmentSize is the largest pipe segment (one object) in bytes,
	// between 1 and MaxPipeSegment. A reader holds a few segments in
	// memory; a store whose every request costs more than its bytes
	// wants larger ones.
	SegmentSize int
	// FlushDelay is how long small writes may wait to be batched into one
	// segment, between 0 and MaxFlushDelay. A Write returns before its
	// bytes are stored only when it is positive, so it should be positive
	// only for a store that dies with the writer (an in-memory one):
	// elsewhere the OS process holding a batch could die with it while its
	// reader lives on.
	FlushDelay time.Duration
}

// Bounds of PipeHints: the kernel ignores hints outside them.
const (
	MaxPipeSegment = 64 << 20
	MaxFlushDelay  = time.Second
)

// Valid reports whether h is within the bounds above.
func (h PipeHints) Valid() bool {
	return h.SegmentSize >= 1 && h.SegmentSize <= MaxPipeSegment && h.FlushDelay >= 0 && h.FlushDelay <= MaxFlushDelay
}

// SmallDeleter is implemented by stores whose Delete looks at an object
// before it deletes it, and which can skip the look for a small one: Swift
// reads an object's headers first, to delete a Static Large Object's
// segments with it (a HEAD before every DELETE), and makes no object of up
// to SmallObjectMax bytes in parts when it knows the size up front.
// DeleteSmall is Delete, in one request, of an object the caller wrote
// whole with one Put of a body of known size (see Store.Put: a
// bytes.Reader, say) of at most SmallObjectMax bytes, as every record is.
// On any other object (a hostile writer's large one in its place) it
// deletes that object alone, leaving its parts behind: never anything
// else.
type SmallDeleter interface {
	DeleteSmall(ctx context.Context, container, name string) error
}

// SmallObjectMax bounds the objects a SmallDeleter's caller may delete with
// DeleteSmall: Swift's smallest segment size (1 MiB).
const SmallObjectMax = 1 << 20

// PipeHinter is implemented by stores that advise how pipes should buffer
// on them. Without it the kernel uses 4 MiB segments and no delay, what a
// remote store (Swift) wants.
type PipeHinter interface {
	PipeHints() PipeHints
}

// SameMachine is implemented by computes that start each instance as a new
// OS process on the caller's own machine, right away, with
// StartRequest.Env as its environment, which no other user can read. For
// such a compute the kernel puts a child's process record (up to 16 KiB)
// in its environment and makes the child's kernel lease itself while the
// program loads, so a fork costs a request and a round trip less. A compute
// whose instances run elsewhere, or whose Env others may read (a server's
// user data), must not report true.
type SameMachine interface {
	SameMachine() bool
}

// SelfDeleter is implemented by the compute of a kernel that runs inside
// an instance (a child) and can end that instance: the server it runs on,
// say. The kernel calls DeleteSelf when the process it hosts was killed
// because its forker died, since nobody else is left to do it. An instance
// that ends with its OS process needs no SelfDeleter.
type SelfDeleter interface {
	// DeleteSelf deletes the instance this program runs in. It fails,
	// deleting nothing, when this program runs in no instance of the
	// compute's.
	DeleteSelf(ctx context.Context) error
}

// Reaper is implemented by computes whose instances outlive the program
// they run: a server stays, holding quota and costing money, until it is
// deleted, and its cloud may tell that its program ended only minutes
// later. The kernel calls Reap on the forker's compute as soon as it has
// read the exit record of a child started as a new program, with the
// child's instance name, so that the instance goes at once.
type Reaper interface {
	// Reap ends instance name, whose program has ended, in the
	// background: it must not block. It does nothing for an instance the
	// compute does not know or already ends.
	Reap(name string)
}

// ExitSelfDeleter is a SelfDeleter whose instance outlives its program.
// The kernel of a child calls DeleteSelfAfterExit once the process it
// hosts has recorded its exit (and DeleteSelf at once instead, when the
// process was killed because its forker died), just before the program
// ends: the forker deletes the instance when it reads the exit (Reaper),
// so this waits a while for that and deletes the instance itself only if
// it still runs, a fallback for a forker that cannot.
type ExitSelfDeleter interface {
	SelfDeleter
	DeleteSelfAfterExit(ctx context.Context) error
}

// SegmentSweeper is implemented by stores that keep the segments of large
// objects apart from them (Swift's "<container>_segments"): it deletes
// container's segments that no object names and that were uploaded at
// least minAge ago, and returns how many it deleted. GC calls it for each
// marked namespace with GCOptions.Namespaces.
type SegmentSweeper interface {
	SweepSegments(ctx context.Context, container string, minAge time.Duration) (int, error)
}

// Pauser is implemented by computes that can stop an instance's program
// and let it go on, as SIGSTOP and SIGCONT do to a Linux process (osproc
// does exactly that). The kernel that started the instance calls them
// for rack's SIGSTOP, SIGTSTP and SIGCONT, and keeps the stopped
// program's kernel lease meanwhile. A compute without it cannot stop a
// process: the signal fails with errors.ErrUnsupported.
type Pauser interface {
	// Pause stops instance name's program; pausing a paused one does
	// nothing. It fails wrapping ErrNotFound for an instance the compute
	// does not run.
	Pause(ctx context.Context, name string) error
	// Resume lets a paused instance's program go on; resuming a running
	// one does nothing.
	Resume(ctx context.Context, name string) error
}
