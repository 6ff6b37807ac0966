package kernel

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ktls-go/ktls/record"
)

// statSysctls are the kern.ipc.tls counters and settings Stats reports
// (sys/kern/uipc_ktls.c). Names missing on a kernel are left out.
var statSysctls = []string{
	"kern.ipc.tls.enable",
	"kern.ipc.tls.cbc_enable",
	"kern.ipc.tls.maxlen",
	"kern.ipc.mb_use_ext_pgs",
	"kern.ipc.tls.tasks_active",
	"kern.ipc.tls.stats.active",
	"kern.ipc.tls.stats.enable_calls",
	"kern.ipc.tls.stats.offload_total",
	"kern.ipc.tls.stats.corrupted_records",
	"kern.ipc.tls.stats.failed_crypto",
	"kern.ipc.tls.stats.switch_to_ifnet",
	"kern.ipc.tls.stats.switch_to_sw",
	"kern.ipc.tls.stats.switch_failed",
	"kern.ipc.tls.stats.ifnet_disable_failed",
	"kern.ipc.tls.stats.ifnet_disable_ok",
	"kern.ipc.tls.stats.sw_tx_inqueue",
	"kern.ipc.tls.stats.sw_tx_pending",
	"kern.ipc.tls.stats.sw_rx_inqueue",
	"kern.ipc.tls.stats.threads",
	"kern.ipc.tls.sw.cbc",
	"kern.ipc.tls.sw.gcm",
	"kern.ipc.tls.sw.chacha20",
	"kern.ipc.tls.ifnet.cbc",
	"kern.ipc.tls.ifnet.gcm",
	"kern.ipc.tls.ifnet.chacha20",
	"kern.ipc.tls.toe.cbc",
	"kern.ipc.tls.toe.gcm",
	"kern.ipc.tls.toe.chacha20",
}

var supported = sync.OnceValue(probe)

// Supported reports whether ktls(4) can take a connection here: nil if it
// can, else an error saying why, naming the setting to change
// (kern.ipc.tls.enable, kern.ipc.mb_use_ext_pgs, the ktls_ocf module). It
// checks kern.ipc.tls.enable, then installs each version and AEAD in each
// direction with a throwaway key on loopback TCP pairs until one is taken,
// once, and caches the answer. Each connection then tries the kernel per
// direction and falls back where it refuses, as on Linux.
func Supported() error { return supported() }

func probe() error {
	b, err := unix.SysctlRaw("kern.ipc.tls.enable")
	if err != nil {
		return fmt.Errorf("kernel: no ktls(4) in this kernel (no sysctl kern.ipc.tls.enable): %w", err)
	}
	if v, ok := sysctlValue(b); ok && v == 0 {
		return fmt.Errorf("kernel: ktls(4) is off (sysctl kern.ipc.tls.enable=1 turns it on): %w", syscall.ENOTSUP)
	}
	return freebsdProbe(func(d Direction, s *record.Session) error {
		rc, closeConn, err := probeConn()
		if err != nil {
			return fmt.Errorf("kernel: probing ktls(4): %w", err)
		}
		defer closeConn()
		return Enable(rc, d, s)
	})
}

// Rekey reports whether the kernel can re-key a TLS 1.3 direction, as a
// KeyUpdate requires. ktls(4) cannot: TCP_TXTLS_ENABLE and TCP_RXTLS_ENABLE
// take a session once, so Rekey always fails with an error wrapping
// ENOTSUP.
func Rekey() error {
	return fmt.Errorf("kernel: ktls(4) cannot re-key a TLS 1.3 session: %w", syscall.ENOTSUP)
}

// RecordSeq fails on FreeBSD with an error wrapping ENOTSUP: it is needed
// only to re-install a TLS 1.3 key, which ktls(4) cannot.
func RecordSeq(c syscall.RawConn, d Direction, s *record.Session) (uint64, error) {
	return 0, fmt.Errorf("kernel: ktls(4) cannot re-key a TLS 1.3 session: %w", syscall.ENOTSUP)
}

// Attach does nothing on FreeBSD: ktls(4) needs no upper layer protocol.
func Attach(c syscall.RawConn) error { return nil }

// Enable installs the record state s for direction d (setsockopt
// IPPROTO_TCP TCP_TXTLS_ENABLE or TCP_RXTLS_ENABLE with a struct tls_enable).
// FreeBSD cannot re-key: a second call fails with EALREADY. Other errors:
// ENOTSUP (kern.ipc.tls.enable=0), ENXIO (TX with kern.ipc.mb_use_ext_pgs=0),
// EOPNOTSUPP (no crypto backend).
func Enable(c syscall.RawConn, d Direction, s *record.Session) error {
	opt, name := freebsdTCPTXTLSEnable, "setsockopt TCP_TXTLS_ENABLE"
	switch d {
	case TX:
	case RX:
		opt, name = freebsdTCPRXTLSEnable, "setsockopt TCP_RXTLS_ENABLE"
	default:
		return fmt.Errorf("kernel: bad direction %v", d)
	}
	e, err := newTLSEnable(s)
	if err != nil {
		return err
	}
	return control(c, func(fd int) error {
		if err := setsockopt(fd, unix.IPPROTO_TCP, opt, unsafe.Pointer(&e), unsafe.Sizeof(e)); err != nil {
			return freebsdEnableError(d, os.NewSyscallError(name, err))
		}
		return nil
	})
}

