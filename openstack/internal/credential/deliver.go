package credential

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rackfork/rack/backend"
)

// ErrTaken is wrapped by Fetch's errors when the one-time object is gone:
// fetched (and deleted) before, expired, or its TempURLs expired. A child
// that sees it must not start: someone else may hold its credential.
var ErrTaken = errors.New("credential already taken or expired")

// ErrURLRefused is wrapped by Fetch's errors when Swift refuses a
// one-time URL (HTTP 401): it expired, or the Temp-URL key that signed it
// was changed or removed since. The object may still be there; the child
// must not start either way.
var ErrURLRefused = errors.New("the credential's one-time URL was refused (expired, or its Temp-URL key changed)")

// BootstrapPrefix starts the names Deliver picks for one-time objects.
const BootstrapPrefix = "bootstrap/"

// maxBootstrapSize bounds what Fetch reads.
const maxBootstrapSize = 64 << 10

// Store is what Deliver needs of a backend.Store (swift.Store has it).
type Store interface {
	Put(ctx context.Context, container, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error)
	Delete(ctx context.Context, container, name string) error
}

// TempURLer signs temporary URLs (swift.Store.TempURL).
type TempURLer interface {
	TempURL(ctx context.Context, method, container, name string, ttl time.Duration) (string, error)
}

