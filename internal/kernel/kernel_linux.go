package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ktls-go/ktls/record"
)

// Linux kernel TLS constants (include/uapi/linux/tls.h); x/sys/unix has
// TCP_ULP and SOL_TLS but not these.
const (
	tlsTX               = 1 // TLS_TX
	tlsRX               = 2 // TLS_RX
	tlsSetRecordType    = 1 // TLS_SET_RECORD_TYPE (cmsg)
	tlsGetRecordType    = 2 // TLS_GET_RECORD_TYPE (cmsg)
	tlsStatPath         = "/proc/net/tls_stat"
	tlsRecvControlSpace = 64
)

var supported = sync.OnceValue(probe)

// Supported reports whether the TLS ULP can be attached on this machine: nil
// if it can, else an error saying why (wrapping ENOENT when the tls module is
// missing). It probes once on a loopback TCP pair and caches the answer.
func Supported() error { return supported() }

func probe() error {
	rc, closeConn, err := probeConn()
	if err != nil {
		return fmt.Errorf("kernel: probing TLS ULP: %w", err)
	}
	defer closeConn()
	if err := Attach(rc); err != nil {
		return fmt.Errorf("kernel: TLS ULP unavailable: %w", err)
	}
	return nil
}

var rekey = sync.OnceValue(probeRekey)

// Rekey reports whether the kernel can re-key a TLS 1.3 direction, as a
// KeyUpdate requires (Linux 6.14 and later): nil if it can, else an error
// saying why (wrapping EBUSY on older kernels). It installs TLS 1.3 TX keys
// twice on a loopback TCP pair once, and caches the answer.
func Rekey() error { return rekey() }

func probeRekey() error {
	if err := Supported(); err != nil {
		return err
	}
	rc, closeConn, err := probeConn()
	if err != nil {
		return fmt.Errorf("kernel: probing TLS 1.3 rekey: %w", err)
	}
	defer closeConn()
	if err := Attach(rc); err != nil {
		return fmt.Errorf("kernel: probing TLS 1.3 rekey: %w", err)
	}
	s := &record.Session{Version: record.VersionTLS13, CipherSuite: 0x1301, Key: make([]byte, 16), IV: make([]byte, 12)}
	if err := Enable(rc, TX, s); err != nil {
		return fmt.Errorf("kernel: TLS 1.3 unavailable: %w", err)
	}
	if err := Enable(rc, TX, s); err != nil {
		return fmt.Errorf("kernel: cannot re-key TLS 1.3 (Linux before 6.14): %w", err)
	}
	return nil
}

// Attach attaches the TLS upper layer protocol to a connected TCP socket
// (setsockopt TCP_ULP "tls"). The kernel answers ENOTCONN before the
// connection is established, EEXIST when a ULP is already attached and ENOENT
// when the tls module is missing.
func Attach(c syscall.RawConn) error {
	return control(c, func(fd int) error {
		err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP, "tls")
		switch {
		case err == unix.ENOTCONN:
			return fmt.Errorf("kernel: TLS attaches only to an established TCP connection (has the peer closed its side?): %w", os.NewSyscallError("setsockopt TCP_ULP", err))
		case err != nil:
			return os.NewSyscallError("setsockopt TCP_ULP", err)
		}
		return nil
	})
}

// Enable installs the record state s for direction d (setsockopt SOL_TLS
// TLS_TX or TLS_RX with the tls12_crypto_info_* of s). From then on the
// kernel encrypts what is written (TX) or decrypts what is read (RX).
// Setting a direction again re-keys it on kernels with TLS 1.3 rekey support
// (6.14 and later); older kernels answer EBUSY.
func Enable(c syscall.RawConn, d Direction, s *record.Session) error {
	opt, name := tlsTX, "setsockopt TLS_TX"
	switch d {
	case TX:
	case RX:
		opt, name = tlsRX, "setsockopt TLS_RX"
	default:
		return fmt.Errorf("kernel: bad direction %v", d)
	}
	info, err := s.LinuxCryptoInfo()
	if err != nil {
		return err
	}
	defer clear(info)
	return control(c, func(fd int) error {
		if err := setsockopt(fd, unix.SOL_TLS, opt, unsafe.Pointer(&info[0]), uintptr(len(info))); err != nil {
			return os.NewSyscallError(name, err)
		}
		return nil
	})
}

