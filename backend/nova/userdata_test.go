package nova

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rackfork/rack/backend"
)

// program is a stand-in for the staged executable: a shell script that
// writes each variable named in $CHECK to a file of that name in $OUT.
const program = `#!/bin/sh
for v in $CHECK; do eval "printf '%s' \"\$$v\"" > "$OUT/$v"; done
exit 7
`

// runScript renders s and runs it with sh, as cloud-init (or the
// emulator) would, with PATH set to path. It returns the exit status and
// the output.
func runScript(t *testing.T, s *script, path string) (int, string) {
	t.Helper()
	ud, err := s.render()
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	f := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(f, []byte(ud), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", f)
	// RACK_METADATA_URL marks an emulated VM: never power off the host.
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir(), "RACK_METADATA_URL=http://127.0.0.1:1/none"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("running the script: %v", err)
	return 0, ""
}

// TestScript runs bootstrap scripts: the environment arrives intact
// whatever its characters, with curl and with wget only; a bad digest or
// a failed download prints one rack-bootstrap line and exits 111.
func TestScript(t *testing.T) {
	sum := sha256.Sum256([]byte(program))
	digest := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bin/prog" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(program))
	}))
	defer srv.Close()

	values := map[string]string{
		"PLAIN":  "value",
		"QUOTES": `it's "quoted" \ back\slash`,
		"SHELL":  "$HOME `id` $(id) ${X:-y} ; | & > < * ? [a] ~ #",
		"LINES":  "one\ntwo\n\nthree\n",
		"UTF8":   "héllo wörld ✓",
		"EMPTY":  "",
	}
	var check []string
	for k := range values {
		check = append(check, k)
	}
	for _, tool := range []string{"curl", "wget"} {
		t.Run(tool, func(t *testing.T) {
			path := os.Getenv("PATH")
			if tool == "wget" {
				path = toolDir(t, "wget", "mktemp", "rm", "sha256sum", "chmod", "id", "sh")
			}
			out := t.TempDir()
			env := map[string]string{"CHECK": strings.Join(check, " "), "OUT": out}
			for k, v := range values {
				env[k] = v
			}
			code, console := runScript(t, &script{name: "t-1", url: srv.URL + "/bin/prog?sig=a&expires=1", sha256: digest, env: env}, path)
			if code != 7 {
				t.Fatalf("exit status %d, want the program's 7; console:\n%s", code, console)
			}
			if !strings.Contains(console, "rack-bootstrap: program exited with status 7") || bootstrapFailure(console) != "" {
				t.Errorf("console:\n%s", console)
			}
			for k, want := range values {
				got, err := os.ReadFile(filepath.Join(out, k))
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (%v), want %q", k, got, err, want)
				}
			}
		})
	}

	t.Run("mismatch", func(t *testing.T) {
		code, console := runScript(t, &script{name: "t-2", url: srv.URL + "/bin/prog", sha256: strings.Repeat("ab", 32)}, os.Getenv("PATH"))
		if f := bootstrapFailure(console); code != 111 || !strings.HasPrefix(f, "rack-bootstrap: digest mismatch: want abab") {
			t.Errorf("exit status %d, failure %q; console:\n%s", code, f, console)
		}
	})
	t.Run("download", func(t *testing.T) {
		code, console := runScript(t, &script{name: "t-3", url: srv.URL + "/bin/gone", sha256: digest}, os.Getenv("PATH"))
		if f := bootstrapFailure(console); code != 111 || !strings.HasPrefix(f, "rack-bootstrap: download failed") {
			t.Errorf("exit status %d, failure %q; console:\n%s", code, f, console)
		}
	})
}

// toolDir returns a directory of links to the named programs only.
func toolDir(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestScriptRefusals(t *testing.T) {
	ok := strings.Repeat("0", 64)
	for _, s := range []*script{
		{name: "a", url: "http://x", sha256: ok, env: map[string]string{"A": "x\x00y"}},
		{name: "a", url: "http://x", sha256: ok, env: map[string]string{"1A": "x"}},
		{name: "a", url: "http://x", sha256: ok, env: map[string]string{"A-B": "x"}},
		{name: "a", url: "http://x", sha256: ok, env: map[string]string{"": "x"}},
		{name: "a", url: "http://x", sha256: "ABC"},
		{name: "a", url: "http://x", sha256: strings.Repeat("G", 64)},
		{name: "a", url: "http://x\n; rm -rf /", sha256: ok},
		{name: "a\nb", url: "http://x", sha256: ok},
		{name: "a", url: "http://x", sha256: ok, env: map[string]string{"BIG": strings.Repeat("x", 60000)}},
	} {
		if _, err := s.render(); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("render(%+.60v): %v, want ErrInvalid", *s, err)
		}
	}
}

func TestBootstrapFailure(t *testing.T) {
	for console, want := range map[string]string{
		"":                 "",
		"booting\nhello\n": "",
		"[  12.3] rack-bootstrap: digest mismatch: want a, got b\n":                       "rack-bootstrap: digest mismatch: want a, got b",
		"rack-bootstrap: download failed: curl exit status 22\r\n":                        "rack-bootstrap: download failed: curl exit status 22",
		"rack-bootstrap: program exited with status 1\n":                                  "",
		"rack-bootstrap: download failed\nrack-bootstrap: program exited with status 0\n": "",
	} {
		if got := bootstrapFailure(console); got != want {
			t.Errorf("bootstrapFailure(%q) = %q, want %q", console, got, want)
		}
	}
}

func TestNamespaceTag(t *testing.T) {
	for ns, want := range map[string]string{
		"main":                  "rack-ns-main",
		"":                      "rack-ns-",
		"a/b":                   "rack-nsh-",
		"a,b":                   "rack-nsh-",
		strings.Repeat("x", 60): "rack-nsh-",
	} {
		got := namespaceTag(ns)
		if !strings.HasPrefix(got, want) || len(got) > 60 || strings.ContainsAny(got, ",/") {
			t.Errorf("namespaceTag(%q) = %q, want %q...", ns, got, want)
		}
	}
}
