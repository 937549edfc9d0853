package swift

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// Put stores the object read from r (see the package documentation).
func (s *Store) Put(ctx context.Context, c, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	if err := s.checkObject(c, name); err != nil {
		return backend.ObjectInfo{}, err
	}
	var o backend.PutOptions
	if opts != nil {
		o = *opts
	}
	if o.DeleteAfter < 0 {
		return backend.ObjectInfo{}, fmt.Errorf("swift: put %s/%s: negative DeleteAfter: %w", c, name, backend.ErrInvalid)
	}
	var token string
	if o.CreateOnly {
		// The caller's token (the kernel's retrying layer sets one), else
		// one of our own: verifyWriter reads it back.
		token = o.Metadata[backend.WriterTokenKey]
		if token == "" {
			token = newToken()
			md := make(map[string]string, len(o.Metadata)+1)
			for k, v := range o.Metadata {
				md[k] = v
			}
			md[backend.WriterTokenKey] = token
			o.Metadata = md
		}
	}
	h, err := s.checkMeta(c, name, o.Metadata)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("swift: put %s/%s: %w", c, name, context.Cause(ctx))
	}
	ct := o.ContentType
	if ct == "" {
		ct = backend.DefaultContentType
	}
	if p := backend.ContentTypeProblem(ct); p != "" {
		return backend.ObjectInfo{}, fmt.Errorf("swift: put %s/%s: content type: %s: %w", c, name, p, backend.ErrInvalid)
	}
	h["Content-Type"] = storedContentType(ct) // see contenttype.go
	if o.DeleteAfter > 0 {
		h["X-Delete-After"] = strconv.FormatInt(int64((o.DeleteAfter+time.Second-1)/time.Second), 10)
	}
	if o.CreateOnly {
		h["If-None-Match"] = "*"
	}

	// Learn the size: from the reader, or by reading up to LookAhead.
	size := knownSize(r)
	body := r
	if size < 0 {
		var buf bytes.Buffer
		n, err := io.CopyN(&buf, r, int64(s.cfg.LookAhead)+1)
		if err != nil && err != io.EOF {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return backend.ObjectInfo{}, fmt.Errorf("swift: put %s/%s: reading the body: %w", c, name, err)
		}
		if n <= int64(s.cfg.LookAhead) {
			size, body = n, bytes.NewReader(buf.Bytes())
		} else {
			body = io.MultiReader(&buf, r)
		}
	}

	// A large object without an expiry (a file, not a record) that
	// replaces one: learn the old one's segments, if it is large too, to
	// delete them once it is replaced, as the swift CLI does. (Small
	// Puts skip the look, a request each; segments left by a small
	// object replacing a large one are for SweepSegments.)
	var old []string
	if !o.CreateOnly && o.DeleteAfter == 0 && (size < 0 || size > s.cfg.SegmentSize) {
		old = s.sloSegments(ctx, c, name)
	}
	var info backend.ObjectInfo
	if size >= 0 && size <= s.cfg.SegmentSize {
		info, err = s.putPlain(ctx, c, name, body, size, h)
	} else {
		info, err = s.putLarge(ctx, c, name, body, size, h, o)
	}
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if o.CreateOnly && !o.NoRival {
		return s.verifyWriter(ctx, c, name, token, info)
	}
	if len(old) > 0 {
		s.deletePaths(old)
	}
	info.ContentType = ct
	return info, nil
}

// putPlain PUTs one object of known size.
func (s *Store) putPlain(ctx context.Context, c, name string, body io.Reader, size int64, h sw.Headers) (backend.ObjectInfo, error) {
	h = cloneHeaders(h)
	h["Content-Length"] = strconv.FormatInt(size, 10)
	if size == 0 {
		body = nil
	}
	_, rh, err := s.call(ctx, sw.RequestOpts{
		Container: c, ObjectName: name, Operation: "PUT", Headers: h, Body: body, NoResponse: true,
	})
	if err != nil {
		return backend.ObjectInfo{}, s.mapErr(ctx, err, "put", c, name)
	}
	return putInfo(name, size, rh), nil
}

// putInfo builds a Put's ObjectInfo from its response headers.
func putInfo(name string, size int64, rh sw.Headers) backend.ObjectInfo {
	info := backend.ObjectInfo{Name: name, Size: size, ETag: strings.Trim(rh["Etag"], `"`)}
	if t, err := http.ParseTime(rh["Last-Modified"]); err == nil {
		info.LastModified = t
	} else if t, err := http.ParseTime(rh["Date"]); err == nil {
		info.LastModified = t
	} else {
		info.LastModified = time.Now().UTC().Truncate(time.Second)
	}
	return info
}

