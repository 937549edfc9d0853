package nova_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/novaemu"
)

// countingStore counts successful Puts.
type countingStore struct {
	backend.Store
	puts atomic.Int64
}

func (s *countingStore) Put(ctx context.Context, c, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	info, err := s.Store.Put(ctx, c, name, r, opts)
	if err == nil {
		s.puts.Add(1)
	}
	return info, err
}

// fakeTempURLs signs nothing: it records the request in the URL.
type fakeTempURLs struct{}

func (fakeTempURLs) TempURL(ctx context.Context, method, container, name string, ttl time.Duration) (string, error) {
	return fmt.Sprintf("https://swift.example/v1/AUTH_p/%s/%s?method=%s&ttl=%d", container, name, method, int(ttl.Seconds())), nil
}

// TestSwiftStager: the executable is uploaded once, under its digest, and
// a second stager (a later run) finds it there.
func TestSwiftStager(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "prog")
	content := []byte("#!/bin/sh\necho hello\n")
	if err := os.WriteFile(exe, content, 0o755); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(content)
	want := hex.EncodeToString(h[:])
	store := &countingStore{Store: mem.New()}
	ctx := context.Background()
	for run := range 2 {
		s := &nova.SwiftStager{Store: store, TempURLs: fakeTempURLs{}, Container: "rack", Path: exe, TTL: 10 * time.Minute}
		for range 3 {
			url, sum, err := s.Stage(ctx)
			if err != nil {
				t.Fatalf("run %d: Stage: %v", run, err)
			}
			if sum != want || url != "https://swift.example/v1/AUTH_p/rack/bin/"+want+"?method=GET&ttl=600" {
				t.Errorf("run %d: Stage = %q, %q", run, url, sum)
			}
		}
	}
	if n := store.puts.Load(); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
	rc, _, err := store.Get(ctx, "rack", "bin/"+want, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != string(content) {
		t.Errorf("staged %q, want %q", got, content)
	}
	bad := &nova.SwiftStager{Store: store, TempURLs: fakeTempURLs{}, Container: "rack", Path: filepath.Join(t.TempDir(), "none")}
	if _, _, err := bad.Stage(ctx); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("Stage of a missing file: %v, want ErrInvalid", err)
	}
}

// TestSwiftStagerRestages: a staged program removed from the store (an
// uninstall of the same build) is uploaded again once Recheck has passed,
// rather than handed to servers as a URL that leads nowhere.
func TestSwiftStagerRestages(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: mem.New()}
	ctx := context.Background()
	s := &nova.SwiftStager{Store: store, TempURLs: fakeTempURLs{}, Container: "rack", Path: exe, Recheck: time.Nanosecond}
	_, sum, err := s.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "rack", nova.BinaryObject(sum)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Head(ctx, "rack", nova.BinaryObject(sum)); err != nil {
		t.Errorf("the removed program was not staged again: %v", err)
	}
	if n := store.puts.Load(); n != 2 {
		t.Errorf("%d uploads, want 2", n)
	}
}

// TestSweep deletes expired servers and those of dead namespaces, and
// leaves the others.
func TestSweep(t *testing.T) {
	e := startEmu(t, novaemu.Config{})
	c := client(e)
	ctx := context.Background()
	now := time.Now()
	mk := func(name string, md map[string]string) {
		t.Helper()
		if _, err := servers.Create(ctx, c, servers.CreateOpts{Name: name, ImageRef: "img", FlavorRef: "1", Metadata: md}, nil).Extract(); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	mk("expired", map[string]string{"rack-namespace": "live", "rack-pid": "100", "rack-delete-at": at(-time.Minute)})
	mk("live", map[string]string{"rack-namespace": "live", "rack-pid": "101", "rack-delete-at": at(time.Hour)})
	mk("dead", map[string]string{"rack-namespace": "dead", "rack-pid": "102", "rack-delete-at": at(time.Hour)})
	mk("dead2", map[string]string{"rack-namespace": "dead", "rack-pid": "103", "rack-delete-at": at(time.Hour)})
	mk("unsure", map[string]string{"rack-namespace": "unsure", "rack-pid": "104", "rack-delete-at": at(time.Hour)})
	mk("not-rack", map[string]string{"owner": "someone"})
	asked := map[string]int{}
	swept, err := nova.Sweep(ctx, c, now, func(ctx context.Context, ns string) (bool, error) {
		asked[ns]++
		if ns == "unsure" {
			return false, errors.New("cannot tell")
		}
		return ns == "dead", nil
	})
	if err == nil {
		t.Error("Sweep hid the failure of dead")
	}
	var got []string
	for _, s := range swept {
		got = append(got, s.Name+":"+s.Reason)
	}
	slices.Sort(got)
	if want := []string{"dead2:dead namespace", "dead:dead namespace", "expired:expired"}; !slices.Equal(got, want) {
		t.Errorf("swept %q, want %q", got, want)
	}
	var left []string
	for _, s := range e.Servers() {
		left = append(left, s.Name)
	}
	slices.Sort(left)
	if want := []string{"live", "not-rack", "unsure"}; !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	if asked["dead"] != 1 || asked["live"] != 1 {
		t.Errorf("dead asked %v, want once per namespace", asked)
	}
}
