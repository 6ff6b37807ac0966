//go:build unix

package main

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peekRecord waits until the peer of c has sent its first TLS record (or
// enough to show it is not a handshake record), within c's read deadline,
// and returns a copy without taking it off the socket's receive queue
// (recv with MSG_PEEK). It fails with errors.ErrUnsupported if c is not a
// socket, with io.EOF if the peer ended before.
func peekRecord(c net.Conn) ([]byte, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, errors.ErrUnsupported
	}
	buf := make([]byte, maxRecord)
	var (
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case rerr == unix.EAGAIN:
			return false
		case rerr != nil || n == 0:
			return true
		}
		// Part of the record: wait for more to arrive.
		return recordComplete(buf[:n])
	})
	switch {
	case err != nil:
		return nil, err
	case rerr != nil:
		return nil, rerr
	case n == 0:
		return nil, io.EOF
	}
	return buf[:n], nil
}