// verifyWriter checks, after a create-only PUT returned 201, that the
// stored object is this writer's: Swift checks If-None-Match on arrival,
// so a concurrent create-only PUT may also have got a 201.
//
// A 201 followed by a 404 counts as created: the PUT found the name free
// and was stored, and the object was deleted since (a pipe's reader
// consumes its segments as soon as they land). Putting it again would
// bring back an object its reader consumed, which nothing would delete.
// (Should a concurrent create-only PUT have won meanwhile and its object
// been deleted as fast, the caller is told it created it: both objects
// are gone alike.)
func (s *Store) verifyWriter(ctx context.Context, c, name, token string, put backend.ObjectInfo) (backend.ObjectInfo, error) {
	info, err := s.Head(ctx, c, name)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		s.log.Debug("swift: created, then deleted before verified", "container", c, "object", name)
		return put, nil
	case err != nil:
		return backend.ObjectInfo{}, fmt.Errorf("swift: put %s/%s: created, but not verified (%v): %w", c, name, err, backend.ErrTransient)
	case info.Metadata[backend.WriterTokenKey] != token:
		return backend.ObjectInfo{}, fmt.Errorf("swift: put %s/%s: a concurrent create-only Put won: %w", c, name, backend.ErrExist)
	}
	return info, nil
}

// knownSize returns the bytes left in r if its type tells, else -1.
func knownSize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case io.Seeker:
		cur, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		end, err := v.Seek(0, io.SeekEnd)
		if err != nil {
			return -1
		}
		if _, err := v.Seek(cur, io.SeekStart); err != nil {
			return -1
		}
		return end - cur
	}
	return -1
}

func cloneHeaders(h sw.Headers) sw.Headers {
	out := make(sw.Headers, len(h)+2)
	for k, v := range h {
		out[k] = v
	}
	return out
}

// segmentContainer names the container that holds c's SLO segments.
func segmentContainer(c string) string {
	if len(c)+len("_segments") <= 256 {
		return c + "_segments"
	}
	// Too long: keep a readable head and a unique tail.
	return strings.ToValidUTF8(c[:256-len("_segments")-17], "") + "-" + shortHash(c) + "_segments"
}

// slo is one manifest entry.
type sloSegment struct {
	Path string `json:"path"`
	Etag string `json:"etag"`
	Size int64  `json:"size_bytes"`
}

