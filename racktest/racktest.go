// Package racktest is rack's end-to-end suite: processes, exit codes,
// signals, kills, process groups, pipes, named pipes and files, exercised
// through the public API only, against whatever store a Harness opens
// kernels on. rack runs it on mem://, on a directory of local files and on
// OpenStack Swift; a third-party store driver runs it the same way, from
// an ordinary test:
//
//	func TestRack(t *testing.T) {
//		racktest.Run(t, racktest.Harness{
//			Open: func(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error) {
//				s, err := mystore.New(ctx, "...")
//				if err != nil {
//					return nil, err
//				}
//				return rack.New(ctx, s, inproc.New(), append([]rack.Option{rack.WithNamespace(name)}, opts...)...)
//			},
//		})
//	}
//
// Each test of the suite is a subtest of Run named after what it tests
// (ExitCodes, GroupKill, PipeCopy64MiB, FileFS, ...), so
// `go test -run 'TestRack/Pipe'` runs the pipe tests. Tests that a store
// cannot pass for a documented reason (Harness.LooseCreate) or that it
// would take too long over (Harness.ManyProcesses) skip, saying why.
//
// The suite's programs are Go closures that share channels with the test,
// so the kernels must run processes in-process (backend.InProcess, such as
// inproc.New()); a driver whose compute starts new programs tests that
// compute with backend/computetest.
package racktest

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/testkit"
)

// Harness says how Run opens kernels on the store under test, and what
// the store can be asked to do.
type Harness struct {
	// Open opens a kernel on the namespace called name, creating the
	// namespace if it does not exist. Every kernel that Open returns for
	// one name shares that namespace: its processes, pipes, groups, and
	// the account whose containers hold its files. Run gives each test
	// names of its own (lowercase letters, digits and '-', at most 120
	// bytes), unique to the test and the moment; Open may prefix them.
	// Open applies opts after any options of its own, so that the test's
	// win. The kernel must run processes in-process (see the package
	// documentation) and owns what it was made of (rack.New): Run closes
	// every kernel it opens. Open is required.
	Open func(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error)

	// OpenPrivate, if not nil, opens a kernel on a new namespace that no
	// other kernel can reach, as mem:// does: one whose data goes with
	// its kernel, so that a test of 100,000 processes leaves nothing
	// behind. When nil, Run calls Open with a new name instead.
	OpenPrivate func(ctx context.Context, t testing.TB, opts ...rack.Option) (*rack.Kernel, error)

	// ManyProcesses says that forks are cheap enough for a test to start
	// 10,000 and 100,000 processes (an in-memory store). Without it those
	// tests skip.
	ManyProcesses bool

	// SlowRequests says that each store request costs a network round
	// trip and that the store cannot notify, so readers poll (Swift):
	// tests that poll many pipe ends at once use fewer of them.
	SlowRequests bool

	// LooseCreate says that the store's create-only writes can race, as
	// Swift's do (backend.LooseCreate): the test that races exclusive
	// creates of large files (O_EXCL) skips.
	LooseCreate bool

	// SharedAccount says that the containers holding files belong to an
	// account that other tests and other runs share and that outlives
	// them (a Swift account). Run then puts a prefix of its own on the
	// names of the containers the tests write files into, and the test of
	// io/fs does not check the listing of the account's root, which shows
	// the other runs' containers too.
	SharedAccount bool

	// Slowdown multiplies the suite's deadlines, which only turn a hang
	// into a failure: a store whose every request is a network round trip
	// on a loaded machine (Swift on a shared CI host) may need 2 to 4.
	// 0 means 1.
	Slowdown int
}

// Run runs the suite against h, each test as a subtest of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("racktest: Harness.Open is nil")
	}
	s := &suite{h: h}
	if h.SharedAccount {
		// File containers outlive the run there: each run writes its own.
		s.fc = "r" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-"
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(s, t) })
	}
}

// deadline is how long a test that would take d on a fast store may run
// on this one before it counts as hung.
func (s *suite) deadline(d time.Duration) time.Duration {
	return d * time.Duration(max(s.h.Slowdown, 1))
}