// RecordSeq returns the sequence number of the next record of direction d
// as the kernel has it (getsockopt SOL_TLS TLS_TX or TLS_RX, whose
// crypto_info ends with the big-endian rec_seq); s is the session in place
// (its version and cipher give the size of the struct).
func RecordSeq(c syscall.RawConn, d Direction, s *record.Session) (uint64, error) {
	opt, name := tlsTX, "getsockopt TLS_TX"
	if d == RX {
		opt, name = tlsRX, "getsockopt TLS_RX"
	}
	info, err := s.LinuxCryptoInfo()
	if err != nil {
		return 0, err
	}
	defer clear(info)
	err = control(c, func(fd int) error {
		n := uint32(len(info))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_TLS, uintptr(opt), uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e != 0:
			return os.NewSyscallError(name, e)
		case int(n) != len(info):
			return fmt.Errorf("kernel: %s returned %d bytes, want %d: %w", name, n, len(info), syscall.EINVAL)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(info[len(info)-8:]), nil
}

// SendRecord sends p as the payload of records of type typ (sendmsg with a
// SOL_TLS TLS_SET_RECORD_TYPE control message). It returns once all of p is
// queued. p longer than a record is split by the kernel into records of the
// same type. Linux makes no record of an empty sendmsg, so an empty p fails
// with an error wrapping EINVAL rather than silently sending nothing (TLS
// forbids zero-length handshake and alert records anyway).
func SendRecord(c syscall.RawConn, typ record.ContentType, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("kernel: Linux kernel TLS cannot send a zero-length %v record: %w", typ, os.NewSyscallError("sendmsg", unix.EINVAL))
	}
	return sendRecord(c, p, cmsg(unix.SOL_TLS, tlsSetRecordType, []byte{byte(typ)}), unix.MSG_NOSIGNAL)
}

// DataReadSafe reports whether read(2) on a socket with receive offload
// returns application data only. It does on Linux: read(2) and splice(2)
// fail (EIO, EINVAL) at a record of another type, which is then read with
// RecvRecord.
const DataReadSafe = true

// SpliceRXSafe reports whether splice(2) out of a socket with receive
// offload returns each record's data once and in order, so that a copy loop
// may splice from it. Before Linux 5.16 tls_sw_splice_read could return a
// record again (a non-blocking splice was taken for a peek), skip the
// records recvmsg had already decrypted into rx_list, or splice a control
// record's payload; reading with recvmsg or read(2) is correct there. It reads the
// release from uname(2) once (see spliceRXSafeRelease).
func SpliceRXSafe() bool { return spliceRXSafe() }

var spliceRXSafe = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return spliceRXSafeRelease(unix.ByteSliceToString(u.Release[:]))
})

// RecvRecord reads the payload of the next record, or the next part of it,
// into p (recvmsg with room for a TLS_GET_RECORD_TYPE control message). One
// call never returns data of two record types. A record without the control
// message is application data. n == 0 with a control type is a zero-length
// record; n == 0 and typ == 0 is the end of the stream. p must not be empty.
func RecvRecord(c syscall.RawConn, p []byte) (typ record.ContentType, n int, err error) {
	if len(p) == 0 {
		return 0, 0, os.NewSyscallError("recvmsg", unix.EINVAL)
	}
	var oob [tlsRecvControlSpace]byte
	n, oobn, flags, err := recvRecord(c, p, oob[:])
	if err != nil {
		return 0, 0, err
	}
	return recordOf(n, oob[:oobn], flags)
}

// RecvRecordLazy is RecvRecord into a buffer taken only when there is
// something to read: each attempt calls take for the buffer and tries a
// recvmsg without waiting; if nothing is there it calls drop, to give the
// buffer back, and waits for input before the next attempt. A connection
// that waits thus holds no buffer, and a record that is already there is
// read with one system call. On success the record is in the buffer the
// last take returned; on an error drop may not have been called.
func RecvRecordLazy(c syscall.RawConn, take func() []byte, drop func()) (typ record.ContentType, n int, err error) {
	var oob [tlsRecvControlSpace]byte
	var oobn, flags int
	rerr := c.Read(func(fd uintptr) bool {
		n, oobn, flags, err = recvmsg(int(fd), take(), oob[:], unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			drop()
			return false
		}
		return true
	})
	if rerr != nil {
		return 0, 0, rerr
	}
	if err != nil {
		return 0, 0, os.NewSyscallError("recvmsg", err)
	}
	return recordOf(n, oob[:oobn], flags)
}

// recordOf returns the record type and length of what recvmsg read: n
// bytes, with the control messages oob and the message flags.
func recordOf(n int, oob []byte, flags int) (record.ContentType, int, error) {
	if flags&unix.MSG_CTRUNC != 0 {
		return 0, 0, os.NewSyscallError("recvmsg", unix.EIO)
	}
	data, ok, err := findCmsg(oob, unix.SOL_TLS, tlsGetRecordType)
	if err != nil {
		return 0, 0, fmt.Errorf("kernel: recvmsg control message: %w", err)
	}
	switch {
	case ok && len(data) >= 1:
		return record.ContentType(data[0]), n, nil
	case n == 0:
		return 0, 0, nil
	}
	return record.TypeApplicationData, n, nil
}

// SocketInfo reports the kernel TLS state of the socket from sock_diag
// (NETLINK_SOCK_DIAG, INET_DIAG_ULP_INFO for the socket's 4-tuple). A socket
// without the TLS ULP (getsockopt TCP_ULP) reports Conf 0 ("none") in both
// directions. The kernel shows the TLS attributes only to a caller with
// CAP_NET_ADMIN; without it SocketInfo of a TLS socket fails with an error
// wrapping EPERM.
func SocketInfo(c syscall.RawConn) (Info, error) { return socketInfo(c, false) }

