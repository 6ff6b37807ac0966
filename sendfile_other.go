//go:build !linux

package ktls

import "io"

// sendFile leaves r to the socket's own ReadFrom, which uses sendfile(2)
// where the platform has it.
func (c *Conn) sendFile(io.Reader) (int64, bool, error) { return 0, false, nil }
