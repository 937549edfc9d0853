package swift

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// mapErr turns an ncw/swift or transport error into one wrapping the
// backend errors, naming the operation, container and object. It never
// includes the key or the token.
func (s *Store) mapErr(ctx context.Context, err error, op, c, name string) error {
	if err == nil {
		return nil
	}
	target := c
	if name != "" {
		target = c + "/" + name
	}
	if target == "" {
		target = "account"
	}
	if ctx.Err() != nil {
		return fmt.Errorf("swift: %s %s: %w", op, target, context.Cause(ctx))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("swift: %s %s: %w", op, target, err)
	}
	for _, k := range []error{backend.ErrNotFound, backend.ErrExist, backend.ErrInvalid, backend.ErrTransient, errAuth} {
		if errors.Is(err, k) {
			return fmt.Errorf("swift: %s %s: %w", op, target, err)
		}
	}
	msg := s.redact(err.Error())
	if errors.Is(err, sw.TimeoutError) {
		// ncw/swift reports its own client-side timeouts as status 408:
		// a slow server, which a retry may get past.
		return fmt.Errorf("swift: %s %s: %s: %w", op, target, msg, backend.ErrTransient)
	}
	var se *sw.Error
	if errors.As(err, &se) && se.StatusCode != 0 {
		var kind error
		switch code := se.StatusCode; {
		case code == 404:
			kind = backend.ErrNotFound
			if name != "" {
				msg = "object or container not found (HTTP 404)"
			} else {
				msg = "container not found (HTTP 404)"
			}
		case code == 409 && name == "":
			kind = backend.ErrExist
			msg = "container not empty (HTTP 409)"
		case code == 412:
			kind = backend.ErrExist
			msg = "object exists (HTTP 412)"
		case code == 401 || code == 403:
			kind = errAuth
			msg = fmt.Sprintf("access refused (HTTP %d) for %s", code, s.cfg.who())
		case code == 400 || code == 411 || code == 413 || code == 416 || code == 422:
			kind = backend.ErrInvalid
		case code == 429 || code == 498 || code >= 500:
			kind = backend.ErrTransient
		default:
			kind = backend.ErrInvalid
		}
		return fmt.Errorf("swift: %s %s: %s: %w", op, target, msg, kind)
	}
	if isTransportErr(err) {
		return fmt.Errorf("swift: %s %s: %s: %w", op, target, msg, backend.ErrTransient)
	}
	return fmt.Errorf("swift: %s %s: %s: %w", op, target, msg, backend.ErrTransient)
}

// isTransportErr reports network failures: resets, timeouts, refused
// connections, unexpected EOFs.
func isTransportErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, sw.TimeoutError)
}

// isStatus reports whether err is an ncw/swift error with HTTP status code.
func isStatus(err error, code int) bool {
	var se *sw.Error
	return errors.As(err, &se) && se.StatusCode == code
}

// redact removes the Store's secrets from msg: the key or password, the
// application credential secret, the current Keystone token and the
// Temp-URL key.
func (s *Store) redact(msg string) string {
	secrets := []string{s.cfg.Key, s.cfg.ApplicationCredentialSecret, s.tempURL.current()}
	if s.ks != nil {
		secrets = append(secrets, s.ks.currentToken())
	}
	s.containerKeys.Range(func(_, v any) bool {
		secrets = append(secrets, v.(containerKey).key)
		return true
	})
	return redact(msg, secrets...)
}

// redact removes each secret from msg.
func redact(msg string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}
