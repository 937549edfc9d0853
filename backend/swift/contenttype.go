package swift

import (
	"regexp"
	"strings"
)

// Content types in container listings.
//
// Swift returns an object's Content-Type unchanged from HEAD and GET, but
// its container listings rebuild it from the parsed parameters: spaces
// around ';' and '=' go, a parameter whose value is neither an RFC 7230
// token nor a quoted string is cut at the first character that does not
// fit ("a; k=x=y" is listed as "a;k=x"), and a swift_bytes parameter is
// dropped. So that List returns what Put stored, a content type that a
// listing would change is stored as
//
//	<media type>;rack-ct=<the whole content type, percent-encoded>
//
// (every byte outside the token characters, and '%', as %XX), which a
// listing keeps as it is and the Store decodes on the way back. Other
// Swift clients still see the media type. A content type that a listing
// keeps is stored unchanged.

// ctMarker introduces the encoded form.
const ctMarker = ";rack-ct="

// rfcToken and rfcExtension are Swift's (swift.common.utils).
const rfcToken = `[^()<>@,;:\"/\[\]?={}\x00-\x20\x7f]+`

var rfcExtension = regexp.MustCompile(`(?:\s*;\s*(` + rfcToken + `)\s*(?:=\s*(` + rfcToken + `|"(?:[^"\\]|\\.)*"))?)`)

// swiftListed is ct as a Swift container listing shows it
// (extract_swift_bytes of parse_content_type).
func swiftListed(ct string) string {
	typ, params, ok := strings.Cut(ct, ";")
	if !ok {
		return ct
	}
	var b strings.Builder
	b.WriteString(typ)
	for _, m := range rfcExtension.FindAllStringSubmatch(";"+params, -1) {
		k, v := strings.TrimSpace(m[1]), strings.TrimSpace(m[2])
		if k != "swift_bytes" {
			b.WriteString(";" + k + "=" + v)
		}
	}
	return b.String()
}

// isTokenByte reports whether c may appear unencoded in the encoded form.
func isTokenByte(c byte) bool {
	return c > 0x20 && c < 0x7f && c != '%' && !strings.ContainsRune(`()<>@,;:\"/[]?={}`, rune(c))
}

// storedContentType is what Put sends as Content-Type for ct.
func storedContentType(ct string) string {
	if swiftListed(ct) == ct && !strings.Contains(ct, ctMarker) {
		return ct
	}
	typ, _, _ := strings.Cut(ct, ";")
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString(strings.TrimSpace(typ) + ctMarker)
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; isTokenByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// loadedContentType undoes storedContentType (for HEAD, GET and listings).
func loadedContentType(ct string) string {
	i := strings.Index(ct, ctMarker)
	if i < 0 || strings.Contains(ct[i+1:], ";") {
		return ct
	}
	enc := ct[i+len(ctMarker):]
	out := make([]byte, 0, len(enc))
	for j := 0; j < len(enc); j++ {
		c := enc[j]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if j+2 >= len(enc) || unhex(enc[j+1]) < 0 || unhex(enc[j+2]) < 0 {
			return ct // not ours
		}
		out = append(out, byte(unhex(enc[j+1])<<4|unhex(enc[j+2])))
		j += 2
	}
	return string(out)
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
