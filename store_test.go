package rack_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/rackfork/rack/openstack" // the swift, swift+v1 and openstack schemes
)

// The root tests run against the in-memory store by default. With
// RACK_TEST_STORE=swift they run against the Swift that SWIFT_AUTH_URL,
// SWIFT_USER and SWIFT_KEY name (scripts/swift-saio.sh starts one), each
// test in namespaces (containers) of its own:
//
//	RACK_TEST_STORE=swift go test -race .
//
// Tests that only make sense in memory (100,000 processes, in-memory
// timings) say so and skip on Swift.
var testStore = os.Getenv("RACK_TEST_STORE")

// fc prefixes the container names of file tests on Swift, where containers
// belong to the account and outlive a run: each run writes its own.
var fc = func() string {
	if testStore != "swift" {
		return ""
	}
	return "r" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-"
}()

// onSwift reports whether the tests run against Swift.
func onSwift() bool { return testStore == "swift" }

// memOnly skips a test that only makes sense on the in-memory store.
func memOnly(t testing.TB, why string) {
	t.Helper()
	if onSwift() {
		t.Skipf("in-memory store only: %s", why)
	}
}

// testURL returns the URL of a new namespace private to the test.
func testURL(t testing.TB) string {
	t.Helper()
	if !onSwift() {
		return "mem://"
	}
	return testSharedURL(t)
}

// testSharedURL returns the URL of a new namespace that several kernels of
// the test may open.
func testSharedURL(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	if len(name) > 100 {
		name = name[:100]
	}
	unique := name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	switch testStore {
	case "", "mem":
		return "mem://t-" + unique
	case "swift":
		if os.Getenv("SWIFT_AUTH_URL") == "" {
			t.Fatal("RACK_TEST_STORE=swift needs SWIFT_AUTH_URL, SWIFT_USER and SWIFT_KEY (scripts/swift-saio.sh start prints them)")
		}
		return "swift+v1:///rt-" + unique
	default:
		t.Fatalf("RACK_TEST_STORE=%q: want mem or swift", testStore)
		return ""
	}
}
