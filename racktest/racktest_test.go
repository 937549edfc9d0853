package racktest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/file"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/racktest"
)

// The suite on mem:// runs in the root package (TestSuite); here it runs
// on the other stores rack ships.

// TestFile runs the suite on local files: each namespace is a directory of
// its own (the store's account) under a temporary directory, holding the
// namespace's container and the containers of its files. Its processes run
// in-process (inproc), not as the OS processes a file:// URL gives: the
// suite's programs are closures, which a new OS process cannot run (the
// local compute is tested by backend/osproc and the root's osproc tests).
//
// The directory is on /dev/shm when there is one: the suite creates and
// deletes tens of thousands of small files, which on a journaled disk of a
// busy VM takes ten times as long (PipeEOFWithDyingWriters: 56 s on ext4,
// 5.5 s on tmpfs, on the 2-core machine this was written on), and the
// store's semantics do not depend on the medium (it does not fsync here).
func TestFile(t *testing.T) {
	root := tempDir(t)
	racktest.Run(t, racktest.Harness{
		Open: func(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error) {
			// No fsync, as file:// opens it: a machine crash ends a
			// local namespace's processes anyway.
			s, err := file.New(filepath.Join(root, name), file.WithoutSync())
			if err != nil {
				return nil, err
			}
			k, err := rack.New(ctx, s, inproc.New(), opts...)
			if err != nil {
				s.Close()
				return nil, err
			}
			return k, nil
		},
	})
}

// TestSwift runs the suite on the Swift that SWIFT_AUTH_URL, SWIFT_USER and
// SWIFT_KEY name (scripts/swift-saio.sh starts one), each namespace a
// container rt-NAME of that account, its processes in-process. Without
// SWIFT_AUTH_URL it skips, or fails under RACK_REQUIRE_SWIFT=1.
func TestSwift(t *testing.T) {
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			t.Fatal("Swift required (RACK_REQUIRE_SWIFT=1) but SWIFT_AUTH_URL is unset: start it with scripts/swift-saio.sh")
		}
		t.Skip("no Swift: SWIFT_AUTH_URL unset (scripts/swift-saio.sh starts one)")
	}
	cfg, err := swift.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	racktest.Run(t, racktest.Harness{
		Open: func(ctx context.Context, t testing.TB, name string, opts ...rack.Option) (*rack.Kernel, error) {
			s, err := swift.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			k, err := rack.New(ctx, s, inproc.New(), append([]rack.Option{rack.WithNamespace("rt-" + name)}, opts...)...)
			if err != nil {
				s.Close()
				return nil, err
			}
			return k, nil
		},
		SlowRequests:  true,
		LooseCreate:   true,
		SharedAccount: true,
		// Every write is a PUT on a loopback Swift that shares two cores
		// with the rest of the test run.
		Slowdown: 3,
	})
}

// tempDir returns a new directory on /dev/shm, or else in the default
// temporary directory, removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "racktest-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}
