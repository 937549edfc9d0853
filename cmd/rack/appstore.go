package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/internal/osfile"
	"github.com/rackfork/rack/openstack"
)

// Apps from the cloud (install, apps, uninstall).
//
// A published app lives in the store's binaries container, the one where
// the Nova backend stages the programs servers boot
// (openstack.BinariesContainer, "rack-bin"), outside every namespace, so
// that it outlives them and every shell of the store (the Swift account,
// the file:// directory, the mem:// store) finds it:
//
//	/rack-bin/bin/<sha256>   the executable, content-addressed (nova.BinaryObject)
//	/rack-bin/apps/<name>    its name record: JSON {name, sha256, size, installed, module}
//
// The store may be hostile (anyone who can write the container): a name
// record is read with a size bound and checked, and an executable is
// trusted only once its SHA-256 matches the record's.

const (
	// appsPrefix is where the name records live, in the binaries container.
	appsPrefix = "apps/"
	// maxAppName bounds an app's name, in bytes.
	maxAppName = 64
	// maxAppRecord bounds a name record, in bytes.
	maxAppRecord = 4 << 10
	// maxAppSize bounds a published executable.
	maxAppSize = 1 << 30
)

// appRecord is a name record: what /rack-bin/apps/<name> holds.
type appRecord struct {
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256"` // lower-case hex
	Size      int64     `json:"size"`
	Installed time.Time `json:"installed"`
	Module    string    `json:"module,omitempty"` // the Go module path of its main package
}

// market is the shell's access to the published apps of its store.
type market struct {
	k         *rack.Kernel
	container string
	cacheDir  string // the private cache of fetched apps; "" if none
	cacheErr  error  // why there is none
}

// newMarket returns the market of k's store; fetched apps go to
// $XDG_CACHE_HOME/rack/apps (or ~/.cache/rack/apps).
func newMarket(k *rack.Kernel, getenv func(string) string) *market {
	m := &market{k: k, container: openstack.BinariesContainer}
	base := getenv("XDG_CACHE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home := getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				m.cacheErr = fmt.Errorf("no cache directory for installed apps: set XDG_CACHE_HOME or HOME (%v)", err)
				return m
			}
			home = h
		}
		base = filepath.Join(home, ".cache")
	}
	m.cacheDir = filepath.Join(base, "rack", "apps")
	return m
}

// checkAppName refuses a name that cannot name a published app: empty,
// longer than maxAppName, or with anything but ASCII letters, digits, '.',
// '_', '+' and '-', or not starting with a letter, digit or '_' (so no
// ".", "..", hidden or option-like names, and no '/').
func checkAppName(name string) error {
	switch {
	case name == "":
		return errors.New("an app name cannot be empty")
	case len(name) > maxAppName:
		return fmt.Errorf("app name %.20q...: %d bytes, over %d", name, len(name), maxAppName)
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			i > 0 && (c == '.' || c == '-' || c == '+')
		if !ok {
			return fmt.Errorf("app name %q: want ASCII letters, digits, '_', and after the first character '.', '-' or '+' (no '/')", name)
		}
	}
	if _, ok := builtins[name]; ok {
		return fmt.Errorf("app name %q is a builtin's: the builtin would always run instead", name)
	}
	return nil
}

// checkSHA256 reports whether s is a SHA-256 in lower-case hex.
func checkSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (m *market) recordPath(name string) string { return "/" + m.container + "/" + appsPrefix + name }
func (m *market) binaryPath(sum string) string {
	return "/" + m.container + "/" + nova.BinaryObject(sum)
}

