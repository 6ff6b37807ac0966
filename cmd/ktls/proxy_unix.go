//go:build linux || freebsd || darwin

package main

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitWritable waits, within c's write deadline, until c's socket has room
// for more data (poll(2) POLLOUT), that is until its peer has taken part of
// what was sent.
func waitWritable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Write(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, 0)
		return err != nil || n > 0
	})
}
