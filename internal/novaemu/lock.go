package novaemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rackfork/rack/internal/osfile"
)

// LockAddr takes an exclusive lock named after addr, waiting for it, so
// that tests of several packages (which go test runs at once) take turns
// at a fixed address, such as the compute endpoint Keystone's catalog
// names. Call the returned function to release it.
func LockAddr(addr string) (unlock func(), err error) {
	name := strings.NewReplacer(":", "_", "/", "_").Replace(addr)
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "novaemu-"+name+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("novaemu: lock for %s: %w", addr, err)
	}
	if err := osfile.Lock(f, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("novaemu: lock for %s: %w", addr, err)
	}
	return func() { f.Close() }, nil
}
