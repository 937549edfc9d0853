package main

import (
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Params are the values of the shell's parameters and variables.
type Params struct {
	Status int   // $?
	LastBG int64 // $!; 0 expands to the empty string
	PID    int64 // $$; 0 expands to the empty string
	// Lookup returns a variable's value; nil: no variable is set.
	Lookup func(name string) (string, bool)
}

// value returns what part expands to (before splitting and globbing).
func (p Params) value(part WordPart) string {
	var v string
	switch {
	case part.Var != "":
		if p.Lookup != nil {
			v, _ = p.Lookup(part.Var)
		}
	case part.Param == '?':
		v = strconv.Itoa(p.Status)
	case part.Param == '!':
		if p.LastBG != 0 {
			v = strconv.FormatInt(p.LastBG, 10)
		}
	case part.Param == '$':
		if p.PID != 0 {
			v = strconv.FormatInt(p.PID, 10)
		}
	case part.Param == '#':
		v = "0" // no positional parameters
	case part.Param == '0':
		v = "rack"
	default: // $1...$9, $@, $*: no positional parameters
		if part.Param == 0 {
			v = part.Lit
		}
	}
	if part.Len {
		return strconv.Itoa(utf8.RuneCountInString(v))
	}
	return v
}

// ifs returns $IFS (space, tab and newline when unset).
func (p Params) ifs() string {
	if p.Lookup != nil {
		if v, ok := p.Lookup("IFS"); ok {
			return v
		}
	}
	return " \t\n"
}

// Expand expands the word to one string, with neither field splitting nor
// globbing: what an assignment's value gets.
func (w Word) Expand(p Params) string {
	var b strings.Builder
	for _, part := range w {
		b.WriteString(p.value(part))
	}
	return b.String()
}

// field is a field being built: its text and, for each byte, whether it
// may glob (an unquoted * ? [ or \ from the line or from an unquoted
// expansion).
type field struct {
	text   strings.Builder
	active []bool
	exists bool // an empty field still counts (it had quotes)
	meta   bool // it has an active glob character
}

func (f *field) add(s string, active bool) {
	f.text.WriteString(s)
	for i := 0; i < len(s); i++ {
		f.active = append(f.active, active)
		if active && strings.IndexByte("*?[", s[i]) >= 0 {
			f.meta = true
		}
	}
	if s != "" {
		f.exists = true
	}
}

// pattern returns the field as a path.Match pattern: inactive meta
// characters (and backslashes) escaped.
func (f *field) pattern() string {
	var b strings.Builder
	s := f.text.String()
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 && (!f.active[i] || s[i] == '\\') {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Globber expands an absolute path pattern to the sorted paths that match
// it; none (or an error) leaves the word as it is.
type Globber func(pattern string) ([]string, error)

// Fields expands the words as bash does: parameters, then field splitting
// of unquoted results on $IFS, then globbing of unquoted * ? [ (when glob
// is not nil), and removal of the empty unquoted fields.
func Fields(words []Word, p Params, glob Globber) []string {
	var out []string
	for _, w := range words {
		for _, f := range splitWord(w, p) {
			text := f.text.String()
			if f.meta && glob != nil {
				if m, err := glob(f.pattern()); err == nil && len(m) > 0 {
					out = append(out, m...)
					continue
				}
			}
			out = append(out, text)
		}
	}
	return out
}

// splitWord expands one word into its fields.
func splitWord(w Word, p Params) []*field {
	var out []*field
	cur := &field{}
	emit := func(force bool) {
		if cur.exists || force {
			out = append(out, cur)
		}
		cur = &field{}
	}
	ifs := p.ifs()
	isWS := func(c rune) bool { return (c == ' ' || c == '\t' || c == '\n') && strings.ContainsRune(ifs, c) }
	isIFS := func(c rune) bool { return strings.ContainsRune(ifs, c) }
	for _, part := range w {
		if part.isLit() {
			cur.add(part.Lit, !part.Quoted)
			if part.Quoted {
				cur.exists = true
			}
			continue
		}
		v := p.value(part)
		if part.Quoted || ifs == "" {
			cur.add(v, false)
			if part.Quoted {
				cur.exists = true
			}
			continue
		}
		// Unquoted: split on IFS (POSIX 2.6.5). Runs of IFS white space
		// are one delimiter; a non-white IFS character, with the white
		// space around it, is one delimiter that ends a field even if it
		// is empty.
		rs := []rune(v)
		for i := 0; i < len(rs); {
			c := rs[i]
			switch {
			case isWS(c):
				for i < len(rs) && isWS(rs[i]) {
					i++
				}
				force := false
				if i < len(rs) && isIFS(rs[i]) {
					force = true
					i++
					for i < len(rs) && isWS(rs[i]) {
						i++
					}
				}
				emit(force)
			case isIFS(c):
				i++
				for i < len(rs) && isWS(rs[i]) {
					i++
				}
				emit(true)
			default:
				j := i
				for j < len(rs) && !isIFS(rs[j]) {
					j++
				}
				cur.add(string(rs[i:j]), true)
				i = j
			}
		}
	}
	emit(false)
	return out
}

// globFS expands an absolute pattern over the rack paths of fsys (an FS
// whose names are paths without the leading slash, as Kernel.FS gives):
// as bash, * and ? do not match a leading dot, and a relative pattern does
// not expand (the shell has no working directory).
func globFS(fsys fs.FS) Globber {
	return func(pattern string) ([]string, error) {
		if !strings.HasPrefix(pattern, "/") {
			return nil, nil
		}
		rel := strings.TrimLeft(pattern, "/")
		if rel == "" {
			return nil, nil
		}
		// Glob each segment: fs.Glob would let * match a leading dot.
		matches := []string{""}
		segs := strings.Split(rel, "/")
		for i, seg := range segs {
			last := i == len(segs)-1
			if seg == "" {
				return nil, nil // a // or a trailing /: not a rack path
			}
			var next []string
			if !hasMeta(seg) {
				name := unescape(seg)
				for _, m := range matches {
					p := path.Join(m, name)
					if last {
						if _, err := fs.Stat(fsys, p); err != nil {
							continue
						}
					}
					next = append(next, p)
				}
			} else {
				if _, err := path.Match(seg, ""); err != nil {
					return nil, err
				}
				for _, m := range matches {
					dir := m
					if dir == "" {
						dir = "."
					}
					entries, err := fs.ReadDir(fsys, dir)
					if err != nil {
						continue
					}
					for _, e := range entries {
						name := e.Name()
						if strings.HasPrefix(name, ".") && !strings.HasPrefix(seg, ".") {
							continue
						}
						if ok, _ := path.Match(seg, name); ok && (last || e.IsDir()) {
							next = append(next, path.Join(m, name))
						}
					}
				}
			}
			matches = next
			if len(matches) == 0 {
				return nil, nil
			}
		}
		sort.Strings(matches)
		for i, m := range matches {
			matches[i] = "/" + m
		}
		return matches, nil
	}
}

// hasMeta reports whether a pattern segment has an unescaped * ? or [.
func hasMeta(seg string) bool {
	for i := 0; i < len(seg); i++ {
		switch seg[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// unescape removes a pattern segment's backslash escapes.
func unescape(seg string) string {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		if seg[i] == '\\' && i+1 < len(seg) {
			i++
		}
		b.WriteByte(seg[i])
	}
	return b.String()
}
