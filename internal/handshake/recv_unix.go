//go:build unix && !linux

package handshake

import "golang.org/x/sys/unix"

// recvPeek is recv(2) with MSG_PEEK|MSG_DONTWAIT into p (not empty).
func recvPeek(fd int, p []byte) (int, error) {
	n, _, err := unix.Recvfrom(fd, p, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n, err
}
