package handshake

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvPeek is recv(2) with MSG_PEEK|MSG_DONTWAIT into p (not empty). Unlike
// unix.Recvfrom it asks for no peer address, so it allocates nothing.
func recvPeek(fd int, p []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
