//go:build linux || freebsd

package ktls

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// awaitInput waits until a record (or the end of the stream, or an error)
// can be read from a kernel RX socket, honouring the read deadline, without
// holding a record's buffer meanwhile. It peeks at one byte with recvmsg, as
// the read itself would go (poll(2) is not enough: Linux reports no input
// for records that it parsed before a KeyUpdate re-keyed the socket); the
// record stays for the read that follows. An error the peek meets is
// returned as the read would return it.
func awaitInput(rc syscall.RawConn) error {
	var perr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		var oob [64]byte
		for {
			_, _, _, _, err := unix.Recvmsg(int(fd), b[:], oob[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch err {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			case nil:
			default:
				// The error a read would have got (a bad record),
				// which the peek may have taken off the socket.
				perr = os.NewSyscallError("recvmsg", err)
			}
			return true
		}
	})
	if perr != nil {
		return perr
	}
	return err
}
