package retry

// ReadChunks is readChunks, for the tests.
var ReadChunks = readChunks
