package file

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Path encoding.
//
// An object name is cut into segments: from where the previous segment
// ended, up to and including the next '/', or segMax bytes if no '/' comes
// sooner. Every segment but the last is a directory, the last is the object
// file. Each segment's bytes are escaped (see escape) and given a suffix that
// says what it is:
//
//	,o  an object file; the segment is the end of the name
//	,d  a directory for the segment that ends in '/' (the '/' is not written)
//	,p  a directory for a segment of segMax bytes without '/' (a long name part)
//
// So "procs/101" is "procs,d/101,o" and "a" and "a/b" are "a,o" and
// "a,d/b,o". Escaped segments are at most 3*segMax+2 = 242 bytes, within
// every common file system's limit of 255.
//
// The children of one directory never interleave in byte order: a file's
// segment holds no '/' but maybe at its end, and no directory segment is a
// proper prefix of another segment, so sorting a directory's entries by
// decoded segment (a file before a directory with the same segment) and
// walking depth first lists names in byte order.
const segMax = 80

// Entry suffixes.
const (
	sufObject = ",o"
	sufSlash  = ",d"
	sufPart   = ",p"
	sufCont   = ",c" // a container whose directory name is its escaped name
	sufHashed = ",h" // a container whose name is too long: see containerDir
)

// segments calls fn for each segment of name, with last set for the final
// one, and stops if fn returns false.
func segments(name string, fn func(seg string, last bool) bool) {
	for i := 0; i < len(name); {
		rest := name[i:]
		n := min(len(rest), segMax)
		if j := strings.IndexByte(rest[:n], '/'); j >= 0 {
			n = j + 1
		}
		if !fn(rest[:n], n == len(rest)) {
			return
		}
		i += n
	}
}

// isRaw reports whether b is written as itself in an escaped name. Upper
// case letters are escaped so that names stay distinct on case-insensitive
// file systems.
func isRaw(b byte) bool {
	return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}

const hexDigits = "0123456789ABCDEF"

// appendEscaped appends s to dst with every byte that is not raw written as
// %XX.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if isRaw(b) {
			dst = append(dst, b)
		} else {
			dst = append(dst, '%', hexDigits[b>>4], hexDigits[b&15])
		}
	}
	return dst
}

// unescape reverses appendEscaped; ok is false if s is not a valid escape.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if !isRaw(s[i]) {
				return "", false
			}
		}
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		case isRaw(c):
			b = append(b, c)
		default:
			return "", false
		}
	}
	return string(b), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// appendObjectPath appends to dst (the container directory) the relative
// path of object name: "/seg,d/seg,p/.../seg,o".
func appendObjectPath(dst []byte, name string) []byte {
	segments(name, func(seg string, last bool) bool {
		dst = appendSegment(append(dst, '/'), seg, last)
		return true
	})
	return dst
}

// appendSegment appends the directory entry name of one segment.
func appendSegment(dst []byte, seg string, last bool) []byte {
	switch {
	case last:
		dst = appendEscaped(dst, seg)
		return append(dst, sufObject...)
	case seg[len(seg)-1] == '/':
		dst = appendEscaped(dst, seg[:len(seg)-1])
		return append(dst, sufSlash...)
	default:
		dst = appendEscaped(dst, seg)
		return append(dst, sufPart...)
	}
}

// entryKind says what a directory entry of the object tree is.
type entryKind uint8

const (
	kindNone   entryKind = iota // not part of the tree (a control file)
	kindObject                  // ,o
	kindDir                     // ,d or ,p
)

// decodeEntry decodes a directory entry of the object tree into its
// segment (for ",d" with the '/' restored).
func decodeEntry(fname string) (seg string, kind entryKind) {
	if len(fname) < 2 || fname[len(fname)-2] != ',' {
		return "", kindNone
	}
	s, ok := unescape(fname[:len(fname)-2])
	if !ok {
		return "", kindNone
	}
	switch fname[len(fname)-2:] {
	case sufObject:
		return s, kindObject
	case sufSlash:
		return s + "/", kindDir
	case sufPart:
		return s, kindDir
	}
	return "", kindNone
}

// containerDirName returns the name of container c's directory under
// DIR/c: its escaped name with ",c", or, if that is too long, "~" and the
// hex SHA-256 of the name with ",h" (the name is then read from the
// directory's .name file).
func containerDirName(c string) string {
	b := appendEscaped(make([]byte, 0, len(c)+8), c)
	if len(b) <= 240 {
		return string(append(b, sufCont...))
	}
	sum := sha256.Sum256([]byte(c))
	return "~" + hex.EncodeToString(sum[:]) + sufHashed
}
