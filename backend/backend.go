// Package backend defines the two small driver interfaces that rack runs on:
// a Swift-shaped object Store, which is the only coordination medium, and a
// Compute that starts and stops the instances running rack processes.
//
// Users open drivers through rack.Open or compose them with rack.New; they do
// not call these interfaces themselves. Every driver must pass the
// conformance suites in backend/storetest and backend/computetest.
//
// # Retries: one layer, one contract
//
// A Store driver's operations are single-shot: a driver does not retry a
// failed request itself. It reports a failure that may succeed when tried
// again by wrapping ErrTransient; for a Put (or a Delete) that means "it may
// have happened". The only request a driver repeats is one refused because
// its credentials expired (an HTTP 401), once, after authenticating again:
// that is not a retry of a failure of the service. A driver may retry, in
// its transport, requests that no other layer retries (authenticating when
// it is opened, say), never a Store operation's.
//
// The kernel wraps its Store in a retrying layer (rack's internal/retry),
// which owns the attempts, the backoff, and the writer token of create-only
// Puts: it stores a token unique to the Put under WriterTokenKey, so that
// a retry that finds the object (ErrExist after an ambiguous failure) reads
// the token back and tells its own earlier write (success) from another
// writer's (a real conflict). A driver whose create-only Put is not atomic
// against racing creates (LooseCreate) uses the same key: it keeps the
// caller's token when there is one and reads it back after a success.
//
// A Compute's Start is retried by the kernel on ErrTransient, unless the
// compute implements StartRetrier: then the compute owns the attempts.
package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"
)

// WriterTokenKey is the metadata key that carries a create-only Put's
// writer token (see the package documentation and NewWriterToken).
const WriterTokenKey = "rack-writer"

// NewWriterToken returns a writer token for a create-only Put, unique
// across processes: a random prefix drawn once per process, then a counter
// (cheaper than drawing each time).
func NewWriterToken() string {
	return tokenPrefix + strconv.FormatUint(tokenSeq.Add(1), 36)
}

var (
	tokenSeq    atomic.Uint64
	tokenPrefix = func() string {
		var b [9]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) + "-"
	}()
)

// Errors every driver reports, wrapped with detail (use errors.Is).
var (
	// ErrNotFound: the container or object does not exist (Swift 404).
	ErrNotFound = errors.New("not found")
	// ErrExist: a create-only Put found an object already there (Swift 412).
	ErrExist = errors.New("already exists")
	// ErrTransient: the store failed in a way a retry may fix (5xx, reset,
	// timeout). The request may or may not have taken effect. Drivers
	// report it and do not retry (see the package documentation).
	ErrTransient = errors.New("transient store failure")
	// ErrInvalid: the request itself is malformed (a bad name, a limit exceeded).
	ErrInvalid = errors.New("invalid request")
)

// ObjectInfo describes an object, or a common prefix in a delimited listing.
type ObjectInfo struct {
	Name string
	Size int64
	// ETag changes whenever the content does. Swift's is the hex MD5 of
	// a plain object's content; other drivers may use an opaque version
	// tag. rack only compares ETags.
	ETag         string
	LastModified time.Time
	// ContentType is the media type the object was stored with
	// (DefaultContentType if none was given). Unlike Metadata, List fills
	// it: Swift keeps it in its container listings, so a short summary put
	// there is readable for a whole page of objects without a GET each.
	ContentType string
	// Metadata holds user metadata. Head and Get fill it; List does not
	// (Swift listings carry no metadata).
	Metadata map[string]string
	// Subdir is true for a common prefix returned by a delimited List; only
	// Name is set then, and it ends with the delimiter.
	Subdir bool
}