// putLarge writes body as a Static Large Object of SegmentSize segments.
// size is the body's length, or -1 if unknown: then a body that turns
// out to fit in one segment is copied to its name as a plain object.
func (s *Store) putLarge(ctx context.Context, c, name string, body io.Reader, size int64, h sw.Headers, o backend.PutOptions) (info backend.ObjectInfo, err error) {
	// Fail before uploading anything if the container is missing.
	if _, _, err := s.call(ctx, sw.RequestOpts{Container: c, Operation: "HEAD", NoResponse: true}); err != nil {
		return info, s.mapErr(ctx, err, "put", c, name)
	}
	segc := segmentContainer(c)
	if err := s.ensureContainer(ctx, segc); err != nil {
		return info, err
	}
	head := name
	if len(head) > 200 {
		head = strings.ToValidUTF8(head[:200], "")
	}
	prefix := fmt.Sprintf("%s/slo/%d/%s/", head, time.Now().UnixNano(), newToken())
	segH := sw.Headers{"Content-Type": "application/octet-stream"}
	if o.DeleteAfter > 0 {
		// Segments outlive their manifest by an hour, then go too.
		segH["X-Delete-After"] = strconv.FormatInt(int64((o.DeleteAfter+time.Hour)/time.Second), 10)
	}
	var segs []sloSegment
	defer func() {
		if err != nil {
			s.deleteSegments(segc, segs)
		}
	}()
	br := bufio.NewReaderSize(body, 64<<10)
	var total int64
	for i := 0; ; i++ {
		segName := fmt.Sprintf("%s%08d", prefix, i)
		n := s.cfg.SegmentSize
		hh := cloneHeaders(segH)
		if size >= 0 {
			n = min(n, size-total)
			hh["Content-Length"] = strconv.FormatInt(n, 10)
		}
		cr := &countingReader{r: io.LimitReader(br, n)}
		_, rh, err := s.call(ctx, sw.RequestOpts{
			Container: segc, ObjectName: segName, Operation: "PUT", Headers: hh, Body: cr, NoResponse: true,
		})
		if err != nil {
			return info, s.mapErr(ctx, err, "put", segc, segName)
		}
		segs = append(segs, sloSegment{Path: "/" + segc + "/" + segName, Etag: strings.Trim(rh["Etag"], `"`), Size: cr.n})
		total += cr.n
		if size >= 0 && total >= size {
			break
		}
		if cr.n < s.cfg.SegmentSize {
			break
		}
		if _, perr := br.Peek(1); perr == io.EOF {
			break
		} else if perr != nil {
			if ctx.Err() != nil {
				perr = context.Cause(ctx)
			}
			return info, fmt.Errorf("swift: put %s/%s: reading the body: %w", c, name, perr)
		}
	}
	if size >= 0 && total != size {
		return info, fmt.Errorf("swift: put %s/%s: body ended after %d of %d bytes: %w", c, name, total, size, io.ErrUnexpectedEOF)
	}
	if len(segs) == 1 && !o.CreateOnly {
		// Small after all: a server-side copy makes it a plain object.
		// (Not for create-only Puts: the copy middleware applies
		// If-None-Match to the source, so those stay one-segment SLOs.)
		hh := cloneHeaders(h)
		hh["X-Copy-From"] = pathEscape(segc) + "/" + pathEscape(segs[0].Path[len(segc)+2:])
		hh["Content-Length"] = "0"
		_, rh, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "PUT", Headers: hh, NoResponse: true})
		if err != nil {
			return info, s.mapErr(ctx, err, "put", c, name)
		}
		s.deleteSegments(segc, segs)
		info = putInfo(name, total, rh)
		info.ETag = segs[0].Etag
		return info, nil
	}
	manifest, err := jsonMarshal(segs)
	if err != nil {
		return info, err
	}
	hh := cloneHeaders(h)
	hh["Content-Length"] = strconv.Itoa(len(manifest))
	_, rh, err := s.call(ctx, sw.RequestOpts{
		Container: c, ObjectName: name, Operation: "PUT", Headers: hh, Body: bytes.NewReader(manifest),
		Parameters: map[string][]string{"multipart-manifest": {"put"}}, NoResponse: true,
	})
	if err != nil {
		perr := s.mapErr(ctx, err, "put", c, name)
		if !manifestMayExist(ctx, err, perr) {
			return info, perr
		}
		// The manifest may have been stored (a reply lost, a 5xx after the
		// commit, the context ended with the request sent): read it back,
		// once, to learn whether this attempt's segments are in use.
		ours, rerr := s.storedManifestIs(c, name, segs[0].Path)
		switch {
		case rerr != nil:
			// Unknown: keep the segments. Better segments no manifest
			// names (a leak) than a manifest whose segments were deleted
			// (an object without its content).
			s.log.Debug("swift: keeping the segments of a manifest that may exist", "container", segc, "object", name, "segments", len(segs), "err", rerr)
			segs = nil
		case ours:
			// Stored: the Put succeeded. (Reported so when the context
			// still stands; else the caller, who gave up, gets its error,
			// and the object stays whole.)
			etag := sloETag(segs)
			segs = nil
			if ctx.Err() == nil {
				info = putInfo(name, total, sw.Headers{})
				info.ETag = etag
				return info, nil
			}
		}
		// Not stored, or another manifest stored since: the deferred
		// clean-up deletes this attempt's segments, which nothing names.
		return info, perr
	}
	return putInfo(name, total, rh), nil
}

// manifestMayExist reports whether a manifest PUT that failed with err
// (mapped to perr) may have been applied: a failure without a definite
// refusal (no response, a timeout, a 5xx, the context ending while the
// request was out).
func manifestMayExist(ctx context.Context, err, perr error) bool {
	for _, refused := range []int{401, 429, 498} {
		if isStatus(err, refused) {
			return false
		}
	}
	if ctx.Err() != nil || errors.Is(perr, context.Canceled) || errors.Is(perr, context.DeadlineExceeded) {
		return true
	}
	return errors.Is(perr, backend.ErrTransient)
}

// storedManifestIs reads c/name's manifest (?multipart-manifest=get) and
// reports whether the first segment it names is first (a path
// "/container/object"): whether the stored object is the manifest of the
// attempt that uploaded that segment, since each attempt's segments have a
// prefix of their own. Not found, or not a large object, is false; a
// failure to tell is an error. It runs on a context of its own (the
// caller's may have ended) and sends one request.
func (s *Store) storedManifestIs(c, name, first string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, h, err := s.call(ctx, sw.RequestOpts{
		Container: c, ObjectName: name, Operation: "GET",
		Parameters: url.Values{"multipart-manifest": {"get"}},
	})
	if isStatus(err, 404) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if !strings.EqualFold(h["X-Static-Large-Object"], "true") {
		return false, nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return false, fmt.Errorf("swift: reading the manifest of %s/%s: not a JSON list (%v)", c, name, err)
	}
	var e struct {
		Name string `json:"name"` // what Swift returns
		Path string `json:"path"` // the form it was put in
	}
	if err := dec.Decode(&e); err != nil {
		return false, fmt.Errorf("swift: reading the manifest of %s/%s: %w", c, name, err)
	}
	got := e.Name
	if got == "" {
		got = e.Path
	}
	return strings.TrimPrefix(got, "/") == strings.TrimPrefix(first, "/"), nil
}

