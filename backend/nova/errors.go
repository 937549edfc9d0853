package nova

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/rackfork/rack/backend"
)

// apiFailure is what a failed API call tells: the HTTP status (0 if no
// response came), Nova's message, and how long to wait before a retry.
type apiFailure struct {
	status     int
	message    string
	retryAfter time.Duration
	header     http.Header
}

// examine picks apart an error from gophercloud. The message is Nova's own
// (the "message" of its fault body) when there is one.
func examine(err error) apiFailure {
	var code gophercloud.ErrUnexpectedResponseCode
	var pcode *gophercloud.ErrUnexpectedResponseCode
	var after *gophercloud.ErrErrorAfterReauthentication
	if errors.As(err, &after) && after.ErrOriginal != nil {
		err = after.ErrOriginal
	}
	switch {
	case errors.As(err, &code):
	case errors.As(err, &pcode) && pcode != nil:
		code = *pcode
	default:
		return apiFailure{message: err.Error()}
	}
	f := apiFailure{status: code.Actual, message: faultMessage(code.Body), header: code.ResponseHeader}
	if f.message == "" {
		f.message = http.StatusText(code.Actual)
	}
	if v := code.ResponseHeader.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			f.retryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			f.retryAfter = time.Until(t)
		}
	}
	return f
}

// faultMessage extracts the message of a Nova fault body,
// {"<faultName>": {"code": N, "message": "..."}}, or returns the body
// itself, shortened.
func faultMessage(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) == nil {
		for _, v := range m {
			var f struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(v, &f) == nil && f.Message != "" {
				return f.Message
			}
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// quota reports whether f is a create refused for quota (403), in any of
// Nova's wordings (see quotaMessage).
func (f apiFailure) quota() bool {
	return f.status == http.StatusForbidden && quotaMessage(f.message)
}

// quotaMessage reports whether msg is one of Nova's quota refusals: the
// DbQuotaDriver's "Quota exceeded for instances: ..." (TooManyInstances and
// the other OverQuota errors of nova/exception.py), unified limits' "Project
// P is over a limit for [Resource servers is over limit of ...]"
// (ProjectOverLimit, nova/limit/placement.py and nova/limit/local.py), and
// Neutron's port quota as Nova passes it on, "Maximum number of ports
// exceeded" (PortLimitExceeded). The same words are the fault of a server
// that lost the conductor's quota recheck.
func quotaMessage(msg string) bool {
	for _, w := range []string{"Quota exceeded", "quota exceeded", "is over a limit for", "is over limit of", "Maximum number of ports exceeded"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// rateLimited reports whether f is a 429 (or 413 with Retry-After, as
// older Nova limits answered).
func (f apiFailure) rateLimited() bool {
	return f.status == http.StatusTooManyRequests || f.status == http.StatusRequestEntityTooLarge && f.retryAfter > 0
}

// ambiguous reports whether the request may have taken effect although it
// failed, and may succeed if tried again: no response, or a server error
// other than 501 (Not Implemented: the cloud cannot do it, e.g. a console
// log on Ironic, nova/api/openstack/compute/console_output.py).
func (f apiFailure) ambiguous() bool {
	return f.status == 0 || f.status >= 500 && f.status != http.StatusNotImplemented
}

// kind returns the backend error that f is an instance of.
func (f apiFailure) kind() error {
	switch {
	case f.ambiguous(), f.rateLimited(), f.quota():
		return backend.ErrTransient
	case f.status == http.StatusNotFound:
		return backend.ErrNotFound
	}
	return backend.ErrInvalid
}

// configHint returns what to set when f refuses a create for the request's
// configuration (a 409, or a 400 naming the image, flavor or network), or
// "" if f is no such refusal. A 409 NetworkAmbiguous ("Multiple possible
// networks found, use a Network ID to be more specific.",
// nova/api/openstack/compute/servers.py) means the project sees more than
// one network, so "auto" cannot pick one.
func (f apiFailure) configHint() string {
	msg := strings.ToLower(f.message)
	switch {
	case f.status == http.StatusConflict && strings.Contains(msg, "network"):
		return "set the network= option (Config.Network) to the UUID of the network the servers should use"
	case f.status == http.StatusConflict:
		return "the cloud refused the server's configuration; check the image=, flavor=, network= and security_groups= options"
	case f.status == http.StatusBadRequest && strings.Contains(msg, "network"):
		return "check the network= option (Config.Network)"
	case f.status == http.StatusBadRequest && strings.Contains(msg, "image"):
		return "check the image= option (Config.Image)"
	case f.status == http.StatusBadRequest && strings.Contains(msg, "flavor"):
		return "check the flavor= option (Config.Flavor)"
	}
	return ""
}

// describe renders f for an error message.
func (f apiFailure) describe() string {
	if f.status == 0 {
		return f.message
	}
	return fmt.Sprintf("HTTP %d: %s", f.status, f.message)
}

// apiError wraps the failure of op (e.g. "start ct-main-1: create") as
// an error of its kind, with the token redacted. A failure caused by the
// end of ctx is reported as ctx's error.
func (c *Compute) apiError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("nova: %s: %w", op, context.Cause(ctx))
	}
	f := examine(err)
	return fmt.Errorf("nova: %s: %s: %w", op, c.redact(f.describe()), f.kind())
}

// redact removes the client's token from s.
func (c *Compute) redact(s string) string { return redactToken(c.client, s) }

func redactToken(client *gophercloud.ServiceClient, s string) string {
	if client == nil || client.ProviderClient == nil {
		return s
	}
	if tok := client.ProviderClient.Token(); len(tok) >= 4 {
		s = strings.ReplaceAll(s, tok, "[token]")
	}
	return s
}