// PutOptions modify a Put. The zero value overwrites unconditionally and
// never expires.
type PutOptions struct {
	// CreateOnly makes the Put fail with ErrExist if the object exists
	// (Swift's If-None-Match: *). Among concurrent create-only Puts of one
	// name exactly one succeeds.
	CreateOnly bool
	// NoRival says the writer need not learn of a rival create in flight
	// at the same moment: no other writer ever creates the name (a
	// process's record once its pid is claimed, a pipe end's segments),
	// or the writer takes a rival's create as its own (a pipe end's close
	// record, which a reaper may write for a writer that died). A store
	// whose creates are loose (LooseCreate) then does not read the Put
	// back, one request less; two such creates in flight at once may both
	// succeed, the later one staying. The Put still fails with ErrExist on
	// an object that is there.
	NoRival bool
	// DeleteAfter, if positive, makes the object expire (X-Delete-After):
	// after it, the object is gone from Get, Head and List.
	DeleteAfter time.Duration
	// ContentType is the object's media type (default DefaultContentType):
	// printable ASCII, at most MaxContentTypeLength bytes.
	ContentType string
	// Metadata is the object's user metadata. Keys are lower case ASCII
	// letters, digits and '-'; at most 90 keys, 256-byte values, 4 KiB in all.
	Metadata map[string]string
}

// GetOptions select a byte range. Length 0 means to the end of the object.
type GetOptions struct {
	Offset int64
	Length int64
}

// ListOptions select a page of a listing, in byte order of names.
type ListOptions struct {
	Prefix string
	// Delimiter, if set, folds names that contain it after the prefix into
	// one Subdir entry per common prefix.
	Delimiter string
	// Marker: list only names strictly greater than Marker.
	Marker string
	// Limit is the page size; 0 means MaxListLimit, and larger limits are
	// clamped to it. A page shorter than its size is the last one: a
	// driver whose service pages smaller (a Swift cluster's
	// container_listing_limit) fills a page with several requests, and
	// callers stop on a short page rather than ask for an empty one.
	Limit int
}

// Store is a Swift-shaped object store: containers of named objects with
// metadata.
//
// Each call is one attempt: a driver does not retry a failed request
// itself but reports ErrTransient, and the caller (the kernel's retrying
// layer) decides whether to try again (see the package documentation).
//
// Consistency contract (Swift's): a Get or Head of an object after its Put
// returned sees that Put or a later one; create-only Puts are atomic; List
// is only eventually consistent: a new object may be missing, and a deleted
// one present, for a while. Errors wrap ErrNotFound, ErrExist, ErrTransient
// or ErrInvalid where those apply. All methods are safe for concurrent use
// and honour ctx.
type Store interface {
	// CreateContainer creates a container; it succeeds if it exists already.
	CreateContainer(ctx context.Context, container string) error
	// DeleteContainer deletes an empty container: ErrNotFound if missing,
	// ErrExist if it still holds objects.
	DeleteContainer(ctx context.Context, container string) error
	// ListContainers lists containers as ObjectInfo (Name only is required).
	ListContainers(ctx context.Context, opts ListOptions) ([]ObjectInfo, error)

	// Put stores the object read from r, which it reads to EOF, and makes it
	// visible only once complete: a reader never sees part of a Put. It
	// fails with ErrNotFound if the container does not exist. Memory use is
	// bounded whatever the size of r.
	Put(ctx context.Context, container, name string, r io.Reader, opts *PutOptions) (ObjectInfo, error)
	// Get opens the object (or the range opts selects, nil for all). The
	// caller must Close the reader.
	Get(ctx context.Context, container, name string, opts *GetOptions) (io.ReadCloser, ObjectInfo, error)
	// Head returns the object's info and metadata.
	Head(ctx context.Context, container, name string) (ObjectInfo, error)
	// List returns one page of the container's objects (see ListOptions).
	List(ctx context.Context, container string, opts ListOptions) ([]ObjectInfo, error)
	// Delete removes the object: ErrNotFound if it is not there.
	Delete(ctx context.Context, container, name string) error
	// Close releases the driver's resources.
	Close() error
}