// lookup reads and checks the name record of app name. A missing one is
// an error wrapping fs.ErrNotExist.
func (m *market) lookup(ctx context.Context, name string) (*appRecord, error) {
	if err := checkAppName(name); err != nil {
		return nil, err
	}
	f, err := m.k.Open(ctx, m.recordPath(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxAppRecord {
		return nil, fmt.Errorf("app %s: its name record is %d bytes, over %d: not one install wrote", name, fi.Size(), maxAppRecord)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAppRecord+1))
	if err != nil {
		return nil, fmt.Errorf("app %s: reading its name record: %w", name, err)
	}
	if len(data) > maxAppRecord {
		return nil, fmt.Errorf("app %s: its name record is over %d bytes: not one install wrote", name, maxAppRecord)
	}
	var rec appRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("app %s: its name record does not parse: %v", name, err)
	}
	switch {
	case rec.Name != name:
		return nil, fmt.Errorf("app %s: its name record names %.70q", name, rec.Name)
	case !checkSHA256(rec.SHA256):
		return nil, fmt.Errorf("app %s: its name record's sha256 %.70q is not 64 lower-case hex digits", name, rec.SHA256)
	case rec.Size <= 0 || rec.Size > maxAppSize:
		return nil, fmt.Errorf("app %s: its name record's size %d is out of range (1 to %d)", name, rec.Size, maxAppSize)
	case len(rec.Module) > 512:
		return nil, fmt.Errorf("app %s: its name record's module path is %d bytes", name, len(rec.Module))
	}
	return &rec, nil
}

