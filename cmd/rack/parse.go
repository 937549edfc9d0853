package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The shell's grammar, the simple-command subset of bash's:
//
//	line     = [ list ] [ "#" comment ]
//	list     = andor { ( ";" | "&" ) andor } [ ";" | "&" ]
//	andor    = pipeline { ( "&&" | "||" ) pipeline }
//	pipeline = [ "!" ] command { "|" command }
//	command  = { NAME=VALUE } { word | redirect }
//	redirect = [ N ] ( ">" | ">>" | ">|" | "<" ) word
//	         | [ N ] ( ">&" | "<&" ) M  |  ( "&>" | "&>>" | ">&" ) word
//
// && and || have equal precedence and bind left to right, as in bash;
// ";" and "&" end an and-or list. Redirections apply left to right
// (so "> f 2>&1" sends both outputs to f, "2>&1 > f" only the first).
//
// A word is made of unquoted characters, 'single-quoted' text (taken
// literally), "double-quoted" text (where \ escapes " \ $ ` and newline,
// and parameters expand), $'ANSI-C' text and backslash escapes.
// Parameters: $NAME and ${NAME}, ${#NAME} (its length), and the special
// $? (last status), $! (last background pid), $$ (the shell's pid), $#,
// $0...$9, $@ and $* (the shell has no positional parameters: 0, "rack"
// and empty). A ~ that starts a word is $HOME. Unquoted, the results of
// parameters are split into fields on $IFS and every unquoted * ? [
// globs over rack paths (see expand.go). Command substitution, arithmetic,
// compound commands (if, for, while, case, { }, ( )), functions and
// here-documents are refused with a syntax error rather than misread.

// Line is a parsed input line: its pipelines, in order.
type Line struct {
	Pipelines []*Pipeline
}

// ListOp says how a pipeline follows the one before it.
type ListOp int

const (
	// OpSeq: after ";" or "&", or first on the line: the pipeline runs.
	OpSeq ListOp = iota
	// OpAnd: after "&&": it runs if the previous status is 0.
	OpAnd
	// OpOr: after "||": it runs if the previous status is not 0.
	OpOr
)

// Pipeline is one or more commands connected by pipes.
type Pipeline struct {
	Cmds []*Command
	// Background: the pipeline ended with "&" and is not waited for.
	Background bool
	// Op joins the pipeline to the previous one (&&, ||, or ; and &).
	Op ListOp
	// Negate: the pipeline started with "!": its status is inverted.
	Negate bool
}

// Command is one simple command: assignments, words and redirections.
type Command struct {
	// Assigns are the NAME=VALUE words before the command's name: with a
	// command they set its environment, alone they set shell variables.
	Assigns []Assign
	Args    []Word
	// Redirs are the redirections in the order written.
	Redirs []Redirect
	// Col is the column (1-based, in characters) where the command starts.
	Col int
}

// Assign is a NAME=VALUE word.
type Assign struct {
	Name  string
	Value Word
}

// RedirOp is the kind of a redirection.
type RedirOp int

const (
	RedirIn        RedirOp = iota // N< file (N defaults to 0)
	RedirOut                      // N> file (N defaults to 1); >| is the same
	RedirAppend                   // N>> file
	RedirDup                      // N>&M or N<&M: N becomes a copy of M
	RedirAll                      // &> file or >& file: stdout and stderr
	RedirAllAppend                // &>> file
)

// Redirect is one redirection of a command.
type Redirect struct {
	Fd     int // the descriptor it changes
	Op     RedirOp
	Target Word // the file (not for RedirDup)
	DupFd  int  // RedirDup's source descriptor
	Col    int
}

// Word is a word of the line, as parts to be expanded and joined.
type Word []WordPart

// WordPart is literal text, a variable, or a special parameter.
type WordPart struct {
	Lit string
	// Param is a special parameter: '?', '!', '$', '#', '@', '*' or a
	// digit.
	Param byte
	// Var names a variable ($NAME, ${NAME}).
	Var string
	// Len: ${#NAME}, the length of Var (or of Param).
	Len bool
	// Quoted: the part was quoted (or backslash-escaped), so it is
	// neither split into fields nor globbed.
	Quoted bool
}

func (p WordPart) isLit() bool { return p.Param == 0 && p.Var == "" }

// Lit returns a word that is the literal text s.
func Lit(s string) Word { return Word{{Lit: s, Quoted: true}} }

