package swift

import (
	"strings"
	"testing"
	"time"
)

func TestContentTypeEncoding(t *testing.T) {
	for _, tc := range []struct {
		ct    string
		plain bool // stored unchanged
	}{
		{"application/octet-stream", true},
		{"text/plain;charset=utf-8", true},
		{`text/plain;x="a b"`, true},
		{"text/plain; charset=utf-8", false},
		{"application/x-rack-proc; pp=1&n=worker&a=-n%3D1&t=1700000000", false},
		{"a/b;k=x=y", false},
		{"a/b;swift_bytes=5", false},
		{"a/b;rack-ct=abc", false},
		{"a/b;flag", false},
		{"text/plain; x=" + strings.Repeat("y", 1000), false},
		{"weird ;;; ==", false},
	} {
		stored := storedContentType(tc.ct)
		if (stored == tc.ct) != tc.plain {
			t.Errorf("%q stored as %q (plain %v)", tc.ct, stored, tc.plain)
		}
		if listed := swiftListed(stored); listed != stored {
			t.Errorf("%q: stored %q is listed as %q", tc.ct, stored, listed)
		}
		if back := loadedContentType(stored); back != tc.ct {
			t.Errorf("%q: stored %q loads as %q", tc.ct, stored, back)
		}
	}
	// Swift's listing rules, as observed on Swift 2.30.
	for in, want := range map[string]string{
		"text/plain; x=yy":                        "text/plain;x=yy",
		"application/x-test; pid=42&name=a%20b&x": "application/x-test;pid=42&name",
		"a/b;flag;k=v":                            "a/b;flag=;k=v",
		"a/b; swift_bytes=9; c=d":                 "a/b;c=d",
	} {
		if got := swiftListed(in); got != want {
			t.Errorf("swiftListed(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1764477616.22150":      time.Unix(1764477616, 221500000).UTC(),
		"1764477616":            time.Unix(1764477616, 0).UTC(),
		"1764477616.123456789":  time.Unix(1764477616, 123456000).UTC(),
		"1764477616.22150_0001": {},
		"":                      {},
		"-5.1":                  {},
	} {
		got, ok := parseTimestamp(in)
		if ok != !want.IsZero() || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
}