// bootstrap is the one-time object's JSON.
type bootstrap struct {
	AuthURL   string     `json:"auth_url"`
	ID        string     `json:"application_credential_id"`
	Secret    string     `json:"application_credential_secret"`
	Region    string     `json:"region,omitempty"`
	Interface string     `json:"interface,omitempty"`
	Name      string     `json:"application_credential_name,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Deliver writes cred as a one-time JSON object
//
//	{"auth_url", "application_credential_id", "application_credential_secret",
//	 "region", "interface", "application_credential_name", "expires_at"}
//
// to container/name of store (name "" picks BootstrapPrefix + 32 random
// hex digits; the object must not exist yet), expiring after ttl
// (X-Delete-After), and returns a GET and a DELETE TempURL for it, both
// valid for ttl, for the child's Fetch. authURL is Keystone's URL for the
// child ("" for cred.AuthURL); cred.Region and cred.Interface go along.
//
// The container must be private. Use one the child's credential may read
// anyway (its namespace container) or one no child can read: whoever can
// read the container can read pending bootstrap objects.
//
// Errors name the container and object, never the secret.
func Deliver(ctx context.Context, store Store, signer TempURLer, container, name string, cred *Credential,
	authURL string, ttl time.Duration) (getURL, deleteURL string, err error) {
	if name == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", "", fmt.Errorf("credential: deliver: random name: %w", err)
		}
		name = BootstrapPrefix + hex.EncodeToString(b[:])
	}
	what := fmt.Sprintf("credential: deliver to %s/%s", container, name)
	switch {
	case store == nil || signer == nil:
		return "", "", fmt.Errorf("%s: no store or no TempURL signer: %w", what, backend.ErrInvalid)
	case cred == nil || cred.ID == "" || cred.Secret == "":
		return "", "", fmt.Errorf("%s: no credential, or one without id or secret: %w", what, backend.ErrInvalid)
	case ttl < time.Second:
		return "", "", fmt.Errorf("%s: ttl %v is under a second: %w", what, ttl, backend.ErrInvalid)
	}
	if authURL == "" {
		authURL = cred.AuthURL
	}
	if u, err := url.Parse(authURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("%s: auth URL %q is not an http(s) URL: %w", what, authURL, backend.ErrInvalid)
	}
	b := bootstrap{AuthURL: authURL, ID: cred.ID, Secret: cred.Secret, Region: cred.Region,
		Interface: cred.Interface, Name: cred.Name}
	if !cred.ExpiresAt.IsZero() {
		t := cred.ExpiresAt.UTC()
		b.ExpiresAt = &t
	}
	body, err := json.Marshal(b)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", what, err)
	}
	if _, err := store.Put(ctx, container, name, bytes.NewReader(body), &backend.PutOptions{
		CreateOnly: true, DeleteAfter: ttl, ContentType: "application/json",
	}); err != nil {
		return "", "", fmt.Errorf("%s: %w", what, err)
	}
	defer func() {
		if err != nil { // do not leave the secret behind
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = store.Delete(dctx, container, name)
		}
	}()
	if getURL, err = signer.TempURL(ctx, http.MethodGet, container, name, ttl); err != nil {
		return "", "", fmt.Errorf("%s: GET temp URL: %w", what, err)
	}
	if deleteURL, err = signer.TempURL(ctx, http.MethodDelete, container, name, ttl); err != nil {
		return "", "", fmt.Errorf("%s: DELETE temp URL: %w", what, err)
	}
	return getURL, deleteURL, nil
}

// Fetch is the child's side of Deliver: it GETs the one-time object,
// then DELETEs it, and returns the credential (ID, Secret, Name,
// ExpiresAt, AuthURL, Region, Interface). If the object is gone (fetched
// before, or expired) it fails with ErrTaken; if it vanishes between the
// GET and the DELETE (someone else fetched it at the same moment), too.
// client nil means a client with a 30 s timeout; redirects are never
// followed. Transient failures (5xx, network) are retried a few times.
//
// Errors name the URL without its signature, never the secret.
func Fetch(ctx context.Context, client *http.Client, getURL, deleteURL string) (*Credential, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	if client != nil {
		cc := *client
		c = &cc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	gu, err := parseTempURL("GET", getURL)
	if err != nil {
		return nil, err
	}
	du, err := parseTempURL("DELETE", deleteURL)
	if err != nil {
		return nil, err
	}
	what := "credential: fetch " + gu
	status, body, _, err := send(ctx, c, http.MethodGet, getURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", what, err)
	case status == http.StatusNotFound:
		return nil, fmt.Errorf("%s: HTTP 404: %w (fetched before, or the object expired)", what, ErrTaken)
	case status == http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: HTTP 401: %w", what, ErrURLRefused)
	case status != http.StatusOK:
		return nil, fmt.Errorf("%s: HTTP %d: %w", what, status, kindOf(status))
	}
	var b bootstrap
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("%s: not a bootstrap object (%d bytes of invalid JSON): %w", what, len(body), backend.ErrInvalid)
	}
	if b.ID == "" || b.Secret == "" || b.AuthURL == "" {
		return nil, fmt.Errorf("%s: the bootstrap object lacks auth_url, application_credential_id or _secret: %w", what, backend.ErrInvalid)
	}
	status, _, retried, err := send(ctx, c, http.MethodDelete, deleteURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("credential: delete %s after reading it: %w", du, err)
	case status == http.StatusNotFound && retried:
		// An earlier attempt whose answer was lost deleted it.
	case status == http.StatusNotFound:
		return nil, fmt.Errorf("credential: delete %s after reading it: it is gone already, so someone else fetched it too; not using it: %w", du, ErrTaken)
	case status == http.StatusUnauthorized:
		return nil, fmt.Errorf("credential: delete %s after reading it: HTTP 401; not using it: %w", du, ErrURLRefused)
	case status/100 != 2:
		return nil, fmt.Errorf("credential: delete %s after reading it: HTTP %d: %w", du, status, kindOf(status))
	}
	cred := &Credential{ID: b.ID, Secret: b.Secret, Name: b.Name, AuthURL: b.AuthURL, Region: b.Region, Interface: b.Interface}
	if b.ExpiresAt != nil {
		cred.ExpiresAt = *b.ExpiresAt
	}
	return cred, nil
}

// send makes one request, retrying network failures and 5xx answers up
// to three times; retried reports whether an earlier attempt was sent.
func send(ctx context.Context, c *http.Client, method, u string) (status int, body []byte, retried bool, err error) {
	const attempts = 4
	wait := 200 * time.Millisecond
	for i := 0; ; i++ {
		status, body, err = sendOnce(ctx, c, method, u)
		if ctx.Err() != nil || i == attempts-1 || (err == nil && status < 500) {
			return status, body, i > 0, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, i > 0, context.Cause(ctx)
		case <-t.C:
		}
		wait *= 2
	}
}

func sendOnce(ctx context.Context, c *http.Client, method, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", method, backend.ErrInvalid)
	}
	resp, err := c.Do(req)
	if err != nil {
		// url.Error repeats the URL, signature included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%s: %w", method, context.Cause(ctx))
		}
		return 0, nil, fmt.Errorf("%s: %v: %w", method, err, backend.ErrTransient)
	}
	defer resp.Body.Close()
	var body []byte
	if method == http.MethodGet && resp.StatusCode == http.StatusOK {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBootstrapSize+1))
		if err != nil {
			return 0, nil, fmt.Errorf("%s: reading the body: %v: %w", method, err, backend.ErrTransient)
		}
		if len(body) > maxBootstrapSize {
			return 0, nil, fmt.Errorf("%s: the object is larger than %d bytes: not a bootstrap object: %w", method, maxBootstrapSize, backend.ErrInvalid)
		}
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBootstrapSize))
	}
	return resp.StatusCode, body, nil
}

// parseTempURL checks u and returns it without its query (the signature).
func parseTempURL(method, u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", fmt.Errorf("credential: fetch: the %s URL is not an http(s) URL: %w", method, backend.ErrInvalid)
	}
	if p.Query().Get("temp_url_sig") == "" {
		return "", fmt.Errorf("credential: fetch: the %s URL %s://%s%s has no temp_url_sig: %w", method, p.Scheme, p.Host, p.EscapedPath(), backend.ErrInvalid)
	}
	return p.Scheme + "://" + p.Host + p.EscapedPath(), nil
}

func kindOf(status int) error {
	if status == http.StatusTooManyRequests || status >= 500 {
		return backend.ErrTransient
	}
	return backend.ErrInvalid
}