// list returns the published apps, sorted by name; a name whose record is
// broken comes with its error.
func (m *market) list(ctx context.Context) ([]*appRecord, map[string]error, error) {
	entries, err := m.k.ReadDir(ctx, "/"+m.container+"/"+strings.TrimSuffix(appsPrefix, "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var recs []*appRecord
	bad := map[string]error{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		rec, err := m.lookup(ctx, e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			bad[e.Name()] = err
			continue
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	return recs, bad, nil
}

// publish puts the rack app at path into the store, content-addressed,
// and names it name. It returns the new record and the one it replaced
// (nil if name was free).
func (m *market) publish(ctx context.Context, path, name string) (rec, old *appRecord, err error) {
	if err := checkAppName(name); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	case fi.Size() == 0 || fi.Size() > maxAppSize:
		return nil, nil, fmt.Errorf("%s: %d bytes: an app is 1 byte to %d", path, fi.Size(), maxAppSize)
	case !isRackApp(path):
		return nil, nil, fmt.Errorf("%s is not a rack app (a Go program built with %s)", path, rackModule)
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	rec = &appRecord{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: size,
		Installed: time.Now().UTC().Truncate(time.Second), Module: appModule(path)}
	if err := m.putBinary(ctx, f, rec); err != nil {
		return nil, nil, err
	}
	old, err = m.lookup(ctx, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		old = nil // a broken record is replaced
	}
	w, err := m.k.Create(ctx, m.recordPath(name))
	if err != nil {
		return nil, nil, err
	}
	if _, err := w.Write(append(mustJSON(rec), '\n')); err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	// An uninstall of another name of the same binary, at the same time,
	// may have missed this record in its listing and removed the binary:
	// put it back.
	if err := m.putBinary(ctx, f, rec); err != nil {
		return nil, nil, err
	}
	if old != nil && old.SHA256 != rec.SHA256 {
		if _, err := m.dropUnnamed(ctx, old.SHA256); err != nil {
			return rec, old, fmt.Errorf("installed, but removing the binary it replaced: %w", err)
		}
	}
	return rec, old, nil
}

// putBinary uploads f (from its start) as rec's content-addressed object,
// unless an object of rec's size is there already (the same program: a
// wrong one would fail every digest check that follows).
func (m *market) putBinary(ctx context.Context, f *os.File, rec *appRecord) error {
	p := m.binaryPath(rec.SHA256)
	if fi, err := m.k.Stat(ctx, p); err == nil && !fi.IsDir() && fi.Size() == rec.Size {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w, err := m.k.Create(ctx, p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, io.LimitReader(f, rec.Size)); err != nil {
		_ = w.Close()
		return fmt.Errorf("uploading %s: %w", p, err)
	}
	return w.Close()
}

// remove removes the name and, if no other name names its binary, the
// binary. It returns the removed record (nil if it was broken) and
// whether the binary went too.
func (m *market) remove(ctx context.Context, name string) (*appRecord, bool, error) {
	if err := checkAppName(name); err != nil {
		return nil, false, err
	}
	rec, err := m.lookup(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("%s: no such app (apps lists them)", name)
	}
	if err != nil {
		rec = nil // a broken record goes all the same
	}
	if err := m.k.Remove(ctx, m.recordPath(name)); err != nil {
		return nil, false, err
	}
	if rec == nil {
		return nil, false, nil
	}
	gone, err := m.dropUnnamed(ctx, rec.SHA256)
	return rec, gone, err
}

// dropUnnamed removes the binary sum unless a name record names it. The
// listing it reads is eventually consistent: a name made a moment ago may
// be missed, which is why publish puts its binary back after writing its
// name.
func (m *market) dropUnnamed(ctx context.Context, sum string) (bool, error) {
	recs, _, err := m.list(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range recs {
		if r.SHA256 == sum {
			return false, nil
		}
	}
	if err := m.k.Remove(ctx, m.binaryPath(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// fetch returns the path of rec's executable in the private cache,
// downloading it if it is not there. The cache is a directory of this
// user's alone (0700), its files 0700 and named by their SHA-256, opened
// without following symbolic links; a file is used only once its digest
// and size match rec's, and a download is bounded by rec's size.
func (m *market) fetch(ctx context.Context, rec *appRecord) (string, error) {
	if m.cacheDir == "" {
		return "", m.cacheErr
	}
	if err := os.MkdirAll(m.cacheDir, 0o700); err != nil {
		return "", fmt.Errorf("app cache: %w", err)
	}
	if err := osfile.RestrictDir(m.cacheDir, false); err != nil {
		return "", fmt.Errorf("app cache: %w", err)
	}
	root, err := osfile.OpenRoot(m.cacheDir)
	if err != nil {
		return "", fmt.Errorf("app cache: %w", err)
	}
	defer root.Close()
	final := filepath.Join(m.cacheDir, rec.SHA256)
	if f, err := root.OpenOwned(rec.SHA256, os.O_RDONLY, 0); err == nil {
		ok := sameContent(f, rec)
		f.Close()
		if ok {
			return final, nil
		}
		if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("app cache: removing a bad copy: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		// A link, a FIFO, another user's file: not used, not touched.
		return "", fmt.Errorf("app cache: %w", err)
	}
	src, err := m.k.Open(ctx, m.binaryPath(rec.SHA256))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("app %s: its binary %s is missing from the store: install it again", rec.Name, m.binaryPath(rec.SHA256))
	}
	if err != nil {
		return "", err
	}
	defer src.Close()
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmpName := rec.SHA256 + ".tmp-" + hex.EncodeToString(rnd[:])
	tmp, err := root.OpenFile(tmpName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return "", fmt.Errorf("app cache: %w", err)
	}
	tmpPath := filepath.Join(m.cacheDir, tmpName)
	defer os.Remove(tmpPath) // a no-op once renamed; after a link (LinkNoReplace elsewhere than Linux), the extra name
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, rec.Size+1))
	if err == nil {
		err = tmp.Chmod(0o700) // whatever the umask
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("app %s: downloading: %w", rec.Name, err)
	}
	if n != rec.Size || hex.EncodeToString(h.Sum(nil)) != rec.SHA256 {
		return "", fmt.Errorf("app %s: the store's binary is not the one its name record names (%d bytes, want %d with sha256 %s): refusing it", rec.Name, n, rec.Size, rec.SHA256)
	}
	if _, err := osfile.LinkNoReplace(tmpPath, final); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("app cache: %w", err)
	}
	// Another shell may have put it there first: it is checked again.
	f, err := root.OpenOwned(rec.SHA256, os.O_RDONLY, 0)
	if err != nil {
		return "", fmt.Errorf("app cache: %w", err)
	}
	ok := sameContent(f, rec)
	f.Close()
	if !ok {
		return "", fmt.Errorf("app cache: %s changed under this shell", final)
	}
	return final, nil
}

// sameContent reports whether f holds rec's executable (and is one).
func sameContent(f *os.File, rec *appRecord) bool {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != rec.Size || fi.Mode().Perm()&0o100 == 0 || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, rec.Size+1)); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == rec.SHA256
}

// mustJSON encodes a name record.
func mustJSON(rec *appRecord) []byte {
	b, err := json.Marshal(rec)
	if err != nil {
		panic(fmt.Sprintf("rack: encoding an app record: %v", err)) // plain fields: cannot fail
	}
	return b
}
