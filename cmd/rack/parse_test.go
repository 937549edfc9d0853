package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

// render shows a parsed line compactly: pipelines separated by ";" (or
// "&" when in the background; && and || before the ones they join),
// commands by "|", fields in brackets (as expanded with p, without
// globbing), redirections as FD OP [TARGET].
func render(l *Line, p Params) string {
	var b strings.Builder
	for _, pl := range l.Pipelines {
		switch pl.Op {
		case OpAnd:
			b.WriteString("&& ")
		case OpOr:
			b.WriteString("|| ")
		}
		if pl.Negate {
			b.WriteString("! ")
		}
		for i, c := range pl.Cmds {
			if i > 0 {
				b.WriteString(" | ")
			}
			var parts []string
			for _, a := range c.Assigns {
				parts = append(parts, fmt.Sprintf("%s=[%s]", a.Name, a.Value.Expand(p)))
			}
			for _, f := range Fields(c.Args, p, nil) {
				parts = append(parts, "["+f+"]")
			}
			for _, r := range c.Redirs {
				op := map[RedirOp]string{RedirIn: "<", RedirOut: ">", RedirAppend: ">>", RedirDup: ">&", RedirAll: "&>", RedirAllAppend: "&>>"}[r.Op]
				switch r.Op {
				case RedirDup:
					parts = append(parts, fmt.Sprintf("%d>&%d", r.Fd, r.DupFd))
				case RedirAll, RedirAllAppend:
					parts = append(parts, fmt.Sprintf("%s[%s]", op, r.Target.Expand(p)))
				default:
					parts = append(parts, fmt.Sprintf("%d%s[%s]", r.Fd, op, r.Target.Expand(p)))
				}
			}
			b.WriteString(strings.Join(parts, " "))
		}
		if pl.Background {
			b.WriteString(" &")
		}
		b.WriteString(";")
	}
	return b.String()
}

// testParams are the parameters the parser tests expand with.
func testParams() Params {
	vars := map[string]string{"X": "a  b", "E": "", "HOME": "/home/u", "S": " lead trail "}
	return Params{Status: 7, LastBG: 123, PID: 55, Lookup: func(n string) (string, bool) {
		v, ok := vars[n]
		return v, ok
	}}
}