// AttachedSocketInfo is SocketInfo of a socket that has the TLS ULP (Attach
// succeeded on it): it does not ask the socket for its ULP first.
func AttachedSocketInfo(c syscall.RawConn) (Info, error) { return socketInfo(c, true) }

func socketInfo(c syscall.RawConn, attached bool) (Info, error) {
	ulp := "tls"
	var local, remote netip.AddrPort
	var ifindex uint32
	err := control(c, func(fd int) error {
		var err error
		if !attached {
			if ulp, err = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP); err != nil {
				return os.NewSyscallError("getsockopt TCP_ULP", err)
			}
		}
		local, remote, ifindex, err = sockAddrs(fd)
		return err
	})
	if err != nil {
		return Info{}, err
	}
	if ulp != "tls" {
		return Info{}, nil
	}
	r, err := sockDiag(local, remote, ifindex)
	if err != nil {
		return Info{}, err
	}
	if !r.tlsInfo {
		return Info{}, fmt.Errorf("kernel: sock_diag shows no TLS state (needs CAP_NET_ADMIN): %w", syscall.EPERM)
	}
	return r.info, nil
}

// sockAddrs returns the local and remote address of the TCP/IP socket fd
// (getsockname, getpeername) and, for IPv6, the local scope's interface
// index. It decodes the addresses itself: unix.Getsockname asks the socket
// for its protocol (getsockopt SO_PROTOCOL) each time.
func sockAddrs(fd int) (local, remote netip.AddrPort, ifindex uint32, err error) {
	if local, ifindex, err = sockAddr(fd, unix.SYS_GETSOCKNAME, "getsockname"); err == nil {
		remote, _, err = sockAddr(fd, unix.SYS_GETPEERNAME, "getpeername")
	}
	return local, remote, ifindex, err
}

// sockAddr runs getsockname or getpeername (trap) on fd and decodes an IPv4
// or IPv6 address.
func sockAddr(fd int, trap uintptr, name string) (netip.AddrPort, uint32, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	if _, _, e := unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n))); e != 0 {
		return netip.AddrPort{}, 0, os.NewSyscallError(name, e)
	}
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port(sa.Port)), 0, nil
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port(sa.Port)), sa.Scope_id, nil
	}
	return netip.AddrPort{}, 0, errors.New("kernel: sock_diag: not a TCP/IP socket")
}

// port converts a sockaddr's port, in network byte order, to a number.
func port(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return binary.BigEndian.Uint16(b[:])
}

// sockDiag asks sock_diag about the TCP socket with the given local and
// remote addresses (ifindex: the local IPv6 scope's interface, else 0).
func sockDiag(local, remote netip.AddrPort, ifindex uint32) (diagResult, error) {
	const seq = 1 // each query has its own netlink socket
	req, err := diagRequest(local, remote, ifindex, seq)
	if err != nil {
		return diagResult{}, err
	}
	buf := diagBufPool.Get().(*[diagBufLen]byte)
	defer diagBufPool.Put(buf)
	resp, err := diagQuery(req, buf[:])
	if err != nil {
		return diagResult{}, err
	}
	return parseDiagResponse(resp, seq, local.Port(), remote.Port())
}

// diagBufLen is the room for the kernel's answer to one sock_diag query.
const diagBufLen = 16384

// diagBufPool holds the buffers of diagQuery between queries.
var diagBufPool = sync.Pool{New: func() any { return new([diagBufLen]byte) }}

// diagQuery sends one sock_diag request and returns the kernel's answer,
// read into buf.
func diagQuery(req, buf []byte) ([]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, os.NewSyscallError("socket NETLINK_SOCK_DIAG", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto NETLINK_SOCK_DIAG", err)
	}
	// The kernel answers a query for one socket within sendto: the answer
	// is queued (or sendto failed), and a receive that would wait means
	// there is none.
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("recvfrom NETLINK_SOCK_DIAG", err)
		}
		return buf[:n], nil
	}
}

// Stats returns the kernel's TLS counters from /proc/net/tls_stat (TlsTxSw,
// TlsRxSw, TlsDecryptError, ...). The file exists once the tls module is
// loaded; before that the error wraps fs.ErrNotExist.
func Stats() (map[string]uint64, error) {
	f, err := os.Open(tlsStatPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("kernel: no TLS counters (tls module not loaded): %w", err)
		}
		return nil, err
	}
	defer f.Close()
	return parseTLSStat(f)
}

// SetTXMode fails with an error wrapping errors.ErrUnsupported: Linux
// chooses device offload itself when the device can do it (TLS_HW), and
// offers no switch between software and device once a direction is set.
func SetTXMode(c syscall.RawConn, conf Conf) error {
	return fmt.Errorf("kernel: switching the TX mode: Linux chooses device offload itself: %w", errors.ErrUnsupported)
}
