package kernel

import (
	"net/netip"
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
	var local, remote netip.AddrPort
	var ifindex uint32
	err := control(c, func(fd int) error {
		var err error
		local, remote, ifindex, err = sockAddrs(fd)
		return err
	})
	if err != nil {
		return "", err
	}
	r, err := sockDiag(local, remote, ifindex)
	return r.ulp, err
}

// Probe runs Supported's probe afresh (not cached).
var Probe = probe
