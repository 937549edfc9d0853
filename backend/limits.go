package backend

// Swift's naming and metadata limits, checked the same way by every
// driver that is not Swift itself (the fakes must refuse what Swift
// refuses).

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Swift's default constraints (swift.conf [swift-constraints]).
const (
	// MaxObjectNameLength is the longest object name, in bytes.
	MaxObjectNameLength = 1024
	// MaxContainerNameLength is the longest container name, in bytes.
	MaxContainerNameLength = 256
	// MaxMetaCount is the largest number of user metadata keys.
	MaxMetaCount = 90
	// MaxMetaNameLength is the longest metadata key, in bytes.
	MaxMetaNameLength = 128
	// MaxMetaValueLength is the longest metadata value, in bytes.
	MaxMetaValueLength = 256
	// MaxMetaOverallSize is the largest total size of the metadata keys and
	// values, in bytes.
	MaxMetaOverallSize = 4096
	// MaxContentTypeLength bounds PutOptions.ContentType. Swift sets no
	// limit of its own below its 8 KiB header limit; this keeps listings
	// small.
	MaxContentTypeLength = 1024
	// MaxListLimit is the largest page a listing returns, and the page size
	// when ListOptions.Limit is 0. Larger limits are clamped to it.
	MaxListLimit = 10000
)

// ContainerNameProblem returns a description of what is wrong with a
// container name, or "" if it is valid.
func ContainerNameProblem(c string) string {
	switch {
	case c == "":
		return "empty container name"
	case len(c) > MaxContainerNameLength:
		return "container name longer than " + strconv.Itoa(MaxContainerNameLength) + " bytes"
	case strings.IndexByte(c, '/') >= 0:
		return "container name contains '/'"
	case strings.IndexByte(c, 0) >= 0:
		return "container name contains NUL"
	case !utf8.ValidString(c):
		return "container name is not valid UTF-8"
	}
	return ""
}

// ObjectNameProblem returns a description of what is wrong with an object
// name, or "" if it is valid.
func ObjectNameProblem(n string) string {
	switch {
	case n == "":
		return "empty object name"
	case len(n) > MaxObjectNameLength:
		return "object name longer than " + strconv.Itoa(MaxObjectNameLength) + " bytes"
	case strings.IndexByte(n, 0) >= 0:
		return "object name contains NUL"
	case !utf8.ValidString(n):
		return "object name is not valid UTF-8"
	}
	return ""
}

// MetadataProblem returns a description of what is wrong with user metadata,
// or "" if it is valid. Beyond the contract's limits it rejects what an HTTP
// header cannot carry: values with NUL, CR or LF, and invalid UTF-8.
func MetadataProblem(meta map[string]string) string {
	if len(meta) > MaxMetaCount {
		return "more than " + strconv.Itoa(MaxMetaCount) + " metadata keys"
	}
	total := 0
	for k, v := range meta {
		if k == "" {
			return "empty metadata key"
		}
		if len(k) > MaxMetaNameLength {
			return "metadata key " + strconv.Quote(k) + " longer than " + strconv.Itoa(MaxMetaNameLength) + " bytes"
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return "metadata key " + strconv.Quote(k) + " has characters other than a-z, 0-9 and '-'"
			}
		}
		if len(v) > MaxMetaValueLength {
			return "metadata value of " + strconv.Quote(k) + " longer than " + strconv.Itoa(MaxMetaValueLength) + " bytes"
		}
		if strings.ContainsAny(v, "\x00\r\n") {
			return "metadata value of " + strconv.Quote(k) + " contains NUL, CR or LF"
		}
		if !utf8.ValidString(v) {
			return "metadata value of " + strconv.Quote(k) + " is not valid UTF-8"
		}
		total += len(k) + len(v)
	}
	if total > MaxMetaOverallSize {
		return "metadata larger than " + strconv.Itoa(MaxMetaOverallSize) + " bytes in all"
	}
	return ""
}

// DefaultContentType is the media type of an object stored without one.
const DefaultContentType = "application/octet-stream"

// ContentTypeProblem returns a description of what is wrong with a content
// type, or "" if it is valid: printable ASCII (what an HTTP header and a
// JSON listing carry unchanged), at most MaxContentTypeLength bytes.
func ContentTypeProblem(ct string) string {
	if len(ct) > MaxContentTypeLength {
		return "content type longer than " + strconv.Itoa(MaxContentTypeLength) + " bytes"
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] < 0x20 || ct[i] > 0x7e {
			return "content type has a byte outside printable ASCII at offset " + strconv.Itoa(i)
		}
	}
	return ""
}

// DelimiterProblem returns a description of what is wrong with a listing
// delimiter, or "" if it is valid. Like Swift, it must be one character no
// greater than U+00FE.
func DelimiterProblem(d string) string {
	if d == "" {
		return ""
	}
	r, size := utf8.DecodeRuneInString(d)
	if size != len(d) || r == utf8.RuneError || r > 0xFE || r == 0 {
		return "delimiter " + strconv.Quote(d) + " is not a single character up to U+00FE"
	}
	return ""
}

// ListOptionsProblem validates opts and returns the effective page size,
// or a description of what is wrong.
func ListOptionsProblem(opts *ListOptions) (limit int, problem string) {
	if opts.Limit < 0 {
		return 0, "negative listing limit"
	}
	if d := DelimiterProblem(opts.Delimiter); d != "" {
		return 0, d
	}
	limit = opts.Limit
	if limit == 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	return limit, ""
}
