package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// render shows a parsed line compactly: pipelines separated by ";" (or
// "&" when in the background), commands by "|", words in brackets.
func render(l *Line, p Params) string {
	var b strings.Builder
	for _, pl := range l.Pipelines {
		for i, c := range pl.Cmds {
			if i > 0 {
				b.WriteString(" | ")
			}
			for j, w := range c.Args {
				if j > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "[%s]", w.Expand(p))
			}
			if c.Stdin != nil {
				fmt.Fprintf(&b, " <[%s]", c.Stdin.Expand(p))
			}
			if c.Stdout != nil {
				op := ">"
				if c.Append {
					op = ">>"
				}
				fmt.Fprintf(&b, " %s[%s]", op, c.Stdout.Expand(p))
			}
		}
		if pl.Background {
			b.WriteString(" &")
		}
		b.WriteString(";")
	}
	return b.String()
}

func TestParse(t *testing.T) {
	p := Params{Status: 7, LastBG: 123}
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
		{"a > /x/y", "[a] >[/x/y];"},
		{"a>/x/y", "[a] >[/x/y];"},
		{"a >> /x/y", "[a] >>[/x/y];"},
		{"a < /x/y | b > /x/z", "[a] <[/x/y] | [b] >[/x/z];"},
		{"> /x/y a b", "[a] [b] >[/x/y];"},
		{"a &", "[a] &;"},
		{"a & b", "[a] &;[b];"},
		{"a; b;", "[a];[b];"},
		{"a ; b & c", "[a];[b] &;[c];"},
		{`'single quoted | > $?'`, "[single quoted | > $?];"},
		{`"double $? \" \\ \$ \x"`, `[double 7 " \ $ \x];`},
		{`a\ b \| \$? \\`, `[a b] [|] [$?] [\];`},
		{`''`, "[];"},
		{`"" x`, "[] [x];"},
		{`a''b"c"d`, "[abcd];"},
		{"echo $? x$?y", "[echo] [7] [x7y];"},
		{"kill -INT $!", "[kill] [-INT] [123];"},
		{"echo $ $x $", "[echo] [$] [$x] [$];"},
		{"echo a # b | c", "[echo] [a];"},
		{"echo a#b", "[echo] [a#b];"},
		{"héllo wörld", "[héllo] [wörld];"},
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
		{"a || b", 3, "|| is not supported"},
		{"a && b", 3, "&& is not supported"},
		{"; a", 1, "unexpected ;"},
		{"a ;; b", 4, "unexpected ;"},
		{"& a", 1, "unexpected &"},
		{"echo 'abc", 6, "unterminated single quote"},
		{`echo "abc`, 6, "unterminated double quote"},
		{`echo abc\`, 9, "backslash at end of line"},
		{"a >", 4, "> needs a file name, found end of line"},
		{"a > | b", 5, "> needs a file name, found |"},
		{"a < ;", 5, "< needs a file name, found ;"},
		{"> /x/y", 1, "redirection without a command"},
		{"a > /x/y > /x/z", 10, "more than one > redirection"},
		{"a < /x < /y", 8, "more than one < redirection"},
		{"a > /x/y | b", 12, "> and | both give the output of the same command"},
		{"a | b < /x/y", 5, "< and | both give the input of the same command"},
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

// FuzzParse checks that Parse never panics, that errors point inside the
// line, and that a line made of the parsed words, quoted again, parses to
// the same words.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a | b > /x/y; c < /x/y &", `echo "$?" '$!' \x`, "a >> b", "|", `"`} {
		f.Add(s)
	}
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
		p := Params{Status: 3, LastBG: 42}
		for _, pl := range l.Pipelines {
			if len(pl.Cmds) == 0 {
				t.Fatalf("Parse(%q): empty pipeline", s)
			}
			for _, c := range pl.Cmds {
				if len(c.Args) == 0 {
					t.Fatalf("Parse(%q): command without words", s)
				}
				var q []string
				for _, w := range c.Args {
					q = append(q, quoteArg(w.Expand(p)))
				}
				again, err := Parse(strings.Join(q, " "))
				if err != nil || len(again.Pipelines) != 1 || len(again.Pipelines[0].Cmds) != 1 {
					t.Fatalf("Parse(%q): requoted %q: %v", s, strings.Join(q, " "), err)
				}
				for i, w := range again.Pipelines[0].Cmds[0].Args {
					if got, want := w.Expand(p), c.Args[i].Expand(p); got != want {
						t.Fatalf("Parse(%q): requoted word %d = %q, want %q", s, i, got, want)
					}
				}
			}
		}
	})
}
