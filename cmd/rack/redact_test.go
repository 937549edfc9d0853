package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

func TestRecordedArgs(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"--url", "swift+v1://u:s3cret@h:8080/ns", "ps"}, []string{"--url", "swift+v1://u:xxxxx@h:8080/ns", "ps"}},
		{[]string{"-url", "swift+v1://u:s3cret@h/ns"}, []string{"-url", "swift+v1://u:xxxxx@h/ns"}},
		{[]string{"--url=swift+v1://u:s3cret@h/ns", "-c", "ps -f"}, []string{"--url=swift+v1://u:xxxxx@h/ns", "-c", "ps -f"}},
		{[]string{"-url=swift+v1://u:s3cret@h/ns"}, []string{"-url=swift+v1://u:xxxxx@h/ns"}},
		{[]string{"--url", "swift+v1://u:s3%cret@h/ns"}, []string{"--url", "swift+v1://xxxxx@h/ns"}}, // does not parse
		{[]string{"cat", "http://u:s3cret@h/x", "a b"}, []string{"cat", "http://u:xxxxx@h/x", "a b"}},
		{[]string{"--url", "mem://", "-c", "echo a  b"}, []string{"--url", "mem://", "-c", "echo a  b"}},
	} {
		if got := recordedArgs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("recordedArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestKeyedURLNotShown starts the shell on Swift with its key in --url
// and checks that neither ps -f nor ps --json, run in it, shows the key
// (the shell's own record keeps its arguments), nor any error.
func TestKeyedURLNotShown(t *testing.T) {
	auth, user, key := os.Getenv("SWIFT_AUTH_URL"), os.Getenv("SWIFT_USER"), os.Getenv("SWIFT_KEY")
	if auth == "" || key == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			t.Fatal("Swift required (RACK_REQUIRE_SWIFT=1) but SWIFT_AUTH_URL or SWIFT_KEY is unset")
		}
		t.Skip("no Swift: SWIFT_AUTH_URL unset (scripts/swift-saio.sh starts one)")
	}
	au, err := url.Parse(auth)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "rack-shell-" + hex.EncodeToString(b[:])
	keyed := (&url.URL{Scheme: "swift+v1", User: url.UserPassword(user, key), Host: au.Host, Path: "/" + ns}).String()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out, errb syncBuffer
	// The pipe makes the shell a process (a line of lone builtins runs
	// without one: oneshot.go), so that ps shows its record.
	code := run(ctx, []string{"--url", keyed, "-c", "echo | cat; ps -f; ps --json"}, strings.NewReader(""), &out, &errb,
		func(string) string { return "" })
	if code != 0 {
		t.Fatalf("status %d, stderr %q", code, strings.ReplaceAll(errb.String(), key, "KEY"))
	}
	shown := out.String() + errb.String()
	if strings.Contains(shown, key) {
		t.Fatalf("the key is shown:\n%s", strings.ReplaceAll(shown, key, "<KEY>"))
	}
	if !strings.Contains(out.String(), "--url") || !strings.Contains(out.String(), "xxxxx") {
		t.Errorf("ps shows no redacted --url of the shell:\n%s", out.String())
	}
	// Clean up the namespace.
	k, err := rack.Open(ctx, keyed)
	if err == nil {
		_, _ = k.GC(ctx, &rack.GCOptions{MinAge: time.Nanosecond})
		k.Close()
	}
}