func TestParse(t *testing.T) {
	p := testParams()
	tests := []struct{ in, want string }{
		{"", ""},
		{"   \t ", ""},
		{"# only a comment", ""},
		{"ps", "[ps];"},
		{"ps -f --json", "[ps] [-f] [--json];"},
		{"montecarlo --trials 1000000 --workers 10 --stdout /output/result.txt",
			"[montecarlo] [--trials] [1000000] [--workers] [10] [--stdout] [/output/result.txt];"},
		{"a | b | c", "[a] | [b] | [c];"},
		{"a|b", "[a] | [b];"},
		{"a > /x/y", "[a] 1>[/x/y];"},
		{"a>/x/y", "[a] 1>[/x/y];"},
		{"a >> /x/y", "[a] 1>>[/x/y];"},
		{"a >| /x/y", "[a] 1>[/x/y];"},
		{"a < /x/y | b > /x/z", "[a] 0<[/x/y] | [b] 1>[/x/z];"},
		{"> /x/y a b", "[a] [b] 1>[/x/y];"},
		{"> /x/y", "1>[/x/y];"},
		{"a > /x/y | b", "[a] 1>[/x/y] | [b];"},
		{"a > /x/y > /x/z", "[a] 1>[/x/y] 1>[/x/z];"},
		{"a &", "[a] &;"},
		{"a & b", "[a] &;[b];"},
		{"a; b;", "[a];[b];"},
		{"a ; b & c", "[a];[b] &;[c];"},
		// && and ||: one flat list, each pipeline saying how it joins.
		{"a && b || c; d", "[a];&& [b];|| [c];[d];"},
		{"a&&b||c", "[a];&& [b];|| [c];"},
		{"! a | b && c", "! [a] | [b];&& [c];"},
		// Redirections of other descriptors, in order.
		{"echo hi 2> /x/e", "[echo] [hi] 2>[/x/e];"},
		{"echo hi 2>/x/e", "[echo] [hi] 2>[/x/e];"},
		{"echo hi2>/x/e", "[echo] [hi2] 1>[/x/e];"},
		{"echo 2 > /x/e", "[echo] [2] 1>[/x/e];"},
		{`echo "2">/x/e`, "[echo] [2] 1>[/x/e];"},
		{"ls /nope 2>&1 | cat", "[ls] [/nope] 2>&1 | [cat];"},
		{"a > /f 2>&1", "[a] 1>[/f] 2>&1;"},
		{"a 2>&1 >/f", "[a] 2>&1 1>[/f];"},
		{"a >&2", "[a] 1>&2;"},
		{"a 1>&2", "[a] 1>&2;"},
		{"a >& 2", "[a] 1>&2;"},
		{"a &> /f", "[a] &>[/f];"},
		{"a >& /f", "[a] &>[/f];"},
		{"a &>> /f", "[a] &>>[/f];"},
		{"a 2>> /f", "[a] 2>>[/f];"},
		{"a 0< /f", "[a] 0<[/f];"},
		// Quoting.
		{`'single quoted | > $?'`, "[single quoted | > $?];"},
		{`"double $? \" \\ \$ \x"`, `[double 7 " \ $ \x];`},
		{`a\ b \| \$? \\`, `[a b] [|] [$?] [\];`},
		{`''`, "[];"},
		{`"" x`, "[] [x];"},
		{`a''b"c"d`, "[abcd];"},
		{`$'a\tb\n\x41\101\'\\' $'\q'`, "[a\tb\nAA'\\] [\\q];"},
		{`$'\xc3\xa9\303\251'`, "[éé];"},
		{"echo $? x$?y", "[echo] [7] [x7y];"},
		{"kill -INT $!", "[kill] [-INT] [123];"},
		{"echo $ $x $", "[echo] [$] [$];"},
		{"echo a # b | c", "[echo] [a];"},
		{"echo a#b", "[echo] [a#b];"},
		{"héllo wörld", "[héllo] [wörld];"},
		// Variables, and splitting of unquoted ones.
		{"echo $X", "[echo] [a] [b];"},
		{`echo "$X" '$X' ${X}c "${X}"`, "[echo] [a  b] [$X] [a] [bc] [a  b];"},
		{"echo $E x$E \"$E\" ''$E", "[echo] [x] [] [];"},
		{"echo $S.", "[echo] [lead] [trail] [.];"},
		{"echo ${#X} $$ $# $0 $1", "[echo] [4] [55] [0] [rack];"},
		{"echo ~ ~/x a~ ~u", "[echo] [/home/u] [/home/u/x] [a~] [~u];"},
		{"X=1 Y=\"a b\" cmd Z=2", "X=[1] Y=[a b] [cmd] [Z=2];"},
		{"X=$X", "X=[a  b];"},
		{"X= a", "X=[] [a];"},
		{"'X'=1 =1 1X=2", "[X=1] [=1] [1X=2];"},
		{"echo \\\nx", "[echo] [x];"},
		{"a\nb\n\nc", "[a];[b];[c];"},
		{"a &&\n b |\n c # x\nd", "[a];&& [b] | [c];[d];"},
		{"\n\na\n", "[a];"},
	}
	for _, tc := range tests {
		l, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := render(l, p); got != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		col int
		msg string
	}{
		{"| a", 1, "unexpected |"},
		{"a |", 4, "missing command after |"},
		{"a | | b", 5, "missing command before |"},
		{"a || || b", 6, "missing command before ||"},
		{"a &&", 5, "missing command after &&"},
		{"a ||", 5, "missing command after ||"},
		{"&& a", 1, "unexpected &&"},
		{"a && ; b", 6, "missing command before ;"},
		{"a && b &", 8, "a list with && or || cannot run in the background (not supported)"},
		{"; a", 1, "unexpected ;"},
		{"a ;; b", 3, "unexpected ;; (case is not supported)"},
		{"& a", 1, "unexpected &"},
		{"!", 2, "missing command after !"},
		{"echo 'abc", 6, "unterminated single quote"},
		{`echo "abc`, 6, "unterminated double quote"},
		{`echo $'abc`, 6, "unterminated $' quote"},
		{`echo $'\x80'`, 6, "$' quote makes invalid UTF-8"},
		{`echo abc\`, 9, "backslash at end of line"},
		{"a >", 4, "> needs a file name, found end of line"},
		{"a > | b", 5, "> needs a file name, found |"},
		{"a < ;", 5, "< needs a file name, found ;"},
		{"a 2> &", 6, "> needs a file name, found &"},
		{"a <&", 5, "<& needs a file descriptor number"},
		{"a 2>&x", 6, ">& needs a file descriptor number"},
		{"a >&-", 5, ">&- (closing a descriptor) is not supported"},
		{"a << EOF", 3, "here-documents (<<) are not supported"},
		{"echo $(ls)", 6, "command substitution and arithmetic ($(...)) are not supported"},
		{"echo `ls`", 6, "command substitution (`...`) is not supported"},
		{`echo "$(ls)"`, 7, "command substitution and arithmetic ($(...)) are not supported"},
		{"echo ${x:-y}", 6, "${x:-y}: bad substitution (only ${NAME} and ${#NAME} are supported)"},
		{"echo ${x", 6, "unterminated ${"},
		{"(a)", 1, "unexpected ( (subshells and functions are not supported)"},
		{"if true", 1, "if: compound commands are not supported"},
		{"a; for x", 4, "for: compound commands are not supported"},
		{"é | | b", 5, "missing command before |"},
		{"a\xffb", 2, "invalid UTF-8"},
		{"a\x00", 2, "NUL character"},
	}
	for _, tc := range tests {
		l, err := Parse(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, %v; want a syntax error", tc.in, l, err)
			continue
		}
		if se.Col != tc.col || se.Msg != tc.msg {
			t.Errorf("Parse(%q): column %d %q, want column %d %q", tc.in, se.Col, se.Msg, tc.col, tc.msg)
		}
		want := fmt.Sprintf("rack: syntax error at column %d: %s", tc.col, tc.msg)
		if err.Error() != want {
			t.Errorf("Parse(%q): %q, want %q", tc.in, err.Error(), want)
		}
	}
}

// FuzzParse checks the shell's parse and expand path: Parse never panics,
// its errors point inside the line; every word expands (with variables,
// field splitting and globbing over a small tree of rack paths) without
// panicking; and a line made of the expanded fields, quoted again, parses
// and expands to the same fields.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a | b > /x/y; c < /x/y &", `echo "$?" '$!' \x`, "a >> b", "|", `"`,
		"echo $X ${#X} /c/* /c/[ab]* && false || X=1 y 2>&1 >&2", "IFS=: echo $P", `echo $'\x41' ~/a`, `'if' x`, `"{" '!' x=1`} {
		f.Add(s)
	}
	fsys := fstest.MapFS{
		"c/a.txt": {Data: []byte("a")}, "c/b.txt": {Data: []byte("b")}, "c/.hidden": {},
		"c/d/e": {}, "other/x": {},
	}
	glob := globFS(fsys)
	vars := map[string]string{"X": "a b*", "P": "/c/*:x", "IFS": " :"}
	p := Params{Status: 3, LastBG: 42, PID: 7, Lookup: func(n string) (string, bool) { v, ok := vars[n]; return v, ok }}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): %v is not a *SyntaxError", s, err)
			}
			if se.Col < 1 || se.Col > utf8.RuneCountInString(s)+1 {
				t.Fatalf("Parse(%q): column %d outside the line", s, se.Col)
			}
			return
		}
		for _, pl := range l.Pipelines {
			if len(pl.Cmds) == 0 {
				t.Fatalf("Parse(%q): empty pipeline", s)
			}
			for _, c := range pl.Cmds {
				if len(c.Args) == 0 && len(c.Assigns) == 0 && len(c.Redirs) == 0 {
					t.Fatalf("Parse(%q): empty command", s)
				}
				for _, r := range c.Redirs {
					Fields([]Word{r.Target}, p, glob)
				}
				for _, a := range c.Assigns {
					a.Value.Expand(p)
				}
				fields := Fields(c.Args, p, glob)
				if len(fields) == 0 {
					continue
				}
				var q []string
				for _, w := range fields {
					q = append(q, quoteArg(w))
				}
				again, err := Parse(strings.Join(q, " "))
				if err != nil {
					t.Fatalf("Parse(%q): requoted %q: %v", s, strings.Join(q, " "), err)
				}
				var got []string
				for _, pl := range again.Pipelines {
					for _, c := range pl.Cmds {
						for _, a := range c.Assigns { // NAME=... requoted stays a word only when quoted
							got = append(got, a.Name+"="+a.Value.Expand(p))
						}
						got = append(got, Fields(c.Args, p, glob)...)
					}
				}
				if strings.Join(got, "\x00") != strings.Join(fields, "\x00") {
					t.Fatalf("Parse(%q): fields %q, requoted %q gives %q", s, fields, strings.Join(q, " "), got)
				}
			}
		}
	})
}