// SyntaxError is a malformed line; Col is the 1-based column (in
// characters) where the parser found the problem.
type SyntaxError struct {
	Col int
	Msg string
	// Incomplete: the line ended inside a quote, after a trailing
	// backslash, or after | && or ||: more lines may complete it.
	Incomplete bool
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("rack: syntax error at column %d: %s", e.Col, e.Msg)
}

// token kinds
type tokKind int

const (
	tWord tokKind = iota
	tPipe
	tRedir
	tAmp  // &
	tSemi // ;
	tAnd  // &&
	tOr   // ||
	tNewline
	tEOF
)

func (k tokKind) String() string {
	return [...]string{"word", "|", "redirection", "&", ";", "&&", "||", "newline", "end of line"}[k]
}

type token struct {
	kind  tokKind
	word  Word
	col   int
	redir Redirect // tRedir
	op    string   // tRedir: the operator as written
}

// lexer splits a line into tokens.
type lexer struct {
	s   string
	pos int // byte offset
	col int // 1-based column of pos, in characters
}

func (l *lexer) peek() (rune, int) {
	if l.pos >= len(l.s) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(l.s[l.pos:])
}

func (l *lexer) advance(size int) {
	l.pos += size
	l.col++
}

// skipBytes advances over n ASCII bytes.
func (l *lexer) skipBytes(n int) {
	for i := 0; i < n; i++ {
		l.advance(1)
	}
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

// isSpace: the blanks between tokens (a newline is a token).
func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' }

// isOperatorStart: the runes that end an unquoted word.
func isOperatorStart(r rune) bool { return strings.ContainsRune("|&;<>()", r) }

// next returns the next token, or a syntax error.
func (l *lexer) next() (token, error) {
	for {
		r, n := l.peek()
		if r == -1 {
			return token{kind: tEOF, col: l.col}, nil
		}
		if !isSpace(r) {
			break
		}
		l.advance(n)
	}
	col := l.col
	rest := l.s[l.pos:]
	r, n := l.peek()
	switch r {
	case '\n':
		l.advance(n)
		return token{kind: tNewline, col: col}, nil
	case '#':
		// A comment runs to the end of the line.
		for {
			r, n := l.peek()
			if r == -1 || r == '\n' {
				break
			}
			l.advance(n)
		}
		return l.next()
	case '|':
		if strings.HasPrefix(rest, "||") {
			l.skipBytes(2)
			return token{kind: tOr, col: col}, nil
		}
		l.advance(n)
		return token{kind: tPipe, col: col}, nil
	case '&':
		switch {
		case strings.HasPrefix(rest, "&&"):
			l.skipBytes(2)
			return token{kind: tAnd, col: col}, nil
		case strings.HasPrefix(rest, "&>>"):
			l.skipBytes(3)
			return token{kind: tRedir, col: col, op: "&>>", redir: Redirect{Fd: 1, Op: RedirAllAppend, Col: col}}, nil
		case strings.HasPrefix(rest, "&>"):
			l.skipBytes(2)
			return token{kind: tRedir, col: col, op: "&>", redir: Redirect{Fd: 1, Op: RedirAll, Col: col}}, nil
		}
		l.advance(n)
		return token{kind: tAmp, col: col}, nil
	case ';':
		if strings.HasPrefix(rest, ";;") {
			return token{}, &SyntaxError{Col: col, Msg: "unexpected ;; (case is not supported)"}
		}
		l.advance(n)
		return token{kind: tSemi, col: col}, nil
	case '(', ')':
		return token{}, &SyntaxError{Col: col, Msg: fmt.Sprintf("unexpected %c (subshells and functions are not supported)", r)}
	case '<', '>':
		return l.redirect(col, -1, 0)
	}
	// An io number: digits right before < or >.
	if r >= '0' && r <= '9' {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i < len(rest) && (rest[i] == '<' || rest[i] == '>') {
			fd, err := strconv.Atoi(rest[:i])
			if err != nil || fd > 1<<20 {
				return token{}, &SyntaxError{Col: col, Msg: fmt.Sprintf("file descriptor %s out of range", rest[:i])}
			}
			return l.redirect(col, fd, i)
		}
	}
	w, err := l.word()
	if err != nil {
		return token{}, err
	}
	return token{kind: tWord, word: w, col: col}, nil
}

// redirect lexes a redirection operator at col, after skip bytes of io
// number fd (-1: none).
func (l *lexer) redirect(col, fd, skip int) (token, error) {
	l.skipBytes(skip)
	rest := l.s[l.pos:]
	def := func(d int) int {
		if fd < 0 {
			return d
		}
		return fd
	}
	var op string
	var rd Redirect
	switch {
	case strings.HasPrefix(rest, "<<"):
		return token{}, &SyntaxError{Col: col, Msg: "here-documents (<<) are not supported"}
	case strings.HasPrefix(rest, "<>"):
		return token{}, &SyntaxError{Col: col, Msg: "<> is not supported"}
	case strings.HasPrefix(rest, ">>"):
		op, rd = ">>", Redirect{Fd: def(1), Op: RedirAppend}
	case strings.HasPrefix(rest, ">&"), strings.HasPrefix(rest, "<&"):
		op = rest[:2]
		d := 0
		if op == ">&" {
			d = 1
		}
		rd = Redirect{Fd: def(d), Op: RedirDup}
	case strings.HasPrefix(rest, ">|"):
		op, rd = ">|", Redirect{Fd: def(1), Op: RedirOut}
	case strings.HasPrefix(rest, ">"):
		op, rd = ">", Redirect{Fd: def(1), Op: RedirOut}
	default:
		op, rd = "<", Redirect{Fd: def(0), Op: RedirIn}
	}
	l.skipBytes(len(op))
	rd.Col = col
	if rd.Op == RedirDup {
		// The source: digits (then a blank or an operator), or, for a bare
		// >&, a file name (as &>).
		save := *l
		for {
			r, n := l.peek()
			if r == -1 || !isBlank(r) {
				break
			}
			l.advance(n)
		}
		rest := l.s[l.pos:]
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i > 0 && (i == len(rest) || isBlank(rune(rest[i])) || isOperatorStart(rune(rest[i]))) {
			m, err := strconv.Atoi(rest[:i])
			if err != nil || m > 1<<20 {
				return token{}, &SyntaxError{Col: l.col, Msg: fmt.Sprintf("file descriptor %s out of range", rest[:i])}
			}
			l.skipBytes(i)
			rd.DupFd = m
			return token{kind: tRedir, col: col, op: op, redir: rd}, nil
		}
		if strings.HasPrefix(rest, "-") {
			return token{}, &SyntaxError{Col: l.col, Msg: op + "- (closing a descriptor) is not supported"}
		}
		*l = save
		if op == "<&" || fd >= 0 {
			return token{}, &SyntaxError{Col: l.col, Msg: op + " needs a file descriptor number"}
		}
		rd.Op = RedirAll
	}
	return token{kind: tRedir, col: col, op: op, redir: rd}, nil
}

// word reads one word up to an unquoted blank or operator.
func (l *lexer) word() (Word, error) {
	var w Word
	var lit strings.Builder
	litQuoted := false
	// add appends lit text with the given quoting, merging with the
	// previous literal of the same quoting.
	add := func(s string, quoted bool) {
		if s == "" {
			// "" or '': an empty quoted part, so that ''$E is a field.
			if lit.Len() == 0 {
				w = append(w, WordPart{Quoted: true})
			}
			return
		}
		if lit.Len() > 0 && litQuoted != quoted {
			w = append(w, WordPart{Lit: lit.String(), Quoted: litQuoted})
			lit.Reset()
		}
		litQuoted = quoted
		lit.WriteString(s)
	}
	flush := func() {
		if lit.Len() > 0 {
			w = append(w, WordPart{Lit: lit.String(), Quoted: litQuoted})
			lit.Reset()
		}
	}
	quoted := false // an empty "" or '' is still a word
	start := l.pos
	for {
		r, n := l.peek()
		switch {
		case r == -1 || isBlank(r) || isOperatorStart(r):
			flush()
			if len(w) == 0 && quoted {
				w = Word{{Lit: "", Quoted: true}}
			}
			return w, nil
		case r == utf8.RuneError && n == 1:
			return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
		case r == 0:
			return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
		case r == '~' && l.pos == start:
			// ~ and ~/...: $HOME (~user is left as it is).
			next := ""
			if l.pos+1 < len(l.s) {
				next = l.s[l.pos+1 : l.pos+2]
			}
			l.advance(n)
			if next == "" || next == "/" || isBlank(rune(next[0])) || isOperatorStart(rune(next[0])) {
				w = append(w, WordPart{Var: "HOME", Quoted: true})
			} else {
				add("~", false)
			}
		case r == '`':
			return nil, &SyntaxError{Col: l.col, Msg: "command substitution (`...`) is not supported"}
		case r == '\\':
			col := l.col
			l.advance(n)
			r2, n2 := l.peek()
			if r2 == -1 {
				return nil, &SyntaxError{Col: col, Msg: "backslash at end of line", Incomplete: true}
			}
			if r2 == utf8.RuneError && n2 == 1 {
				return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
			}
			if r2 == 0 {
				return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
			}
			l.advance(n2)
			if r2 == '\n' {
				continue // a line continuation
			}
			add(string(r2), true)
		case r == '\'':
			col := l.col
			quoted = true
			l.advance(n)
			var s strings.Builder
			for {
				r2, n2 := l.peek()
				if r2 == -1 {
					return nil, &SyntaxError{Col: col, Msg: "unterminated single quote", Incomplete: true}
				}
				if r2 == utf8.RuneError && n2 == 1 {
					return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
				}
				if r2 == 0 {
					return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
				}
				l.advance(n2)
				if r2 == '\'' {
					break
				}
				s.WriteRune(r2)
			}
			add(s.String(), true)
		case r == '$' && strings.HasPrefix(l.s[l.pos:], "$'"):
			quoted = true
			s, err := l.ansiC()
			if err != nil {
				return nil, err
			}
			add(s, true)
		case r == '"':
			col := l.col
			quoted = true
			l.advance(n)
		dq:
			for {
				r2, n2 := l.peek()
				switch {
				case r2 == -1:
					return nil, &SyntaxError{Col: col, Msg: "unterminated double quote", Incomplete: true}
				case r2 == utf8.RuneError && n2 == 1:
					return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
				case r2 == 0:
					return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
				case r2 == '"':
					l.advance(n2)
					break dq
				case r2 == '`':
					return nil, &SyntaxError{Col: l.col, Msg: "command substitution (`...`) is not supported"}
				case r2 == '\\':
					l.advance(n2)
					r3, n3 := l.peek()
					switch r3 {
					case '"', '\\', '$', '`':
						add(string(r3), true)
						l.advance(n3)
					case '\n':
						l.advance(n3) // a line continuation
					default:
						add(`\`, true) // kept, as in sh; the next rune is read normally
					}
				case r2 == '$':
					part, ok, err := l.param(true)
					if err != nil {
						return nil, err
					}
					if !ok {
						add("$", true)
						l.advance(1)
						continue
					}
					flush()
					w = append(w, part)
				default:
					add(string(r2), true)
					l.advance(n2)
				}
			}
		case r == '$':
			part, ok, err := l.param(false)
			if err != nil {
				return nil, err
			}
			if !ok {
				add("$", false)
				l.advance(1)
				continue
			}
			flush()
			w = append(w, part)
		default:
			add(string(r), false)
			l.advance(n)
		}
	}
}

// isNameStart and isNameChar: the characters of a variable name.
func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

// isSpecial: the special parameters.
func isSpecial(c byte) bool { return strings.IndexByte("?!$#@*", c) >= 0 || c >= '0' && c <= '9' }

// param lexes a parameter at a '$'; ok is false when the '$' is literal.
func (l *lexer) param(quoted bool) (WordPart, bool, error) {
	s := l.s[l.pos:]
	col := l.col
	if len(s) < 2 {
		return WordPart{}, false, nil
	}
	c := s[1]
	switch {
	case c == '(':
		return WordPart{}, false, &SyntaxError{Col: col, Msg: "command substitution and arithmetic ($(...)) are not supported"}
	case c == '[':
		return WordPart{}, false, &SyntaxError{Col: col, Msg: "arithmetic ($[...]) is not supported"}
	case isSpecial(c):
		l.skipBytes(2)
		return WordPart{Param: c, Quoted: quoted}, true, nil
	case isNameStart(c):
		i := 2
		for i < len(s) && isNameChar(s[i]) {
			i++
		}
		l.skipBytes(i)
		return WordPart{Var: s[1:i], Quoted: quoted}, true, nil
	case c == '{':
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return WordPart{}, false, &SyntaxError{Col: col, Msg: "unterminated ${"}
		}
		body := s[2:end]
		part := WordPart{Quoted: quoted}
		if strings.HasPrefix(body, "#") && len(body) > 1 {
			part.Len, body = true, body[1:]
		}
		switch {
		case len(body) == 1 && isSpecial(body[0]):
			part.Param = body[0]
		case body != "" && isNameStart(body[0]) && strings.IndexFunc(body, func(r rune) bool { return r > 127 || !isNameChar(byte(r)) }) < 0:
			part.Var = body
		default:
			return WordPart{}, false, &SyntaxError{Col: col, Msg: fmt.Sprintf("${%s}: bad substitution (only ${NAME} and ${#NAME} are supported)", body)}
		}
		// Columns count characters: the body is ASCII here.
		l.skipBytes(end + 1)
		return part, true, nil
	}
	return WordPart{}, false, nil
}

// ansiC lexes $'...', with bash's backslash escapes.
func (l *lexer) ansiC() (string, error) {
	col := l.col
	l.skipBytes(2)
	var b strings.Builder
	for {
		r, n := l.peek()
		switch {
		case r == -1:
			return "", &SyntaxError{Col: col, Msg: "unterminated $' quote", Incomplete: true}
		case r == utf8.RuneError && n == 1:
			return "", &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
		case r == 0:
			return "", &SyntaxError{Col: l.col, Msg: "NUL character"}
		case r == '\'':
			l.advance(n)
			if !utf8.ValidString(b.String()) {
				// \xHH and \NNN make bytes: an argument is UTF-8 (Spec.Args)
				return "", &SyntaxError{Col: col, Msg: "$' quote makes invalid UTF-8"}
			}
			return b.String(), nil
		case r != '\\':
			b.WriteRune(r)
			l.advance(n)
			continue
		}
		l.advance(n)
		r, n = l.peek()
		if r == -1 {
			return "", &SyntaxError{Col: col, Msg: "unterminated $' quote", Incomplete: true}
		}
		if simple, ok := map[rune]string{'n': "\n", 't': "\t", 'r': "\r", 'a': "\a", 'b': "\b", 'e': "\x1b", 'E': "\x1b",
			'f': "\f", 'v': "\v", '\\': "\\", '\'': "'", '"': "\"", '?': "?"}[r]; ok {
			b.WriteString(simple)
			l.advance(n)
			continue
		}
		// \NNN (octal) and \xHH.
		digits, base, max := "", 8, 3
		if r == 'x' {
			l.advance(n)
			base, max = 16, 2
		}
		for len(digits) < max {
			c, _ := l.peek()
			if c == -1 || !strings.ContainsRune("0123456789abcdefABCDEF"[:map[int]int{8: 8, 16: 22}[base]], c) {
				break
			}
			digits += string(c)
			l.advance(1)
		}
		if digits == "" {
			if base == 16 {
				b.WriteString(`\x`)
				continue
			}
			b.WriteByte('\\') // unknown escape: kept, as bash does
			continue
		}
		v, _ := strconv.ParseUint(digits, base, 16)
		if v == 0 {
			continue // a NUL ends the string in bash; here it is dropped
		}
		b.WriteByte(byte(v))
	}
}

// reserved are bash's compound-command words, refused as a command name.
var reserved = map[string]bool{"if": true, "then": true, "else": true, "elif": true, "fi": true, "do": true,
	"done": true, "case": true, "esac": true, "while": true, "until": true, "for": true, "select": true,
	"function": true, "{": true, "}": true, "[[": true, "]]": true, "time": true, "coproc": true}

// assignment splits a NAME=VALUE word; ok is false for other words.
func assignment(w Word) (Assign, bool) {
	if len(w) == 0 || !w[0].isLit() || w[0].Quoted {
		return Assign{}, false
	}
	name, val, ok := strings.Cut(w[0].Lit, "=")
	if !ok || name == "" || !isNameStart(name[0]) || strings.IndexFunc(name, func(r rune) bool { return r > 127 || !isNameChar(byte(r)) }) >= 0 {
		return Assign{}, false
	}
	v := Word{}
	if val == "~" && len(w) == 1 || strings.HasPrefix(val, "~/") {
		// NAME=~ and NAME=~/...: $HOME, as bash expands.
		v, val = append(v, WordPart{Var: "HOME", Quoted: true}), val[1:]
	}
	if val != "" {
		v = append(v, WordPart{Lit: val})
	}
	v = append(v, w[1:]...)
	return Assign{Name: name, Value: v}, true
}

// plain returns the word's text if it is unquoted literal text.
func (w Word) plain() (string, bool) {
	if len(w) != 1 || !w[0].isLit() || w[0].Quoted {
		return "", false
	}
	return w[0].Lit, true
}

// Parse parses one input line. It never panics; a malformed line gives a
// *SyntaxError that says where.
func Parse(s string) (*Line, error) {
	lx := &lexer{s: s, col: 1}
	line := &Line{}
	var pl *Pipeline
	var cmd *Command
	op := OpSeq // how the next pipeline joins the line
	andOr := 0  // pipelines in the current and-or list
	empty := func(c *Command) bool { return len(c.Args) == 0 && len(c.Assigns) == 0 && len(c.Redirs) == 0 }
	// endCommand checks that there is a command before the operator at.
	endCommand := func(at token) error {
		switch {
		case cmd != nil && !empty(cmd):
			cmd = nil
			return nil
		case pl != nil || op != OpSeq:
			return &SyntaxError{Col: at.col, Msg: fmt.Sprintf("missing command before %v", at.kind)}
		}
		return &SyntaxError{Col: at.col, Msg: fmt.Sprintf("unexpected %v", at.kind)}
	}
	begin := func(col int) {
		if pl == nil {
			pl = &Pipeline{Op: op}
			line.Pipelines = append(line.Pipelines, pl)
			op = OpSeq
			andOr++
		}
		if cmd == nil {
			cmd = &Command{Col: col}
			pl.Cmds = append(pl.Cmds, cmd)
		}
	}
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tWord:
			if s, ok := t.word.plain(); ok && (cmd == nil || empty(cmd)) {
				if s == "!" && pl == nil {
					begin(t.col)
					pl.Negate = true
					pl.Cmds, cmd = nil, nil
					continue
				}
				if reserved[s] {
					return nil, &SyntaxError{Col: t.col, Msg: fmt.Sprintf("%s: compound commands are not supported", s)}
				}
			}
			begin(t.col)
			if a, ok := assignment(t.word); ok && len(cmd.Args) == 0 {
				cmd.Assigns = append(cmd.Assigns, a)
				continue
			}
			cmd.Args = append(cmd.Args, t.word)
		case tRedir:
			begin(t.col)
			rd := t.redir
			if rd.Op != RedirDup { // a dup's number came with the operator
				target, err := lx.next()
				if err != nil {
					return nil, err
				}
				if target.kind != tWord {
					return nil, &SyntaxError{Col: target.col, Msg: fmt.Sprintf("%s needs a file name, found %v", t.op, target.kind)}
				}
				rd.Target = target.word
			}
			cmd.Redirs = append(cmd.Redirs, rd)
		case tPipe:
			if err := endCommand(t); err != nil {
				return nil, err
			}
		case tAnd, tOr:
			if err := endCommand(t); err != nil {
				return nil, err
			}
			pl = nil
			op = OpAnd
			if t.kind == tOr {
				op = OpOr
			}
		case tNewline:
			// Between commands, as ";"; after | && || (or before any
			// command), a line continuation.
			if cmd == nil || empty(cmd) || op != OpSeq {
				continue
			}
			t.kind = tSemi
			fallthrough
		case tAmp, tSemi:
			if err := endCommand(t); err != nil {
				return nil, err
			}
			if t.kind == tAmp {
				pl.Background = true
				if andOr > 1 {
					return nil, &SyntaxError{Col: t.col, Msg: "a list with && or || cannot run in the background (not supported)"}
				}
			}
			pl, andOr = nil, 0
		case tEOF:
			if op != OpSeq {
				return nil, &SyntaxError{Col: t.col, Msg: fmt.Sprintf("missing command after %s", map[ListOp]string{OpAnd: "&&", OpOr: "||"}[op]), Incomplete: true}
			}
			if pl != nil && len(pl.Cmds) == 0 {
				return nil, &SyntaxError{Col: t.col, Msg: "missing command after !"}
			}
			if pl != nil && (cmd == nil || empty(cmd)) {
				// "a |" at the end: nothing to run.
				return nil, &SyntaxError{Col: t.col, Msg: "missing command after |", Incomplete: true}
			}
			return line, nil
		}
	}
}
