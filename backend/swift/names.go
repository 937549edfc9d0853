package swift

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// maxListLimit is the contract's largest page (Swift's default limit).
const maxListLimit = 10000

// limits are the cluster's constraints (from /info, else Swift's defaults).
type limits struct {
	containerListing, accountListing int
	maxListing                       int
	objectName, containerName        int
	metaName, metaValue, metaCount   int
	metaOverall                      int
	tempURL                          tempURLInfo
}

var defaultLimits = limits{
	containerListing: maxListLimit, accountListing: maxListLimit, maxListing: maxListLimit,
	objectName: 1024, containerName: 256,
	metaName: 128, metaValue: 256, metaCount: 90, metaOverall: 4096,
}

// queryInfo returns the swift section of the cluster's GET /info.
func (s *Store) queryInfo(ctx context.Context) (sw.SwiftInfo, map[string]any, error) {
	info, err := s.conn.QueryInfo(retryable(ctx))
	if err != nil {
		return nil, nil, err
	}
	raw, ok := info["swift"].(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("no swift section in /info")
	}
	return info, raw, nil
}

// listingLimit reads the cluster's container (or, for accounts, account)
// listing limit from GET /info.
func (s *Store) listingLimit(ctx context.Context, accounts bool) (int, error) {
	_, raw, err := s.queryInfo(ctx)
	if err != nil {
		return 0, err
	}
	key := "container_listing_limit"
	if accounts {
		key = "account_listing_limit"
	}
	if v, ok := raw[key].(float64); ok && v >= 1 {
		return int(min(v, maxListLimit)), nil
	}
	return 0, fmt.Errorf("/info has no %s", key)
}

// loadLimits reads the cluster's constraints from GET /info.
func (s *Store) loadLimits(ctx context.Context) error {
	info, raw, err := s.queryInfo(ctx)
	if err != nil {
		return err
	}
	get := func(key string, dst *int) {
		if v, ok := raw[key].(float64); ok && v > 0 {
			*dst = int(v)
		}
	}
	l := defaultLimits
	get("container_listing_limit", &l.containerListing)
	get("account_listing_limit", &l.accountListing)
	get("max_object_name_length", &l.objectName)
	get("max_container_name_length", &l.containerName)
	get("max_meta_name_length", &l.metaName)
	get("max_meta_value_length", &l.metaValue)
	get("max_meta_count", &l.metaCount)
	get("max_meta_overall_size", &l.metaOverall)
	l.tempURL.known = true
	if tu, ok := info["tempurl"].(map[string]any); ok {
		l.tempURL.enabled = true
		strs := func(key string) (out []string) {
			vals, _ := tu[key].([]any)
			for _, v := range vals {
				if s, ok := v.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
		l.tempURL.methods = strs("methods")
		l.tempURL.digests = strs("allowed_digests")
	}
	l.containerListing = min(l.containerListing, maxListLimit)
	l.accountListing = min(l.accountListing, maxListLimit)
	s.limits = l
	return nil
}

// checkContainer validates a container name before it is sent.
func (s *Store) checkContainer(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("swift: empty container name: %w", backend.ErrInvalid)
	case len(c) > s.limits.containerName:
		return fmt.Errorf("swift: container name of %d bytes exceeds Swift's %d: %w", len(c), s.limits.containerName, backend.ErrInvalid)
	case strings.Contains(c, "/"):
		return fmt.Errorf("swift: container name %q contains '/': %w", c, backend.ErrInvalid)
	case !utf8.ValidString(c) || strings.ContainsRune(c, 0):
		return fmt.Errorf("swift: container name %q is not valid UTF-8 or contains NUL: %w", c, backend.ErrInvalid)
	}
	return nil
}

// checkObject validates a container and object name before they are sent.
func (s *Store) checkObject(c, name string) error {
	if err := s.checkContainer(c); err != nil {
		return err
	}
	switch {
	case name == "":
		return fmt.Errorf("swift: empty object name in container %q: %w", c, backend.ErrInvalid)
	case len(name) > s.limits.objectName:
		return fmt.Errorf("swift: object name of %d bytes in container %q exceeds Swift's %d: %w", len(name), c, s.limits.objectName, backend.ErrInvalid)
	case !utf8.ValidString(name) || strings.ContainsRune(name, 0):
		return fmt.Errorf("swift: object name %q in container %q is not valid UTF-8 or contains NUL: %w", name, c, backend.ErrInvalid)
	}
	return nil
}

// checkMeta validates metadata against the backend contract and the
// cluster's limits (on the encoded form), and returns its headers.
func (s *Store) checkMeta(c, name string, md map[string]string) (sw.Headers, error) {
	h := sw.Headers{}
	bad := func(format string, args ...any) (sw.Headers, error) {
		return nil, fmt.Errorf("swift: put %s/%s: metadata: %s: %w", c, name, fmt.Sprintf(format, args...), backend.ErrInvalid)
	}
	if len(md) > 90 || len(md) > s.limits.metaCount {
		return bad("%d keys, more than %d", len(md), min(90, s.limits.metaCount))
	}
	total, encTotal := 0, 0
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := md[k]
		if k == "" || len(k) > s.limits.metaName {
			return bad("key %q is empty or too long", k)
		}
		for i := 0; i < len(k); i++ {
			if b := k[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
				return bad("key %q: only lower-case ASCII letters, digits and '-' are allowed", k)
			}
		}
		if len(v) > 256 {
			return bad("value of %q is %d bytes, more than 256", k, len(v))
		}
		ev := encodeMetaValue(v)
		if len(ev) > s.limits.metaValue {
			return bad("value of %q is %d bytes once percent-encoded, more than Swift's %d", k, len(ev), s.limits.metaValue)
		}
		total += len(k) + len(v)
		encTotal += len(k) + len(ev)
		h["X-Object-Meta-"+k] = ev
	}
	if total > 4096 || encTotal > s.limits.metaOverall {
		return bad("%d bytes in all (%d encoded), more than 4096", total, encTotal)
	}
	return h, nil
}

// encodeMetaValue percent-encodes v unless it is printable ASCII without
// '%' and without leading or trailing spaces.
func encodeMetaValue(v string) string {
	plain := !strings.HasPrefix(v, " ") && !strings.HasSuffix(v, " ")
	for i := 0; plain && i < len(v); i++ {
		if b := v[i]; b < 0x20 || b > 0x7e || b == '%' {
			plain = false
		}
	}
	if plain {
		return v
	}
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		b := v[i]
		edge := b == ' ' && (i == 0 || i == len(v)-1)
		if b < 0x20 || b > 0x7e || b == '%' || edge {
			fmt.Fprintf(&sb, "%%%02X", b)
		} else {
			sb.WriteByte(b)
		}
	}
	return sb.String()
}

// decodeMetaValue reverses encodeMetaValue; a value that does not decode
// is returned as it is.
func decodeMetaValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return v
	}
	return d
}

// decodeMeta extracts user metadata from response headers.
func decodeMeta(h sw.Headers) map[string]string {
	var md map[string]string
	for k, v := range h {
		if len(k) > len("X-Object-Meta-") && strings.EqualFold(k[:len("X-Object-Meta-")], "X-Object-Meta-") {
			if md == nil {
				md = make(map[string]string)
			}
			md[strings.ToLower(k[len("X-Object-Meta-"):])] = decodeMetaValue(v)
		}
	}
	return md
}

// jsonMarshal is json.Marshal (kept here to group encoders).
var jsonMarshal = json.Marshal
