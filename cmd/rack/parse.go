package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The shell's grammar, a small subset of the POSIX shell's:
//
//	line     = [ pipeline { ( ";" | "&" ) pipeline } [ ";" | "&" ] ] [ "#" comment ]
//	pipeline = command { "|" command }
//	command  = { word | redirect }          (at least one word)
//	redirect = ( ">" | ">>" | "<" ) word
//
// A word is made of unquoted characters, 'single-quoted' text (taken
// literally), "double-quoted" text (where \ escapes " \ $ and `) and
// backslash escapes. Outside single quotes, $? expands to the exit status
// of the last command and $! to the pid of the last background job. Words
// are split only at unquoted blanks.

// Line is a parsed input line: the pipelines to run, in order.
type Line struct {
	Pipelines []*Pipeline
}

// Pipeline is one or more commands connected by pipes.
type Pipeline struct {
	Cmds []*Command
	// Background: the pipeline ended with "&" and is not waited for.
	Background bool
}

// Command is one simple command: its words and redirections.
type Command struct {
	Args   []Word
	Stdin  *Word // < PATH
	Stdout *Word // > PATH or >> PATH
	// Append: the stdout redirection was >> (which rack refuses to run).
	Append bool
	// Col is the column (1-based, in characters) where the command starts.
	Col int
}

// Word is a word of the line, as parts to be joined once $? and $! are
// known.
type Word []WordPart

// WordPart is literal text, or a parameter: '?' for $?, '!' for $!.
type WordPart struct {
	Lit   string
	Param byte
}

// Params are the values of the shell's parameters.
type Params struct {
	Status int   // $?
	LastBG int64 // $!; 0 expands to the empty string
}

// Expand joins the word's parts, replacing the parameters.
func (w Word) Expand(p Params) string {
	var b strings.Builder
	for _, part := range w {
		switch part.Param {
		case '?':
			fmt.Fprint(&b, p.Status)
		case '!':
			if p.LastBG != 0 {
				fmt.Fprint(&b, p.LastBG)
			}
		default:
			b.WriteString(part.Lit)
		}
	}
	return b.String()
}

// Lit returns a word that is the literal text s.
func Lit(s string) Word { return Word{{Lit: s}} }

// SyntaxError is a malformed line; Col is the 1-based column (in
// characters) where the parser found the problem.
type SyntaxError struct {
	Col int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("rack: syntax error at column %d: %s", e.Col, e.Msg)
}

// token kinds
type tokKind int

const (
	tWord tokKind = iota
	tPipe
	tOut    // >
	tAppend // >>
	tIn     // <
	tAmp    // &
	tSemi   // ;
	tEOF
)

func (k tokKind) String() string {
	return [...]string{"word", "|", ">", ">>", "<", "&", ";", "end of line"}[k]
}

type token struct {
	kind tokKind
	word Word
	col  int
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

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

// next returns the next token, or a syntax error.
func (l *lexer) next() (token, error) {
	for {
		r, n := l.peek()
		if r == -1 {
			return token{kind: tEOF, col: l.col}, nil
		}
		if !isBlank(r) {
			break
		}
		l.advance(n)
	}
	col := l.col
	r, n := l.peek()
	switch r {
	case '#':
		// A comment runs to the end of the line.
		for l.pos < len(l.s) {
			_, n := l.peek()
			l.advance(n)
		}
		return token{kind: tEOF, col: l.col}, nil
	case '|':
		l.advance(n)
		if r2, _ := l.peek(); r2 == '|' {
			return token{}, &SyntaxError{Col: col, Msg: "|| is not supported"}
		}
		return token{kind: tPipe, col: col}, nil
	case '&':
		l.advance(n)
		if r2, _ := l.peek(); r2 == '&' {
			return token{}, &SyntaxError{Col: col, Msg: "&& is not supported"}
		}
		return token{kind: tAmp, col: col}, nil
	case ';':
		l.advance(n)
		return token{kind: tSemi, col: col}, nil
	case '<':
		l.advance(n)
		return token{kind: tIn, col: col}, nil
	case '>':
		l.advance(n)
		if r2, n2 := l.peek(); r2 == '>' {
			l.advance(n2)
			return token{kind: tAppend, col: col}, nil
		}
		return token{kind: tOut, col: col}, nil
	}
	w, err := l.word()
	if err != nil {
		return token{}, err
	}
	return token{kind: tWord, word: w, col: col}, nil
}

// word reads one word up to an unquoted blank or operator.
func (l *lexer) word() (Word, error) {
	var w Word
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w = append(w, WordPart{Lit: lit.String()})
			lit.Reset()
		}
	}
	quoted := false // an empty "" or '' is still a word
	for {
		r, n := l.peek()
		switch {
		case r == -1 || isBlank(r) || strings.ContainsRune("|&;<>", r):
			flush()
			if len(w) == 0 && quoted {
				w = Word{{Lit: ""}}
			}
			return w, nil
		case r == utf8.RuneError && n == 1:
			return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
		case r == 0:
			return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
		case r == '\\':
			col := l.col
			l.advance(n)
			r2, n2 := l.peek()
			if r2 == -1 {
				return nil, &SyntaxError{Col: col, Msg: "backslash at end of line"}
			}
			if r2 == utf8.RuneError && n2 == 1 {
				return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
			}
			if r2 == 0 {
				return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
			}
			lit.WriteRune(r2)
			l.advance(n2)
		case r == '\'':
			col := l.col
			quoted = true
			l.advance(n)
			for {
				r2, n2 := l.peek()
				if r2 == -1 {
					return nil, &SyntaxError{Col: col, Msg: "unterminated single quote"}
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
				lit.WriteRune(r2)
			}
		case r == '"':
			col := l.col
			quoted = true
			l.advance(n)
		dq:
			for {
				r2, n2 := l.peek()
				switch {
				case r2 == -1:
					return nil, &SyntaxError{Col: col, Msg: "unterminated double quote"}
				case r2 == utf8.RuneError && n2 == 1:
					return nil, &SyntaxError{Col: l.col, Msg: "invalid UTF-8"}
				case r2 == 0:
					return nil, &SyntaxError{Col: l.col, Msg: "NUL character"}
				case r2 == '"':
					l.advance(n2)
					break dq
				case r2 == '\\':
					l.advance(n2)
					r3, n3 := l.peek()
					switch r3 {
					case '"', '\\', '$', '`':
						lit.WriteRune(r3)
						l.advance(n3)
					default:
						lit.WriteByte('\\') // kept, as in sh; the next rune is read normally
					}
				case r2 == '$' && isParam(l.s[l.pos:]):
					flush()
					w = append(w, WordPart{Param: l.s[l.pos+1]})
					l.advance(1)
					l.advance(1)
				default:
					lit.WriteRune(r2)
					l.advance(n2)
				}
			}
		case r == '$' && isParam(l.s[l.pos:]):
			flush()
			w = append(w, WordPart{Param: l.s[l.pos+1]})
			l.advance(1)
			l.advance(1)
		default:
			lit.WriteRune(r)
			l.advance(n)
		}
	}
}

