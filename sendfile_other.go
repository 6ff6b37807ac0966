//go:build !linux

package ktls

import (
	"io"
	"io/fs"
	"syscall"
)

// sendFile leaves r to the socket's own ReadFrom, which uses sendfile(2)
// where the platform has it.
func (c *Conn) sendFile(io.Reader, fs.FileInfo) (int64, bool, error) { return 0, false, nil }

// spliceFrom leaves r to ReadFrom's other paths.
func (c *Conn) spliceFrom(io.Reader) (int64, bool, error) { return 0, false, nil }

// errnoKeyExpired is Linux's error for reads after a KeyUpdate record; no
// error matches it elsewhere.
const errnoKeyExpired = syscall.Errno(0)
