// Package osfile holds the file-system operations that the local drivers
// (backend/file, backend/osproc) and the compute suite's child harness
// share: flock(2) locks that tell a live holder from a dead one, a
// create-only rename, opens that never follow a symbolic link (Root), and
// the check that a directory is this user's (CheckDir).
package osfile
