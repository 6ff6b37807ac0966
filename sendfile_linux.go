package ktls

import (
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSendfile is the most one sendfile(2) call is asked to send.
const maxSendfile = 1 << 30

// file is what sendFile needs of an *os.File. An interface rather than the
// type, so that the wrapper io.Copy(conn, f) passes on (File.WriteTo hides
// itself behind a type embedding *os.File) still qualifies.
type file interface {
	io.Reader
	Stat() (fs.FileInfo, error)
	SyscallConn() (syscall.RawConn, error)
}

// sendFile sends the rest of r with sendfile(2) if r is a regular file (see
// file) or an io.LimitedReader of one; handled is false otherwise. c.out is
// held and the sending direction is in the kernel, which makes the records.
// sendfile(2) reads from the file's offset and advances it, as a read
// would. The bytes sent are counted in c.sendfileBytes.
func (c *Conn) sendFile(r io.Reader) (written int64, handled bool, err error) {
	remain := int64(1) << 62
	lr, limited := r.(*io.LimitedReader)
	if limited {
		remain, r = lr.N, lr.R
	}
	f, ok := r.(file)
	if !ok {
		return 0, false, nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false, nil
	}
	fc, err := f.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	// serr is sendfile's error, set inside the callback: it must not be
	// overwritten by the result of rc.Write, which is nil then.
	var serr, werr error
	cerr := fc.Control(func(infd uintptr) {
		werr = c.rc.Write(func(outfd uintptr) bool {
			for remain > 0 {
				n, err := unix.Sendfile(int(outfd), int(infd), nil, int(min(remain, maxSendfile)))
				if n > 0 {
					written += int64(n)
					remain -= int64(n)
					c.sendfileBytes.Add(int64(n))
				}
				switch {
				case err == unix.EAGAIN:
					return false
				case err == unix.EINTR:
				case err != nil:
					serr = os.NewSyscallError("sendfile", err)
					return true
				case n == 0:
					return true // the end of the file
				}
			}
			return true
		})
	})
	if serr == nil {
		serr = werr
	}
	if serr == nil {
		serr = cerr
	}
	if limited {
		lr.N -= written
	}
	return written, true, serr
}
