//go:build !linux

package record

import "io"

// fileReader reads a batch of records' payloads from a file with one
// readv(2); only on Linux.
type fileReader struct{}

// newFileReader returns nil: outside Linux, ReadFrom reads a file one
// record at a time.
func newFileReader(io.Reader) *fileReader { return nil }

func (*fileReader) release() {}

func (*fileReader) fill([]byte, int, int, int) (int, error) { panic("record: no fileReader") }
