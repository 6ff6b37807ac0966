//go:build unix

package handshake

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peek copies what is queued in c's receive buffer into p without taking it
// off the queue and without waiting (recv with MSG_PEEK|MSG_DONTWAIT). It
// returns 0 when nothing is queued or c is not a socket.
func peek(c net.Conn, p []byte) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var (
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), p, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	if err != nil || rerr != nil || n < 0 {
		return 0
	}
	return n
}

// peekWait waits until c is readable (or its read deadline passes) and then
// copies what is queued into p without taking it off the queue. It returns
// 0 and no error when c is not a socket or the peek fails; the caller then
// reads normally and meets any error there.
func peekWait(c net.Conn, p []byte) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, nil
	}
	var (
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), p, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil || n < 0 {
		return 0, nil
	}
	return n, nil
}
