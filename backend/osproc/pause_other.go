//go:build !unix

package osproc

import "os"

// No SIGSTOP here: Pause fails (see canPause).
var pauseSignal, resumeSignal os.Signal = nil, nil

const canPause = false
