package kernel

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Raw sendmsg for the tests in package kernel_test, to observe the kernel's
// own behaviour where SendRecord refuses.
var RawSendmsg = sendmsg

// RecordTypeCmsg is the TLS_SET_RECORD_TYPE control message for typ.
func RecordTypeCmsg(typ byte) []byte { return cmsg(unix.SOL_TLS, tlsSetRecordType, []byte{typ}) }

// SockDiagULP runs the sock_diag query of SocketInfo on any TCP socket and
// returns the ULP name it reports, so hosts without kernel TLS test it too.
func SockDiagULP(c syscall.RawConn) (string, error) {
	var local, remote unix.Sockaddr
	err := control(c, func(fd int) error {
		var err error
		if local, err = unix.Getsockname(fd); err == nil {
			remote, err = unix.Getpeername(fd)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	r, err := sockDiag(local, remote)
	return r.ulp, err
}

// Probe runs Supported's probe afresh (not cached).
var Probe = probe
