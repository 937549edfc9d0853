package nova

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rackfork/rack/backend"
)

// bootstrapPrefix starts every line the bootstrap script writes to the
// console. A failure to fetch or check the program is one such line, as in
// "rack-bootstrap: digest mismatch: want ..., got ..."; the only other one
// is the exit line, "rack-bootstrap: program exited with status N".
const bootstrapPrefix = "rack-bootstrap: "

// exitLine starts the line the script writes once the program has ended.
const exitLine = bootstrapPrefix + "program exited with status "

// maxUserData is the most user-data Nova takes: 65535 bytes of base64.
const maxUserData = 65535 / 4 * 3

// script describes one bootstrap script.
type script struct {
	name     string            // the instance, for the comment line
	url      string            // where to GET the program
	sha256   string            // its digest, lower-case hex
	env      map[string]string // exported before the program runs
	poweroff bool              // power the VM off at the end (real clouds)
}

// render returns the POSIX sh script that cloud-init runs on the server:
// it downloads the program with curl (or wget) into a private directory,
// checks its SHA-256, exports the environment, runs the program and, on a
// real VM, powers it off once the program has ended, so that Nova shows the
// server SHUTOFF. A failed download or digest check prints one
// "rack-bootstrap: ..." line to the console and ends the script with status
// 111 (after the same power-off).
//
// Environment names must be shell identifiers and values must not hold NUL
// (which no environment can carry); values are single-quoted, so that no
// character in them is special to the shell.
func (s *script) render() (string, error) {
	if len(s.sha256) != 64 || strings.Trim(s.sha256, "0123456789abcdef") != "" {
		return "", fmt.Errorf("staged program digest %q is not a lower-case hex SHA-256: %w", s.sha256, backend.ErrInvalid)
	}
	if s.url == "" || strings.ContainsFunc(s.url, isControl) {
		return "", fmt.Errorf("staged program URL is empty or holds control characters: %w", backend.ErrInvalid)
	}
	if strings.ContainsFunc(s.name, isControl) {
		return "", fmt.Errorf("instance name %q holds control characters: %w", s.name, backend.ErrInvalid)
	}
	keys := make([]string, 0, len(s.env))
	for k, v := range s.env {
		if !isShellName(k) {
			return "", fmt.Errorf("environment variable name %q is not a shell identifier: %w", k, backend.ErrInvalid)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return "", fmt.Errorf("environment variable %s holds a NUL byte: %w", k, backend.ErrInvalid)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "# rack bootstrap of instance %s: fetch the program, check its SHA-256, run it.\n", s.name)
	b.WriteString(`# Written by github.com/rackfork/rack/backend/nova; it holds no credential.
umask 077
say() { printf 'rack-bootstrap: %s\n' "$*"; }
end() {
	[ -n "${dir:-}" ] && rm -rf "$dir"
`)
	if s.poweroff {
		// RACK_METADATA_URL is set only in an emulated VM, a local process
		// that must not power off its host.
		b.WriteString(`	if [ -z "${RACK_METADATA_URL:-}" ] && [ "$(id -u)" = 0 ]; then
		poweroff || shutdown -h now
	fi
`)
	}
	b.WriteString(`	exit "$1"
}
fail() { say "$*"; end 111; }
`)
	fmt.Fprintf(&b, "url=%s\nwant=%s\n", shellQuote(s.url), s.sha256)
	b.WriteString(`base=/tmp
for d in "${HOME:-}" /root /var/tmp /tmp; do
	if [ -n "$d" ] && [ -d "$d" ] && [ -w "$d" ]; then base=$d; break; fi
done
dir=$(mktemp -d "$base/.rack.XXXXXXXX") || fail "cannot make a private directory under $base"
bin="$dir/program"
if command -v curl >/dev/null 2>&1; then
	curl -fsS --retry 5 --retry-delay 2 --connect-timeout 20 -o "$bin" "$url" || fail "download failed: curl exit status $?"
elif command -v wget >/dev/null 2>&1; then
	wget -q -T 30 -O "$bin" "$url" || fail "download failed: wget exit status $?"
else
	fail "download failed: neither curl nor wget is installed"
fi
if command -v sha256sum >/dev/null 2>&1; then
	got=$(sha256sum "$bin")
elif command -v shasum >/dev/null 2>&1; then
	got=$(shasum -a 256 "$bin")
elif command -v openssl >/dev/null 2>&1; then
	got=$(openssl dgst -sha256 -r "$bin")
else
	fail "digest check failed: no sha256sum, shasum or openssl"
fi
got=${got%% *}
[ "$got" = "$want" ] || fail "digest mismatch: want $want, got ${got:-nothing}"
chmod 700 "$bin" || fail "cannot make the program executable"
`)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(s.env[k]))
	}
	b.WriteString(`"$bin" </dev/null
status=$?
say "program exited with status $status"
end "$status"
`)
	out := b.String()
	if len(out) > maxUserData {
		return "", fmt.Errorf("user-data of %d bytes exceeds Nova's limit of %d (environment too large): %w", len(out), maxUserData, backend.ErrInvalid)
	}
	return out, nil
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special, and a single quote is written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isShellName reports whether k is a portable environment variable name.
func isShellName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// bootstrapFailure returns the last failure line the bootstrap script
// wrote to console (without what precedes it on the line), or "" if the
// program was started: a failure line is a "rack-bootstrap: " line other
// than the exit line.
func bootstrapFailure(console string) string {
	last := ""
	for _, line := range strings.Split(console, "\n") {
		i := strings.Index(line, bootstrapPrefix)
		if i < 0 {
			continue
		}
		msg := strings.TrimSpace(line[i:])
		if strings.HasPrefix(msg, exitLine) {
			last = ""
			continue
		}
		last = msg
	}
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return last
}
