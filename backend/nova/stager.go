package nova

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
)

// A Stager makes the program's executable available to new servers.
type Stager interface {
	// Stage returns a URL from which a server can GET the executable without
	// any other credential, valid for a short while (long enough for a
	// server to boot and fetch it), and the executable's SHA-256 in
	// lower-case hex. It is called before every server create, so it should
	// be cheap once the executable has been staged. An error is tried
	// again only if it wraps backend.ErrTransient or is a network error.
	Stage(ctx context.Context) (binURL, sha256hex string, err error)
}

// A PublishedStager also hands out programs that were published before,
// by their SHA-256 (backend.ProgramOption): the rack shell's install puts
// them where Stage would. SwiftStager is one.
type PublishedStager interface {
	// StagePublished returns a URL from which a server can GET the
	// program whose SHA-256 is sha256hex (lower-case hex), as Stage does,
	// without uploading anything: an error wrapping backend.ErrNotFound
	// if no such program was published.
	StagePublished(ctx context.Context, sha256hex string) (binURL string, err error)
}

// TempURLer signs Swift temporary URLs; *swift.Store is one.
type TempURLer interface {
	// TempURL returns a URL that allows method on container/name, without
	// a token, until ttl has passed.
	TempURL(ctx context.Context, method, container, name string, ttl time.Duration) (string, error)
}

// DefaultStageTTL is how long the URLs of a SwiftStager stay valid by
// default: a server boots and fetches the program within it.
const DefaultStageTTL = 30 * time.Minute

// SwiftStager stages an executable in a Swift container, content-addressed:
// it is uploaded once, as BinaryObject(<sha256 hex>), and reused by every
// later run of the same build (an object already there under its digest is
// not sent again). Servers fetch it through a GET TempURL. It also hands out
// programs published there before (PublishedStager).
//
// The object does not expire: delete old builds under bin/ when they are no
// longer needed (a new build has a new name; a running stager whose build
// was removed uploads it again, see Recheck).
type SwiftStager struct {
	// Store holds the container; *swift.Store is both Store and TempURLer.
	Store backend.Store
	// TempURLs signs the URL handed to servers.
	TempURLs TempURLer
	// Container is where bin/<sha256> goes; it is created if missing.
	Container string
	// Path is the executable; default os.Executable(), the running program.
	Path string
	// TTL is how long each URL stays valid; default DefaultStageTTL.
	TTL time.Duration
	// Recheck is how long Stage trusts that the staged object is still
	// there before it checks again (a HEAD), and uploads it again if it
	// was removed meanwhile (an uninstall of the same build, a clean-up of
	// old builds); default DefaultStageRecheck.
	Recheck time.Duration

	mu      sync.Mutex
	sum     string // set once staged
	object  string
	checked time.Time // when the object was last known to be there
}

// DefaultStageRecheck is how long a SwiftStager trusts, by default, that
// the program it staged is still there: at most one HEAD a minute.
const DefaultStageRecheck = time.Minute

// Stage uploads the executable if this is the first call (and the store
// does not have it already) and returns a new TempURL of it.
func (s *SwiftStager) Stage(ctx context.Context) (string, string, error) {
	if s.Store == nil || s.TempURLs == nil || s.Container == "" {
		return "", "", fmt.Errorf("nova: SwiftStager needs a Store, a TempURLer and a Container: %w", backend.ErrInvalid)
	}
	recheck := s.Recheck
	if recheck <= 0 {
		recheck = DefaultStageRecheck
	}
	s.mu.Lock()
	sum, object, checked := s.sum, s.object, s.checked
	s.mu.Unlock()
	if sum != "" && time.Since(checked) >= recheck {
		_, err := s.Store.Head(ctx, s.Container, object)
		switch {
		case err == nil:
			s.mu.Lock()
			s.checked = time.Now()
			s.mu.Unlock()
		case errors.Is(err, backend.ErrNotFound):
			s.mu.Lock()
			if s.sum == sum && !s.checked.After(checked) {
				s.sum, s.object = "", "" // removed meanwhile: staged again
			}
			s.mu.Unlock()
			sum = ""
		default:
			return "", "", fmt.Errorf("nova: checking the staged program %s/%s: %w", s.Container, object, err)
		}
	}
	if sum == "" {
		var err error
		if sum, object, err = s.upload(ctx); err != nil {
			return "", "", err
		}
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultStageTTL
	}
	u, err := s.TempURLs.TempURL(ctx, "GET", s.Container, object, ttl)
	if err != nil {
		return "", "", fmt.Errorf("nova: signing a URL of %s/%s: %w", s.Container, object, err)
	}
	return u, sum, nil
}