// tests lists the suite, in the order it runs.
var tests = []struct {
	name string
	f    func(*suite, *testing.T)
}{
	{"Smoke", (*suite).testSmoke},
	// Processes and signals (process.go).
	{"ExitCodes", (*suite).testExitCodes},
	{"WaitFromManyGoroutines", (*suite).testWaitFromManyGoroutines},
	{"WaitCancelled", (*suite).testWaitCancelled},
	{"SIGTERMCancelsContext", (*suite).testSIGTERMCancelsContext},
	{"SIGTERMEscalatesAfterGrace", (*suite).testSIGTERMEscalatesAfterGrace},
	{"Notify", (*suite).testNotify},
	{"KillSubtree", (*suite).testKillSubtree},
	{"KillBeatsCleanReturn", (*suite).testKillBeatsCleanReturn},
	{"KillWhileForking", (*suite).testKillWhileForking},
	{"KilledProcessWritesAreFenced", (*suite).testKilledProcessWritesAreFenced},
	{"CrossKernel", (*suite).testCrossKernel},
	{"KernelClose", (*suite).testKernelClose},
	{"MaxRunning", (*suite).testMaxRunning},
	{"ForkAllIsAllOrNothing", (*suite).testForkAllIsAllOrNothing},
	{"SetStatusShowsInPS", (*suite).testSetStatusShowsInPS},
	{"PS10k", (*suite).testPS10k},
	{"PS100k", (*suite).testPS100k},
	{"ProcessLearnsItsIdentity", (*suite).testProcessLearnsItsIdentity},
	{"Forked", (*suite).testForked},
	// Process groups (group.go).
	{"GroupMembership", (*suite).testGroupMembership},
	{"GroupWait", (*suite).testGroupWait},
	{"GroupKill", (*suite).testGroupKill},
	{"GroupSignal", (*suite).testGroupSignal},
	{"GroupAcrossKernels", (*suite).testGroupAcrossKernels},
	// Pipes (pipe.go).
	{"PipeParentToChild", (*suite).testPipeParentToChild},
	{"PipeChildToParent", (*suite).testPipeChildToParent},
	{"PipeCopy64MiB", (*suite).testPipeCopy64MiB},
	{"PipeWritesStayContiguous", (*suite).testPipeWritesStayContiguous},
	{"PipeEOFWithDyingWriters", (*suite).testPipeEOFWithDyingWriters},
	{"PipeMovedReader", (*suite).testPipeMovedReader},
	{"PipeBadEnds", (*suite).testPipeBadEnds},
	{"PipeCloseUnblocksRead", (*suite).testPipeCloseUnblocksRead},
	{"NamedPipe", (*suite).testNamedPipe},
	{"NamedPipeDropsUnreadData", (*suite).testNamedPipeDropsUnreadData},
	{"NamedPipeSecondReader", (*suite).testNamedPipeSecondReader},
	{"NamedPipeInFileTree", (*suite).testNamedPipeInFileTree},
	{"NamedPipeForkAllWriters", (*suite).testNamedPipeForkAllWriters},
	// Files (file.go).
	{"FileRoundTrip", (*suite).testFileRoundTrip},
	{"FileLarge", (*suite).testFileLarge},
	{"FileInvisibleBeforeClose", (*suite).testFileInvisibleBeforeClose},
	{"FileDirectories", (*suite).testFileDirectories},
	{"FileSeekReadAt", (*suite).testFileSeekReadAt},
	{"FileExclusiveRace", (*suite).testFileExclusiveRace},
	{"FileOpenFlags", (*suite).testFileOpenFlags},
	{"FileFS", (*suite).testFileFS},
	{"FileOfKilledProcess", (*suite).testFileOfKilledProcess},
	{"FileReplacedWhileOpen", (*suite).testFileReplacedWhileOpen},
	{"FileAsStdio", (*suite).testFileAsStdio},
	{"KernelCloseDiscardsOpenFiles", (*suite).testKernelCloseDiscardsOpenFiles},
	// Bad input that reaches the store (input.go).
	{"BadSpec", (*suite).testBadSpec},
	{"BadFilePath", (*suite).testBadFilePath},
}

// suite is one Run: the harness, and what Run derived from it.
type suite struct {
	h Harness
	// fc prefixes the names of the containers the file tests write, on a
	// shared account (Harness.SharedAccount); "" otherwise.
	fc string
}

// sharedName returns the name of a new namespace that several kernels of
// the test may open (with s.open or s.pgOpen).
func (s *suite) sharedName(t testing.TB) string { return testkit.Name(t) }

// open opens a kernel on the namespace name, as the harness says.
func (s *suite) open(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error) {
	t.Helper()
	return s.h.Open(ctx, t, name, opts...)
}

// openPrivate opens a kernel on a new namespace of its own.
func (s *suite) openPrivate(ctx context.Context, t testing.TB, opts ...rack.Option) (*rack.Kernel, error) {
	t.Helper()
	if s.h.OpenPrivate != nil {
		return s.h.OpenPrivate(ctx, t, opts...)
	}
	return s.h.Open(ctx, t, s.sharedName(t), opts...)
}

// pgKernel opens a private namespace whose console is discarded, closed
// when the test ends.
func (s *suite) pgKernel(t testing.TB, opts ...rack.Option) *rack.Kernel {
	t.Helper()
	opts = append([]rack.Option{rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard)}, opts...)
	k, err := s.openPrivate(context.Background(), t, opts...)
	if err != nil {
		t.Fatalf("open a private namespace: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// ioKernel is pgKernel, under the name the pipe and file tests use.
func (s *suite) ioKernel(t *testing.T, opts ...rack.Option) *rack.Kernel {
	t.Helper()
	return s.pgKernel(t, opts...)
}

// pgOpen opens the namespace name with a silent console, closed when the
// test ends.
func (s *suite) pgOpen(t testing.TB, name string, opts ...rack.Option) *rack.Kernel {
	t.Helper()
	opts = append([]rack.Option{rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard)}, opts...)
	k, err := s.open(context.Background(), t, name, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// needManyProcesses skips a test that forks too many processes for a
// store without Harness.ManyProcesses.
func (s *suite) needManyProcesses(t testing.TB, why string) {
	t.Helper()
	if !s.h.ManyProcesses {
		t.Skipf("needs Harness.ManyProcesses: %s", why)
	}
}

// needExclusiveCreate skips a test that races exclusive creates on a
// store whose create-only writes can race (Harness.LooseCreate).
func (s *suite) needExclusiveCreate(t testing.TB, why string) {
	t.Helper()
	if s.h.LooseCreate {
		t.Skipf("Harness.LooseCreate: %s", why)
	}
}
