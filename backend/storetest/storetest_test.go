package storetest

import (
	"errors"
	"testing"

	"github.com/rackfork/rack/backend"
)

// The suite itself runs in backend/mem (mem_test.go); these tests cover the
// page checks the suite relies on to reject broken listings at once.
func TestCheckPage(t *testing.T) {
	obj := func(name string) backend.ObjectInfo { return backend.ObjectInfo{Name: name} }
	dir := func(name string) backend.ObjectInfo { return backend.ObjectInfo{Name: name, Subdir: true} }
	for _, tc := range []struct {
		what  string
		page  []backend.ObjectInfo
		opts  backend.ListOptions
		limit int
		ok    bool
	}{
		{"ordered", []backend.ObjectInfo{obj("a"), obj("b")}, backend.ListOptions{}, 0, true},
		{"byte order", []backend.ObjectInfo{obj("B"), obj("a")}, backend.ListOptions{}, 0, true},
		{"unordered", []backend.ObjectInfo{obj("b"), obj("a")}, backend.ListOptions{}, 0, false},
		{"duplicate", []backend.ObjectInfo{obj("a"), obj("a")}, backend.ListOptions{}, 0, false},
		{"over limit", []backend.ObjectInfo{obj("a"), obj("b")}, backend.ListOptions{Limit: 1}, 1, false},
		{"marker", []backend.ObjectInfo{obj("a")}, backend.ListOptions{Marker: "a"}, 0, false},
		{"prefix", []backend.ObjectInfo{obj("a")}, backend.ListOptions{Prefix: "b"}, 0, false},
		{"subdir", []backend.ObjectInfo{dir("a/")}, backend.ListOptions{Delimiter: "/"}, 0, true},
		{"subdir without delimiter", []backend.ObjectInfo{dir("a/")}, backend.ListOptions{}, 0, false},
		{"metadata", []backend.ObjectInfo{{Name: "a", Metadata: map[string]string{}}}, backend.ListOptions{}, 0, false},
	} {
		err := checkPage(tc.page, tc.opts, tc.limit)
		var s errStop
		if tc.ok != (err == nil) || err != nil && !errors.As(err, &s) {
			t.Errorf("%s: checkPage = %v", tc.what, err)
		}
	}
}
