package rack_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
)

// TestErrorChains checks that the kernel's errors name what failed once,
// without repeating "rack: " or an io/fs error's text, and that errors.Is
// still finds every error they wrap.
func TestErrorChains(t *testing.T) {
	ctx := context.Background()
	k, err := rack.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	_, err = k.Process(ctx, 99999)
	if !errors.Is(err, rack.ErrNotFound) || err.Error() != "rack: process 99999: not found" {
		t.Errorf("Process(99999): %q (errors.Is ErrNotFound: %v)", err, errors.Is(err, rack.ErrNotFound))
	}

	f, err := k.Create(ctx, "/c/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	err = k.Remove(ctx, "/c")
	if !errors.Is(err, fs.ErrExist) || !errors.Is(err, backend.ErrExist) {
		t.Errorf("Remove of a full container: %v: not fs.ErrExist and backend.ErrExist", err)
	}
	if err != nil && (strings.Contains(err.Error(), "file already exists") || !strings.Contains(err.Error(), "not empty")) {
		t.Errorf("Remove of a full container: %q", err)
	}
	_, err = k.Open(ctx, "/c/missing")
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, backend.ErrNotFound) || strings.Contains(err.Error(), "file does not exist") {
		t.Errorf("Open of a missing file: %q", err)
	}

	_, err = rack.Open(ctx, "bogus://")
	if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), `"bogus://"`) || strings.Count(err.Error(), "rack: ") != 1 {
		t.Errorf(`Open("bogus://"): %q`, err)
	}
}
