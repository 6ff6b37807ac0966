//go:build linux || freebsd

package ktls

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// awaitInput waits until the socket has something to read (data, the end
// of the stream or an error), honouring the read deadline, without holding
// a buffer meanwhile: poll(2) first, since the runtime's poller only reports
// what arrives after its last wait.
func awaitInput(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if err != unix.EINTR {
				return err != nil || n > 0
			}
		}
	})
}
