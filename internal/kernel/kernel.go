// Package kernel is the operating-system glue of ktls: it attaches kernel TLS
// to a connected TCP socket, installs the per-direction record state, sends and
// receives records of a given content type, and reports the mode of a socket and
// the kernel's TLS counters.
//
// On Linux this is the TLS upper layer protocol (setsockopt TCP_ULP "tls", then
// SOL_TLS TLS_TX / TLS_RX); on FreeBSD it is ktls(4) (TCP_TXTLS_ENABLE /
// TCP_RXTLS_ENABLE). Elsewhere every call fails with an error wrapping
// errors.ErrUnsupported.
//
// Every function takes the syscall.RawConn of a connected TCP socket and works
// through Go's network poller: calls that can block wait in rc.Read / rc.Write,
// so deadlines and Close interrupt them as they do for net.Conn.
//
// Errors wrap the errno the kernel returned (as *os.SyscallError), so
// errors.Is(err, syscall.EBADMSG) and the like work.
package kernel

import (
	"fmt"
)

// Direction selects the transmit or the receive half of a connection, the
// TLS_TX / TLS_RX options on Linux and TCP_TXTLS_* / TCP_RXTLS_* on FreeBSD.
type Direction int

const (
	// TX is the sending direction (Linux TLS_TX, FreeBSD TCP_TXTLS_ENABLE).
	TX Direction = iota
	// RX is the receiving direction (Linux TLS_RX, FreeBSD TCP_RXTLS_ENABLE).
	RX
)

// String returns "tx" or "rx".
func (d Direction) String() string {
	switch d {
	case TX:
		return "tx"
	case RX:
		return "rx"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Conf is the configuration of one direction of a kernel TLS socket, Linux's
// TLS_CONF_* as reported by sock_diag (TLS_INFO_TXCONF / TLS_INFO_RXCONF).
// FreeBSD's TCP_TLS_MODE_* values are mapped onto it: NONE to ConfBase, SW to
// ConfSW, IFNET to ConfHW and TOE to ConfHWRecord.
type Conf uint16

const (
	// ConfBase: the TLS ULP is attached but this direction has no keys
	// (TLS_CONF_BASE; FreeBSD TCP_TLS_MODE_NONE).
	ConfBase Conf = 1
	// ConfSW: the kernel encrypts or decrypts in software (TLS_CONF_SW;
	// FreeBSD TCP_TLS_MODE_SW).
	ConfSW Conf = 2
	// ConfHW: the NIC does the cryptography, the kernel frames the records
	// (TLS_CONF_HW; FreeBSD TCP_TLS_MODE_IFNET).
	ConfHW Conf = 3
	// ConfHWRecord: the NIC (or TOE) handles whole records (TLS_CONF_HW_RECORD;
	// FreeBSD TCP_TLS_MODE_TOE).
	ConfHWRecord Conf = 4
)

// String returns the name of c as Linux's ss(8) prints it ("base", "sw",
// "hw", "hw-record"); 0 is "none".
func (c Conf) String() string {
	switch c {
	case 0:
		return "none"
	case ConfBase:
		return "base"
	case ConfSW:
		return "sw"
	case ConfHW:
		return "hw"
	case ConfHWRecord:
		return "hw-record"
	}
	return fmt.Sprintf("Conf(%d)", uint16(c))
}

// Kernel cipher types, the cipher_type field of Linux's tls12_crypto_info_*
// and the TLS_INFO_CIPHER attribute of sock_diag (include/uapi/linux/tls.h).
const (
	CipherAESGCM128        = 51 // TLS_CIPHER_AES_GCM_128
	CipherAESGCM256        = 52 // TLS_CIPHER_AES_GCM_256
	CipherAESCCM128        = 53 // TLS_CIPHER_AES_CCM_128
	CipherChaCha20Poly1305 = 54 // TLS_CIPHER_CHACHA20_POLY1305
)

// Info describes the kernel TLS state of one socket: Linux's sock_diag
// INET_DIAG_ULP_INFO / INET_ULP_INFO_TLS attributes, FreeBSD's
// TCP_TXTLS_MODE / TCP_RXTLS_MODE.
type Info struct {
	// Version is the TLS version of the installed keys (0x0303 or 0x0304);
	// 0 before any direction has keys or where the kernel does not say.
	Version uint16
	// Cipher is the kernel's cipher type (CipherAESGCM128...); 0 before any
	// direction has keys or where the kernel does not say (FreeBSD).
	Cipher uint16
	// TX and RX are the configuration of each direction.
	TX, RX Conf
	// ZeroCopyTX is set when TLS_TX_ZEROCOPY_RO is on for a TX in the NIC
	// (Linux reports it only with TLS_CONF_HW).
	ZeroCopyTX bool
	// RXNoPad is set when TLS_RX_EXPECT_NO_PAD is on (Linux).
	RXNoPad bool
}
