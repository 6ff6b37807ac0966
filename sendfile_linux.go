package ktls

import (
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSendfile is the most one sendfile(2) call is asked to send.
const maxSendfile = 1 << 30

// sendFile sends the rest of r with sendfile(2) if r is a regular file (see
// file) or an io.LimitedReader of one (also nested), whose FileInfo (from
// source) is fi; handled is false otherwise. c.out is held and the sending
// direction is in the kernel, which makes the records. sendfile(2) reads
// from the file's offset and advances it, as a read would. The bytes sent
// are counted in c.sendfileBytes. What Write held while corked (see
// Conn.Cork) goes first, in the file's first record.
func (c *Conn) sendFile(r io.Reader, fi fs.FileInfo) (written int64, handled bool, err error) {
	// The limits in front of the file, outermost first: a wrapper that
	// sends a body in steps may limit a reader already limited.
	remain, inner := int64(1)<<62, r
	for lr, ok := inner.(*io.LimitedReader); ok; lr, ok = inner.(*io.LimitedReader) {
		remain, inner = min(remain, lr.N), lr.R
	}
	f, ok := inner.(file)
	if !ok || fi == nil {
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
		held, more := c.out.held, false
		if len(held) > 0 {
			// What Write held while corked goes first, with MSG_MORE
			// when file data follows: the kernel keeps the record open
			// and the file's first bytes join it. sendfile is then asked
			// for no more than the file has, so that its last call,
			// without MSG_MORE, closes the record. Without data to
			// follow (the end of the file) the held bytes go alone. (A
			// file truncated between here and sendfile would leave the
			// record open: the response it was to carry is broken then.)
			off, err := unix.Seek(int(infd), 0, io.SeekCurrent)
			more = err == nil && fi.Size() > off
			if more {
				remain = min(remain, fi.Size()-off)
			}
		}
		werr = c.rc.Write(func(outfd uintptr) bool {
			for len(held) > 0 {
				flags := unix.MSG_NOSIGNAL
				if more {
					flags |= unix.MSG_MORE
				}
				n, err := unix.SendmsgN(int(outfd), held, nil, nil, flags)
				held = held[max(n, 0):]
				switch {
				case err == unix.EAGAIN:
					return false
				case err == unix.EINTR:
				case err != nil:
					serr = os.NewSyscallError("sendmsg", err)
					return true
				}
			}
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
	c.dropHeldLocked()
	if serr == nil {
		serr = werr
	}
	if serr == nil {
		serr = cerr
	}
	for lr, ok := r.(*io.LimitedReader); ok; lr, ok = lr.R.(*io.LimitedReader) {
		lr.N -= written
	}
	return written, true, serr
}

// spliceFrom sends what a TCP or Unix socket r yields by splice(2) into the
// kernel's sending direction; handled is false for other sources. It waits
// for r to be readable without holding c.out, then holds it only to splice
// what r already holds (SIOCINQ), which does not block on r. The sending
// direction is in the kernel.
func (c *Conn) spliceFrom(r io.Reader) (written int64, handled bool, err error) {
	var src syscall.Conn
	switch s := r.(type) {
	case *net.TCPConn:
		src = s
	case *net.UnixConn:
		src = s
	default:
		return 0, false, nil
	}
	rf, ok := c.conn.(io.ReaderFrom)
	if !ok {
		return 0, false, nil
	}
	rc, err := src.SyscallConn()
	if err != nil || tlsSocket(rc) {
		return 0, false, nil
	}
	for {
		avail, err := waitReadable(rc)
		if err != nil || avail == 0 { // avail 0: the end of r
			return written, true, err
		}
		c.lockOut()
		if err = c.prepareLocked(); err == nil {
			var n int64
			n, err = rf.ReadFrom(&io.LimitedReader{R: r, N: min(avail, c.budgetLocked())})
			written += n
			c.out.records += recordsOf(n)
			countTX(n)
		}
		c.unlockOut()
		if err != nil {
			return written, true, err
		}
	}
}

// tlsSocket reports whether the socket has the TLS ULP (a kernel-RX ktls
// connection's socket, as WriteTo passes it to a Conn's ReadFrom): its
// SIOCINQ does not count the records the kernel has already parsed, so
// waitReadable cannot tell how much it holds, and its control records
// fail splice(2). Such a source is copied through user space instead.
func tlsSocket(rc syscall.RawConn) bool {
	var ulp string
	rc.Control(func(fd uintptr) {
		ulp, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_ULP)
	})
	return ulp == "tls"
}

// waitReadable waits until the socket has data or its end (or an error) to
// read, without reading it, and returns how many bytes it holds: 0 at its
// end. It keeps the socket's read deadline.
func waitReadable(rc syscall.RawConn) (int64, error) {
	var (
		avail int
		serr  error
	)
	err := rc.Read(func(fd uintptr) bool {
		var one [1]byte
		n, _, err := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case err != nil:
			serr = os.NewSyscallError("recvfrom", err)
		case n > 0:
			avail, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if err != nil {
				serr = os.NewSyscallError("ioctl SIOCINQ", err)
			}
		}
		return true
	})
	if serr != nil {
		return 0, serr
	}
	return int64(avail), err
}

// errnoKeyExpired is Linux's error for reads after a KeyUpdate record until
// the receiving direction is re-keyed.
const errnoKeyExpired = syscall.EKEYEXPIRED