func TestGlobFS(t *testing.T) {
	fsys := fstest.MapFS{
		"c/a.txt": {}, "c/b.txt": {}, "c/.hidden": {}, "c/d/e": {}, "c/d/f.txt": {}, "other/x": {},
		"c/[x]": {},
	}
	g := globFS(fsys)
	tests := []struct {
		pat  string
		want []string
	}{
		{"/c/*", []string{"/c/[x]", "/c/a.txt", "/c/b.txt", "/c/d"}},
		{"/c/*.txt", []string{"/c/a.txt", "/c/b.txt"}},
		{"/c/.*", []string{"/c/.hidden"}},
		{"/*/x", []string{"/other/x"}},
		{"/*", []string{"/c", "/other"}},
		{"/c/*/*.txt", []string{"/c/d/f.txt"}},
		{"/c/[ab].txt", []string{"/c/a.txt", "/c/b.txt"}},
		{"/c/?.txt", []string{"/c/a.txt", "/c/b.txt"}},
		{`/c/\[x]`, []string{"/c/[x]"}},
		{"/c/*.none", nil},
		{"/nope/*", nil},
		{"c/*", nil}, // relative: no working directory
		{"/c//*", nil},
	}
	for _, tc := range tests {
		got, _ := g(tc.pat)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("glob(%q) = %q, want %q", tc.pat, got, tc.want)
		}
	}
	// Quoted metacharacters and unmatched patterns stay as written.
	p := testParams()
	for in, want := range map[string]string{
		`echo /c/*.txt "/c/*.txt" /c/\*.txt '/c/*'.txt /none/*`: "echo /c/a.txt /c/b.txt /c/*.txt /c/*.txt /c/*.txt /none/*",
		`echo /c/[`: "echo /c/[",
	} {
		l, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(Fields(l.Pipelines[0].Cmds[0].Args, p, g), " "); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
