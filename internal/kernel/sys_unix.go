//go:build linux || freebsd

package kernel

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// control runs f on the socket's descriptor (rc.Control), for calls that
// never block.
func control(c syscall.RawConn, f func(fd int) error) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = f(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// setsockopt is setsockopt(2) with the n bytes at p, a Go value that the
// pointer keeps alive, pointers inside it included, until the call returns.
// Unlike unix.SetsockoptString it makes no copy, so the caller can wipe the
// value (it may hold keys).
func setsockopt(fd, level, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

// sendmsg is sendmsg(2) with one data buffer and a control buffer. Unlike
// unix.SendmsgN it sends nothing extra when p is empty, which a zero-length
// TLS record needs.
func sendmsg(fd int, p, oob []byte, flags int) (int, error) {
	var msg unix.Msghdr
	var iov unix.Iovec
	setMsghdr(&msg, &iov, p, oob)
	for {
		n, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// setMsghdr points msg at the data buffer p (through iov, none when p is
// empty) and the control buffer oob.
func setMsghdr(msg *unix.Msghdr, iov *unix.Iovec, p, oob []byte) {
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
		msg.Iov = iov
		msg.SetIovlen(1)
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
}

// recvmsg is recvmsg(2) with one data buffer and a control buffer; it returns
// the data length, the control length and the message flags.
func recvmsg(fd int, p, oob []byte, flags int) (n, oobn, rflags int, err error) {
	var msg unix.Msghdr
	var iov unix.Iovec
	setMsghdr(&msg, &iov, p, oob)
	for {
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, 0, 0, e
		}
		return int(r), int(msg.Controllen), int(msg.Flags), nil
	}
}

// cmsg returns one control message of the given level and type carrying data.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// findCmsg returns the data of the first control message of the given level
// and type in oob.
func findCmsg(oob []byte, level, typ int) ([]byte, bool, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, false, err
	}
	for _, m := range msgs {
		if int(m.Header.Level) == level && int(m.Header.Type) == typ {
			return m.Data, true, nil
		}
	}
	return nil, false, nil
}

// sendRecord writes all of p with one control message oob per sendmsg call,
// waiting in the poller when the socket buffer is full. A zero-length p is
// one sendmsg call with no data.
func sendRecord(c syscall.RawConn, p, oob []byte, flags int) (int, error) {
	n := 0
	var err error
	sent := false
	werr := c.Write(func(fd uintptr) bool {
		for !sent || n < len(p) {
			m, e := sendmsg(int(fd), p[n:], oob, flags)
			if e == unix.EAGAIN {
				return false
			}
			if e != nil {
				err = os.NewSyscallError("sendmsg", e)
				return true
			}
			sent = true
			n += m
		}
		return true
	})
	if werr != nil {
		return n, werr
	}
	return n, err
}

// recvRecord is one recvmsg into p and oob, waiting in the poller until
// something arrives.
func recvRecord(c syscall.RawConn, p, oob []byte) (n, oobn, rflags int, err error) {
	rerr := c.Read(func(fd uintptr) bool {
		n, oobn, rflags, err = recvmsg(int(fd), p, oob, 0)
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return 0, 0, 0, rerr
	}
	if err != nil {
		return 0, 0, 0, os.NewSyscallError("recvmsg", err)
	}
	return n, oobn, rflags, nil
}

// probeConn returns the RawConn of one end of an established loopback TCP
// connection for the probes, and a function that closes both ends. The end
// returned is the accepted one: accept(2) hands out only ESTABLISHED sockets,
// whatever the dialing side's state. Both ends stay open until the returned
// function is called, so the probe never meets a connection its peer has
// already closed (which the kernel answers with ENOTCONN).
func probeConn() (syscall.RawConn, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp", "[::1]:0"); err != nil {
			return nil, nil, fmt.Errorf("no loopback: %w", err)
		}
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	closeBoth := func() {
		s.Close()
		c.Close()
	}
	rc, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		closeBoth()
		return nil, nil, err
	}
	return rc, closeBoth, nil
}

// ClearError reads and clears the socket's pending error (getsockopt
// SO_ERROR) and returns it, nil if none. Linux leaves the error of a record
// it refused (EBADMSG) pending on the socket, where it makes every later
// send fail; clearing it lets the connection send its alert.
func ClearError(c syscall.RawConn) error {
	var soerr int
	err := control(c, func(fd int) error {
		var err error
		soerr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		return err
	})
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ERROR", err)
	}
	if soerr != 0 {
		return syscall.Errno(soerr)
	}
	return nil
}