// LooseCreate is implemented by a Store whose create-only Put is atomic
// against objects that exist but not against another create of the same
// name in flight at the same moment: both may succeed, and the one that
// arrived last stays. Swift is one: it checks If-None-Match when a request
// arrives. A caller that claims a name there reads it back once a rival
// create would have ended.
type LooseCreate interface {
	LooseCreate() bool
}

// Notifier is an optional Store fast path: a store that can tell watchers
// about changes, so that waiters need not poll.
type Notifier interface {
	// Changed returns a channel that is closed at the next Put or Delete of
	// an object in container whose name equals key, or starts with key when
	// key ends in '/'. To not miss a change, call Changed first, then check
	// the store, then wait on the channel.
	Changed(container, key string) <-chan struct{}
}

// StartRequest asks a Compute to start one instance running one rack process.
type StartRequest struct {
	// Namespace and PID identify the process; Name is derived from them and
	// is the idempotency key: a second Start with the same Name must not
	// start a second instance.
	Namespace string
	PID       int64
	Name      string
	// Env is the child's identity (no credentials), for computes that start
	// a new copy of the program.
	Env map[string]string
	// Run is what an in-process compute runs; ctx is cancelled by Stop.
	// Computes that start a new program ignore it.
	Run func(ctx context.Context)
	// Options are compute-specific settings (image, flavor...).
	Options map[string]string
}

// InProcess is implemented by computes whose instances run
// StartRequest.Run inside the calling OS process, sharing its kernel.
// Other computes start a new copy of the program, which joins the
// namespace with a kernel of its own (identity from StartRequest.Env).
type InProcess interface {
	InProcess() bool
}

// LogReader is implemented by computes that keep an instance's own output
// (its OS stdout and stderr, or a VM's console): what a program printed
// outside rack's streams, a panic's stack included.
type LogReader interface {
	// Logs reads the log of instance name; with follow, it also waits for
	// output written later, until the instance has ended. It fails with
	// ErrNotFound if the instance has no log.
	Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error)
}

// FailureReporter is implemented by computes that can tell why an instance
// ended before its program could report anything (a boot that failed for
// good, a digest mismatch): the kernel then records the process lost with
// that reason instead of a generic one.
type FailureReporter interface {
	// Failure returns why instance name failed, if it did.
	Failure(name string) (reason string, ok bool)
}

// Sweeper is implemented by computes that can find and delete instances
// no kernel watches any more: those of namespaces that dead reports as
// dead, and those past the delete-at they were started with. It returns
// the names of the instances it deleted.
type Sweeper interface {
	Sweep(ctx context.Context, dead func(ctx context.Context, namespace string) (bool, error)) ([]string, error)
}

// StartRetrier is implemented by computes whose Start retries transient
// failures itself, because doing so well needs what only the driver knows:
// a look-up that tells whether a create that failed ambiguously made an
// instance, a wait for quota, a Retry-After. The kernel then calls Start
// once per process; an ErrTransient from it means the compute's own
// attempts ran out. Other computes' Starts are single-shot, and the kernel
// retries them.
type StartRetrier interface {
	RetriesStart() bool
}

// Instance describes a started instance.
type Instance struct {
	Name      string
	Namespace string
	PID       int64
	Created   time.Time
}

// Compute starts, stops and lists the instances that run rack processes.
// All methods are safe for concurrent use and honour ctx.
type Compute interface {
	// Start starts an instance for req and returns once it is starting.
	// It fails with ErrExist if an instance with req.Name exists, and with
	// ErrTransient for infrastructure failures a retry may fix.
	Start(ctx context.Context, req *StartRequest) (Instance, error)
	// Stop ends the instance named name at once (no grace): ErrNotFound if
	// there is none. It may return before the instance is fully gone.
	Stop(ctx context.Context, name string) error
	// List returns the live instances of a namespace ("" for all).
	List(ctx context.Context, namespace string) ([]Instance, error)
	// Close stops every instance and releases the driver's resources.
	Close() error
}
