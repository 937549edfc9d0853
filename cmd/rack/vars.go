package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// vars are the shell's variables.
//
// The shell starts with the environment it was given as variables, so
// $HOME and $PATH expand, but it does not pass them on: a rack child's
// environment (rack.Spec.Env) is stored in its process record in the
// namespace's object store, where a credential (OS_PASSWORD, a token) must
// never land. Only what the user exports in the shell (export NAME=VALUE,
// export NAME) and NAME=VALUE prefixes of a command reach children.
type vars struct {
	mu sync.Mutex
	m  map[string]*variable
}

type variable struct {
	value    string
	set      bool // export NAME of an unset NAME marks it without setting it
	exported bool
}

func newVars() *vars { return &vars{m: make(map[string]*variable)} }

// lookup returns a variable's value.
func (v *vars) lookup(name string) (string, bool) {
	if v == nil { // a shell made without newShell
		return "", false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	x, ok := v.m[name]
	if !ok || !x.set {
		return "", false
	}
	return x.value, true
}

// set sets a variable (keeping its export mark).
func (v *vars) set(name, value string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	x := v.m[name]
	if x == nil {
		x = &variable{}
		v.m[name] = x
	}
	x.value, x.set = value, true
}

// export marks a variable for the children's environment.
func (v *vars) export(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	x := v.m[name]
	if x == nil {
		x = &variable{}
		v.m[name] = x
	}
	x.exported = true
}

// unset removes a variable.
func (v *vars) unset(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, name)
}

// environ returns the exported variables that are set, with extra (a
// command's NAME=VALUE prefixes) on top; nil if there are none.
func (v *vars) environ(extra map[string]string) map[string]string {
	if v == nil {
		return extra
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var env map[string]string
	for name, x := range v.m {
		if x.exported && x.set {
			if env == nil {
				env = make(map[string]string)
			}
			env[name] = x.value
		}
	}
	for name, val := range extra {
		if env == nil {
			env = make(map[string]string)
		}
		env[name] = val
	}
	return env
}

// knownEnv are variables the shell reads from its environment even when
// getenv is not the process's own (in tests).
var knownEnv = []string{"HOME", "PATH", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "PWD", "TMPDIR",
	"XDG_STATE_HOME", "RACK_URL", "RACK_APPS"}

// environVars returns the shell's starting variables: each name of the
// process environment and of knownEnv, with its value from getenv (which
// is os.Getenv outside tests; a name getenv does not know is left out).
func environVars(getenv func(string) string) *vars {
	v := newVars()
	seen := map[string]bool{}
	add := func(name, osValue string) {
		if seen[name] || name == "" {
			return
		}
		seen[name] = true
		val := getenv(name)
		if val == "" && osValue != "" {
			return // getenv does not have it
		}
		if val == "" && osValue == "" {
			if _, ok := os.LookupEnv(name); !ok {
				return
			}
		}
		v.set(name, val)
	}
	for _, kv := range os.Environ() {
		name, val, _ := strings.Cut(kv, "=")
		add(name, val)
	}
	for _, name := range knownEnv {
		add(name, os.Getenv(name))
	}
	return v
}

// validName reports whether s is a variable name.
func validName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

// builtinExport: export [NAME[=VALUE]...]; alone, lists the exported
// variables.
func builtinExport(_ context.Context, e *builtinEnv, args []string) int {
	if len(args) > 0 && args[0] == "-p" {
		args = args[1:]
	}
	v := e.vars()
	if len(args) == 0 {
		env := e.sh.vars.environ(nil)
		names := make([]string, 0, len(env))
		for n := range env {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(e.stdout, "export %s=%s\n", n, quoteArg(env[n]))
		}
		return 0
	}
	status := 0
	for _, a := range args {
		name, val, hasVal := strings.Cut(a, "=")
		if !validName(name) {
			status = e.errorf("export: `%s': not a valid identifier", a)
			continue
		}
		if hasVal {
			v.set(name, val)
		}
		v.export(name)
	}
	return status
}

// builtinUnset: unset NAME...
func builtinUnset(_ context.Context, e *builtinEnv, args []string) int {
	if len(args) > 0 && (args[0] == "-v") {
		args = args[1:]
	}
	status := 0
	for _, a := range args {
		if !validName(a) {
			status = e.errorf("unset: `%s': not a valid identifier", a)
			continue
		}
		e.vars().unset(a)
	}
	return status
}

// vars returns the variables a builtin changes: the shell's, or, in a
// pipeline (a subshell in bash), a throwaway copy.
func (e *builtinEnv) vars() *vars {
	if e.inPipeline {
		return newVars()
	}
	return e.sh.vars
}
