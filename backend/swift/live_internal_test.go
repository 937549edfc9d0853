package swift

import (
	"context"
	"os"
	"testing"
)

// liveStore opens the Swift of SWIFT_AUTH_URL for this package's own
// tests, with change applied to its Config first, or skips (fails when
// RACK_REQUIRE_SWIFT=1) when it is unset. The store is closed at cleanup.
func liveStore(t *testing.T, change func(*Config)) *Store {
	t.Helper()
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			t.Fatal("Swift required but SWIFT_AUTH_URL unset (start one with scripts/swift-saio.sh)")
		}
		t.Skip("SWIFT_AUTH_URL unset")
	}
	cfg, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