// StagePublished checks that BinaryObject(sha256hex) is in the container
// (a HEAD: it is the object a publisher put there under that digest, and
// the server checks the digest of what it fetches) and returns a new
// TempURL of it.
func (s *SwiftStager) StagePublished(ctx context.Context, sha256hex string) (string, error) {
	if s.Store == nil || s.TempURLs == nil || s.Container == "" {
		return "", fmt.Errorf("nova: SwiftStager needs a Store, a TempURLer and a Container: %w", backend.ErrInvalid)
	}
	if !isSHA256(sha256hex) {
		return "", fmt.Errorf("nova: published program %.70q: not a SHA-256 in lower-case hex: %w", sha256hex, backend.ErrInvalid)
	}
	object := BinaryObject(sha256hex)
	if _, err := s.Store.Head(ctx, s.Container, object); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return "", fmt.Errorf("nova: program %s is not published (no %s/%s): %w", sha256hex, s.Container, object, err)
		}
		return "", fmt.Errorf("nova: checking the published program %s/%s: %w", s.Container, object, err)
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultStageTTL
	}
	u, err := s.TempURLs.TempURL(ctx, "GET", s.Container, object, ttl)
	if err != nil {
		return "", fmt.Errorf("nova: signing a URL of %s/%s: %w", s.Container, object, err)
	}
	return u, nil
}

// isSHA256 reports whether s is a SHA-256 in lower-case hex.
func isSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// BinaryObject is the object under which a program whose SHA-256 is
// sha256hex (lower-case hex) is staged: bin/<sha256hex>. It is one place
// for the layout: the rack shell's install publishes apps under the same
// name, so that an app published there and a program a forker staged are
// one object, uploaded once.
func BinaryObject(sha256hex string) string { return "bin/" + sha256hex }

// upload hashes the executable and puts it into the container unless it is
// there already. Concurrent callers wait for one upload.
func (s *SwiftStager) upload(ctx context.Context) (sum, object string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sum != "" {
		return s.sum, s.object, nil
	}
	path := s.Path
	if path == "" {
		if path, err = os.Executable(); err != nil {
			return "", "", fmt.Errorf("nova: finding the running program: %v: %w", err, backend.ErrInvalid)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("nova: staging %s: %v: %w", path, err, backend.ErrInvalid)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", fmt.Errorf("nova: staging %s: %w", path, err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	object = BinaryObject(sum)
	_, err = s.Store.Head(ctx, s.Container, object)
	switch {
	case err == nil: // content-addressed: it is the same program
	case errors.Is(err, backend.ErrNotFound):
		if err = s.put(ctx, f, object); err != nil {
			return "", "", fmt.Errorf("nova: staging %s as %s/%s: %w", path, s.Container, object, err)
		}
	default:
		return "", "", fmt.Errorf("nova: staging %s: checking %s/%s: %w", path, s.Container, object, err)
	}
	s.sum, s.object, s.checked = sum, object, time.Now()
	return sum, object, nil
}

// put uploads f (from its start) as object, creating the container if it
// is missing. An object that appeared meanwhile is the same program.
func (s *SwiftStager) put(ctx context.Context, f *os.File, object string) error {
	for try := 0; ; try++ {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := s.Store.Put(ctx, s.Container, object, f, &backend.PutOptions{
			CreateOnly: true, ContentType: "application/octet-stream",
		})
		switch {
		case err == nil, errors.Is(err, backend.ErrExist):
			return nil
		case errors.Is(err, backend.ErrNotFound) && try == 0:
			if err := s.Store.CreateContainer(ctx, s.Container); err != nil {
				return err
			}
		default:
			return err
		}
	}
}
