package lab

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// cpioWriter writes a "newc" (SVR4, no CRC) cpio archive, the format the
// Linux kernel unpacks as an initramfs. Parent directories are created
// automatically; each path is written at most once (the first one wins).
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	seen map[string]bool
	err  error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, seen: map[string]bool{"": true, ".": true}}
}

const (
	cpioDir  = 0o040000
	cpioFile = 0o100000
	cpioChar = 0o020000
)

func (c *cpioWriter) header(name string, mode uint32, size int64, rmajor, rminor uint32) {
	if c.err != nil {
		return
	}
	if size > 0xffffffff {
		c.err = fmt.Errorf("cpio: %s: too large", name)
		return
	}
	nlink := uint32(1)
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	c.ino++
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad(int64(len(hdr) + len(name) + 1))
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int64) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// clean turns p into the archive's relative spelling ("lab/bin/x").
func clean(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// mkdirAll writes directory entries for p and its parents.
func (c *cpioWriter) mkdirAll(p string) {
	p = clean(p)
	if c.seen[p] {
		return
	}
	c.mkdirAll(path.Dir(p))
	c.seen[p] = true
	c.header(p, cpioDir|0o755, 0, 0, 0)
}

// Dir writes a directory entry (and its parents).
func (c *cpioWriter) Dir(p string) { c.mkdirAll(p) }

// File writes a regular file with the given permission bits.
func (c *cpioWriter) File(p string, perm fs.FileMode, data []byte) {
	p = clean(p)
	if c.seen[p] {
		return
	}
	c.mkdirAll(path.Dir(p))
	c.seen[p] = true
	c.header(p, cpioFile|uint32(perm.Perm()), int64(len(data)), 0, 0)
	c.write(data)
	c.pad(int64(len(data)))
}

// CharDev writes a character device node.
func (c *cpioWriter) CharDev(p string, major, minor uint32) {
	p = clean(p)
	if c.seen[p] {
		return
	}
	c.mkdirAll(path.Dir(p))
	c.seen[p] = true
	c.header(p, cpioChar|0o600, 0, major, minor)
}

// CopyFile writes the host file src (following symlinks) at p.
func (c *cpioWriter) CopyFile(p, src string) {
	if c.err != nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		c.err = err
		return
	}
	perm := fs.FileMode(0o644)
	if fi, err := os.Stat(src); err == nil {
		perm = fi.Mode().Perm()
	}
	c.File(p, perm, b)
}

// CopyTree writes the host file or directory tree src at p. Symbolic links
// are followed; other special files are skipped.
func (c *cpioWriter) CopyTree(p, src string) {
	if c.err != nil {
		return
	}
	fi, err := os.Stat(src)
	if err != nil {
		c.err = err
		return
	}
	if !fi.IsDir() {
		c.CopyFile(p, src)
		return
	}
	c.Dir(p)
	entries, err := os.ReadDir(src)
	if err != nil {
		c.err = err
		return
	}
	for _, e := range entries {
		c.CopyTree(path.Join(p, e.Name()), filepath.Join(src, e.Name()))
	}
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}