// sloETag is the ETag Swift gives a Static Large Object of segs: the MD5
// of its segments' ETags.
func sloETag(segs []sloSegment) string {
	h := md5.New()
	for _, sg := range segs {
		io.WriteString(h, sg.Etag)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ensureContainer makes sure, once per Store, that a segment container
// exists: a HEAD, and a create if that finds none. A credential that may
// write a container's objects but not create containers (a rack child's,
// whose forker creates the segment container) finds it with the HEAD; a
// refused create (HTTP 403) is taken for a container someone else made
// (a missing one then fails the segment's PUT with 404).
func (s *Store) ensureContainer(ctx context.Context, c string) error {
	if _, ok := s.segConts.Load(c); ok {
		return nil
	}
	if err := s.checkContainer(c); err != nil {
		return err
	}
	if _, _, err := s.call(ctx, sw.RequestOpts{Container: c, Operation: "HEAD", NoResponse: true}); err == nil {
		s.segConts.Store(c, true)
		return nil
	}
	_, _, err := s.call(ctx, sw.RequestOpts{
		Container: c, Operation: "PUT", NoResponse: true,
		Headers: sw.Headers{"Content-Length": "0"},
	})
	if isStatus(err, 403) {
		s.log.Debug("swift: may not create the segment container; assuming it exists", "container", c)
		err = nil
	}
	if err != nil {
		return s.mapErr(ctx, err, "create container", c, "")
	}
	s.segConts.Store(c, true)
	return nil
}

// deleteSegments removes uploaded segments after a failed Put, on a
// context of its own (the caller's may be cancelled).
func (s *Store) deleteSegments(segc string, segs []sloSegment) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sg := range segs {
		obj := sg.Path[len(segc)+2:]
		// Retried by the transport: no other layer retries this clean-up.
		if _, _, err := s.call(retryable(ctx), sw.RequestOpts{Container: segc, ObjectName: obj, Operation: "DELETE", NoResponse: true}); err != nil && !isStatus(err, 404) {
			s.log.Debug("swift: leaving a segment behind", "container", segc, "object", obj, "err", err)
		}
	}
}

// sloSegments returns the segments ("/container/object") of c/name if it
// is a Static Large Object, else (or if that cannot be learnt) none.
func (s *Store) sloSegments(ctx context.Context, c, name string) []string {
	_, h, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "HEAD", NoResponse: true})
	if err != nil || !strings.EqualFold(h["X-Static-Large-Object"], "true") {
		return nil
	}
	resp, _, err := s.call(ctx, sw.RequestOpts{
		Container: c, ObjectName: name, Operation: "GET",
		Parameters: url.Values{"multipart-manifest": {"get"}},
	})
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var entries []struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&entries); err != nil {
		s.log.Debug("swift: unreadable manifest: its segments stay", "container", c, "object", name, "err", err)
		return nil
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.Count(e.Name, "/") >= 2 && strings.HasPrefix(e.Name, "/") {
			out = append(out, e.Name)
		}
	}
	return out
}

// deletePaths deletes the segments paths names ("/container/object"),
// those of a large object just replaced, best effort.
func (s *Store) deletePaths(paths []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range paths {
		// As storedManifestIs reads them: the manifest names its
		// segments unquoted.
		segc, obj, _ := strings.Cut(p[1:], "/")
		// Retried by the transport: no other layer retries this clean-up.
		if _, _, err := s.call(retryable(ctx), sw.RequestOpts{Container: segc, ObjectName: obj, Operation: "DELETE", NoResponse: true}); err != nil && !isStatus(err, 404) {
			s.log.Debug("swift: leaving an old segment behind", "container", segc, "object", obj, "err", err)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// pathEscape escapes a name for X-Copy-From, keeping its slashes.
func pathEscape(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// shortHash is 16 hex digits of s's SHA-256.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// newToken returns a token unique across processes (the writer token's
// generator, backend.NewWriterToken).
func newToken() string { return backend.NewWriterToken() }