// SetTXMode switches the sending direction between software and device
// (IFNET) offload (setsockopt IPPROTO_TCP TCP_TXTLS_MODE with
// TCP_TLS_MODE_SW or TCP_TLS_MODE_IFNET). conf is ConfSW or ConfHW.
func SetTXMode(c syscall.RawConn, conf Conf) error {
	var mode int
	switch conf {
	case ConfSW:
		mode = 1 // TCP_TLS_MODE_SW
	case ConfHW:
		mode = 2 // TCP_TLS_MODE_IFNET
	default:
		return fmt.Errorf("kernel: TX mode %v: %w", conf, syscall.EINVAL)
	}
	return control(c, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, freebsdTCPTXTLSMode, mode); err != nil {
			return os.NewSyscallError("setsockopt TCP_TXTLS_MODE", err)
		}
		return nil
	})
}

// SendRecord sends p as the payload of records of type typ (sendmsg with an
// IPPROTO_TCP TLS_SET_RECORD_TYPE control message). It returns once all of p
// is queued. An empty p asks for a zero-length record.
func SendRecord(c syscall.RawConn, typ record.ContentType, p []byte) (int, error) {
	return sendRecord(c, p, cmsg(unix.IPPROTO_TCP, freebsdTLSSetRecordType, []byte{byte(typ)}), unix.MSG_NOSIGNAL)
}

// DataReadSafe reports whether read(2) on a socket with receive offload
// returns application data only. It does not on FreeBSD: soreceive drops the
// TLS_GET_RECORD control message and returns the payload of every record,
// alert and handshake records included, as data. Every record must be read
// with RecvRecord.
const DataReadSafe = false

// SpliceRXSafe reports whether splice(2) out of a socket with receive
// offload is safe for a copy loop: FreeBSD has no splice(2), and every
// record must be read with RecvRecord (see DataReadSafe).
func SpliceRXSafe() bool { return false }

// RecvRecord reads the next record's payload into p, which must hold
// record.MaxPlaintext bytes (recvmsg with room for a TLS_GET_RECORD control
// message holding struct tls_get_record): ktls(4) returns one whole record
// per call, its type only with it. n == 0 with a type is a zero-length
// record; n == 0 and typ == 0 is the end of the stream. A record without the
// control message, or that did not fit (no MSG_EOR), is refused as OpenSSL's
// FreeBSD ktls_read_record refuses it: EBADMSG or EMSGSIZE.
func RecvRecord(c syscall.RawConn, p []byte) (typ record.ContentType, n int, err error) {
	if len(p) < record.MaxPlaintext {
		return 0, 0, os.NewSyscallError("recvmsg", unix.EINVAL)
	}
	oob := make([]byte, unix.CmsgSpace(freebsdTLSGetRecordLen)+16)
	n, oobn, flags, err := recvRecord(c, p, oob)
	if err != nil {
		return 0, 0, err
	}
	t, eof, err := freebsdRecord(n, oob[:oobn], flags, int(unsafe.Sizeof(uintptr(0))))
	if err != nil || eof {
		return 0, 0, err
	}
	return record.ContentType(t), n, nil
}

// RecvRecordLazy is RecvRecord into take's buffer, taken at once: ktls
// here is read only that way, untried otherwise.
func RecvRecordLazy(c syscall.RawConn, take func() []byte, drop func()) (typ record.ContentType, n int, err error) {
	return RecvRecord(c, take())
}

// AttachedSocketInfo is SocketInfo.
func AttachedSocketInfo(c syscall.RawConn) (Info, error) { return SocketInfo(c) }

// SocketInfo reports the ktls(4) mode of each direction (getsockopt
// TCP_TXTLS_MODE and TCP_RXTLS_MODE). FreeBSD does not report the version or
// cipher of a socket, so those stay 0.
func SocketInfo(c syscall.RawConn) (Info, error) {
	var info Info
	err := control(c, func(fd int) error {
		tx, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, freebsdTCPTXTLSMode)
		if err != nil {
			return os.NewSyscallError("getsockopt TCP_TXTLS_MODE", err)
		}
		rx, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, freebsdTCPRXTLSMode)
		if err != nil {
			return os.NewSyscallError("getsockopt TCP_RXTLS_MODE", err)
		}
		info.TX, info.RX = freebsdModeConf(tx), freebsdModeConf(rx)
		return nil
	})
	return info, err
}

// Stats returns the kern.ipc.tls.* sysctls (counters, and the enable,
// cbc_enable and maxlen settings), keyed by their full names.
func Stats() (map[string]uint64, error) {
	m := make(map[string]uint64)
	for _, name := range statSysctls {
		b, err := unix.SysctlRaw(name)
		if err != nil {
			continue // not in this kernel (e.g. toe.* without TCP_OFFLOAD)
		}
		if v, ok := sysctlValue(b); ok {
			m[name] = v
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("kernel: no kern.ipc.tls sysctls: %w", syscall.ENOENT)
	}
	return m, nil
}