// isParam reports whether s starts with $? or $!.
func isParam(s string) bool {
	return len(s) >= 2 && s[0] == '$' && (s[1] == '?' || s[1] == '!')
}

// Parse parses one input line. It never panics; a malformed line gives a
// *SyntaxError that says where.
func Parse(s string) (*Line, error) {
	lx := &lexer{s: s, col: 1}
	line := &Line{}
	var pl *Pipeline
	var cmd *Command
	// endCommand checks that the current command has a word.
	endCommand := func(at token) error {
		if cmd == nil && pl != nil {
			return &SyntaxError{Col: at.col, Msg: fmt.Sprintf("missing command before %v", at.kind)}
		}
		if cmd == nil {
			return &SyntaxError{Col: at.col, Msg: fmt.Sprintf("unexpected %v", at.kind)}
		}
		if len(cmd.Args) == 0 {
			return &SyntaxError{Col: at.col, Msg: fmt.Sprintf("missing command before %v", at.kind)}
		}
		cmd = nil
		return nil
	}
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tWord:
			if pl == nil {
				pl = &Pipeline{}
				line.Pipelines = append(line.Pipelines, pl)
			}
			if cmd == nil {
				cmd = &Command{Col: t.col}
				pl.Cmds = append(pl.Cmds, cmd)
			}
			cmd.Args = append(cmd.Args, t.word)
		case tIn, tOut, tAppend:
			target, err := lx.next()
			if err != nil {
				return nil, err
			}
			if target.kind != tWord {
				return nil, &SyntaxError{Col: target.col, Msg: fmt.Sprintf("%v needs a file name, found %v", t.kind, target.kind)}
			}
			if pl == nil {
				pl = &Pipeline{}
				line.Pipelines = append(line.Pipelines, pl)
			}
			if cmd == nil {
				cmd = &Command{Col: t.col}
				pl.Cmds = append(pl.Cmds, cmd)
			}
			w := target.word
			if t.kind == tIn {
				if cmd.Stdin != nil {
					return nil, &SyntaxError{Col: t.col, Msg: "more than one < redirection"}
				}
				cmd.Stdin = &w
			} else {
				if cmd.Stdout != nil {
					return nil, &SyntaxError{Col: t.col, Msg: "more than one > redirection"}
				}
				cmd.Stdout, cmd.Append = &w, t.kind == tAppend
			}
		case tPipe:
			if err := endCommand(t); err != nil {
				return nil, err
			}
		case tAmp, tSemi:
			if err := endCommand(t); err != nil {
				return nil, err
			}
			pl.Background = t.kind == tAmp
			pl = nil
		case tEOF:
			if cmd == nil && pl != nil {
				// "a |" at the end: the pipe has no right-hand side.
				return nil, &SyntaxError{Col: t.col, Msg: "missing command after |"}
			}
			if cmd != nil && len(cmd.Args) == 0 {
				return nil, &SyntaxError{Col: cmd.Col, Msg: "redirection without a command"}
			}
			for _, p := range line.Pipelines {
				for i, c := range p.Cmds {
					if c.Stdout != nil && i < len(p.Cmds)-1 {
						return nil, &SyntaxError{Col: p.Cmds[i+1].Col, Msg: "> and | both give the output of the same command"}
					}
					if c.Stdin != nil && i > 0 {
						return nil, &SyntaxError{Col: c.Col, Msg: "< and | both give the input of the same command"}
					}
				}
			}
			return line, nil
		}
	}
}
