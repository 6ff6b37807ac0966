package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/ktls-go/ktls/record"
)

// FreeBSD ktls(4) layouts and constants as plain Go, compiled and tested on
// every OS (sys/sys/ktls.h, sys/netinet/tcp.h, sys/sys/socket.h); only the
// system calls are in kernel_freebsd.go.

// FreeBSD constants of sys/netinet/tcp.h, sys/sys/ktls.h and sys/sys/socket.h;
// x/sys/unix does not have the ktls(4) ones.
const (
	freebsdTCPTXTLSEnable   = 39   // TCP_TXTLS_ENABLE
	freebsdTCPTXTLSMode     = 40   // TCP_TXTLS_MODE
	freebsdTCPRXTLSEnable   = 41   // TCP_RXTLS_ENABLE
	freebsdTCPRXTLSMode     = 42   // TCP_RXTLS_MODE
	freebsdTLSSetRecordType = 1    // TLS_SET_RECORD_TYPE (cmsg at IPPROTO_TCP)
	freebsdTLSGetRecord     = 2    // TLS_GET_RECORD (cmsg at IPPROTO_TCP)
	freebsdIPProtoTCP       = 6    // IPPROTO_TCP
	freebsdMsgEOR           = 0x8  // MSG_EOR
	freebsdMsgCtrunc        = 0x20 // MSG_CTRUNC
)

// FreeBSD cipher_algorithm values (sys/opencrypto/cryptodev.h) and TLS
// version bytes (sys/sys/ktls.h).
const (
	freebsdAESNISTGCM16     = 25 // CRYPTO_AES_NIST_GCM_16
	freebsdChaCha20Poly1305 = 41 // CRYPTO_CHACHA20_POLY1305
	freebsdTLSMajorVer      = 3  // TLS_MAJOR_VER_ONE
	freebsdTLSMinorVer12    = 3  // TLS_MINOR_VER_TWO
	freebsdTLSMinorVer13    = 4  // TLS_MINOR_VER_THREE
)

// tlsEnable is FreeBSD's struct tls_enable (sys/sys/ktls.h), the argument
// of setsockopt(IPPROTO_TCP, TCP_TXTLS_ENABLE or TCP_RXTLS_ENABLE). Go lays
// it out as the C compiler does, on 64-bit and 32-bit architectures alike
// (TestTLSEnableLayout). The key and IV are real pointers, as in x/sys/unix's
// Msghdr and Iovec, so that the garbage collector keeps them alive and
// updates them if they move, until the system call has copied them.
type tlsEnable struct {
	cipherKey       *byte   // const uint8_t *cipher_key
	iv              *byte   // const uint8_t *iv: implicit IV
	authKey         *byte   // const uint8_t *auth_key: nil for AEAD suites
	cipherAlgorithm int32   // int cipher_algorithm
	cipherKeyLen    int32   // int cipher_key_len
	ivLen           int32   // int iv_len
	authAlgorithm   int32   // int auth_algorithm: 0 for AEAD suites
	authKeyLen      int32   // int auth_key_len
	flags           int32   // int flags: 0
	tlsVMajor       uint8   // uint8_t tls_vmajor
	tlsVMinor       uint8   // uint8_t tls_vminor
	recSeq          [8]byte // uint8_t rec_seq[8]: big-endian sequence number of the next record
}

// newTLSEnable fills struct tls_enable for the session. The key and IV
// pointers point into s.Key and s.IV, which must stay unchanged until the
// system call returns.
func newTLSEnable(s *record.Session) (tlsEnable, error) {
	if err := s.Validate(); err != nil {
		return tlsEnable{}, err
	}
	e := tlsEnable{
		cipherKey:       &s.Key[0],
		iv:              &s.IV[0],
		cipherAlgorithm: freebsdAESNISTGCM16,
		cipherKeyLen:    int32(len(s.Key)),
		ivLen:           int32(len(s.IV)),
		tlsVMajor:       freebsdTLSMajorVer,
		tlsVMinor:       freebsdTLSMinorVer12,
	}
	if s.Cipher() == record.CipherChaCha20Poly1305 {
		e.cipherAlgorithm = freebsdChaCha20Poly1305
	}
	if s.Version == record.VersionTLS13 {
		e.tlsVMinor = freebsdTLSMinorVer13
	}
	binary.BigEndian.PutUint64(e.recSeq[:], s.Seq)
	return e, nil
}

// freebsdTLSGetRecordLen is sizeof(struct tls_get_record) (sys/sys/ktls.h):
// uint8_t tls_type, tls_vmajor, tls_vminor; (1 byte padding) uint16_t
// tls_length, in network byte order.
const freebsdTLSGetRecordLen = 6

// getRecord is FreeBSD's struct tls_get_record, the TLS_GET_RECORD
// control message of recvmsg on a socket with receive offload.
type getRecord struct {
	Type    uint8
	Version uint16 // tls_vmajor<<8 | tls_vminor
	Length  uint16 // plaintext length of the record
}

// parseTLSGetRecord decodes struct tls_get_record.
func parseTLSGetRecord(b []byte) (getRecord, error) {
	if len(b) < freebsdTLSGetRecordLen {
		return getRecord{}, fmt.Errorf("kernel: tls_get_record: %d bytes, want %d", len(b), freebsdTLSGetRecordLen)
	}
	return getRecord{
		Type:    b[0],
		Version: uint16(b[1])<<8 | uint16(b[2]),
		Length:  binary.BigEndian.Uint16(b[4:]),
	}, nil
}

// freebsdCmsgHdrLen is sizeof(struct cmsghdr) on FreeBSD: socklen_t
// cmsg_len, int cmsg_level, int cmsg_type, on every architecture.
const freebsdCmsgHdrLen = 12

// freebsdCmsgAlign is _ALIGN (sys/sys/socket.h, machine/_align.h) for a
// FreeBSD architecture whose pointers have ptrSize bytes: _ALIGNBYTES is
// sizeof(register_t)-1 on amd64, arm64, i386 and powerpc, and
// sizeof(int)-1 on 32-bit arm, so alignment follows the pointer size.
func freebsdCmsgAlign(n, ptrSize int) int { return (n + ptrSize - 1) &^ (ptrSize - 1) }

// freebsdCmsgLen is CMSG_LEN(n) on FreeBSD.
func freebsdCmsgLen(n, ptrSize int) int {
	return freebsdCmsgAlign(freebsdCmsgHdrLen, ptrSize) + n
}

// freebsdRecord checks the result of one recvmsg on a FreeBSD socket with
// receive offload, as OpenSSL's FreeBSD ktls_read_record does, and returns
// the record's content type: n bytes of payload were read, oob holds the
// control messages, flags is msg_flags, and ptrSize the pointer size of the
// architecture (for the control message layout).
//
// ktls(4) queues each decrypted record as a TLS_GET_RECORD control message
// (struct tls_get_record) followed by its payload, the last mbuf marked
// M_EOR. A recvmsg with room for a whole record returns both and sets
// MSG_EOR; a zero-length record has no payload mbuf and so no MSG_EOR. So:
//
//   - n == 0 without a control message is the end of the stream (eof);
//   - otherwise the first control message must be TLS_GET_RECORD of
//     exactly CMSG_LEN(sizeof(struct tls_get_record)) bytes, else EBADMSG
//     (payload returned without its record type, as read(2) returns it);
//   - MSG_CTRUNC, or a payload without MSG_EOR (the record did not fit),
//     gives EMSGSIZE;
//   - the payload must have the length tls_get_record says, and the type
//     must not be 0 (Linux refuses a record of type 0 with EBADMSG too),
//     else EBADMSG.
func freebsdRecord(n int, oob []byte, flags, ptrSize int) (typ uint8, eof bool, err error) {
	if flags&freebsdMsgCtrunc != 0 {
		return 0, false, fmt.Errorf("kernel: recvmsg: control message truncated (MSG_CTRUNC): %w", syscall.EMSGSIZE)
	}
	if n == 0 && len(oob) == 0 {
		return 0, true, nil
	}
	hdr := freebsdCmsgAlign(freebsdCmsgHdrLen, ptrSize)
	want := freebsdCmsgLen(freebsdTLSGetRecordLen, ptrSize)
	if len(oob) < want {
		return 0, false, fmt.Errorf("kernel: recvmsg: record without a TLS_GET_RECORD control message: %w", syscall.EBADMSG)
	}
	ne := binary.NativeEndian
	l, level, cmsgType := int(ne.Uint32(oob)), int32(ne.Uint32(oob[4:])), int32(ne.Uint32(oob[8:]))
	if level != freebsdIPProtoTCP || cmsgType != freebsdTLSGetRecord || l != want {
		return 0, false, fmt.Errorf("kernel: recvmsg: control message level %d type %d length %d, want TLS_GET_RECORD: %w", level, cmsgType, l, syscall.EBADMSG)
	}
	r, err := parseTLSGetRecord(oob[hdr:want])
	if err != nil {
		return 0, false, err
	}
	switch {
	case n > 0 && flags&freebsdMsgEOR == 0:
		return 0, false, fmt.Errorf("kernel: recvmsg: %d bytes of a record of %d without MSG_EOR (did not fit): %w", n, r.Length, syscall.EMSGSIZE)
	case n != int(r.Length):
		return 0, false, fmt.Errorf("kernel: recvmsg: %d bytes for a record of %d: %w", n, r.Length, syscall.EBADMSG)
	case r.Type == 0:
		return 0, false, fmt.Errorf("kernel: recvmsg: record of type 0: %w", syscall.EBADMSG)
	}
	return r.Type, false, nil
}

// freebsdModeConf maps FreeBSD's TCP_TLS_MODE_{NONE,SW,IFNET,TOE} onto Conf.
func freebsdModeConf(mode int) Conf {
	switch mode {
	case 0:
		return ConfBase
	case 1:
		return ConfSW
	case 2:
		return ConfHW
	case 3:
		return ConfHWRecord
	}
	return Conf(0)
}

// sysctlValue decodes a FreeBSD sysctl integer of 1, 2, 4 or 8 bytes (bool,
// int, u_int, counter_u64) in host byte order.
func sysctlValue(b []byte) (uint64, bool) {
	ne := binary.NativeEndian
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(ne.Uint16(b)), true
	case 4:
		return uint64(ne.Uint32(b)), true
	case 8:
		return ne.Uint64(b), true
	}
	return 0, false
}

// freebsdProbeSessions are the sessions the FreeBSD probe installs: one per
// version and AEAD, with zero keys, as the Linux command's check does.
func freebsdProbeSessions() []*record.Session {
	var ss []*record.Session
	for _, suite := range []uint16{
		0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
		0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
		0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
		0x1301, // TLS_AES_128_GCM_SHA256
		0x1302, // TLS_AES_256_GCM_SHA384
		0x1303, // TLS_CHACHA20_POLY1305_SHA256
	} {
		version, ivLen := uint16(record.VersionTLS13), 12
		if suite > 0x1303 {
			version = record.VersionTLS12
			if suite != 0xcca8 {
				ivLen = 4
			}
		}
		c, _ := record.CipherOf(suite)
		ss = append(ss, &record.Session{Version: version, CipherSuite: suite, Key: make([]byte, c.KeyLen()), IV: make([]byte, ivLen)})
	}
	return ss
}

// freebsdProbe installs each probe session in each direction with enable,
// which gets a fresh socket per session (ktls(4) takes one session per
// direction of a socket), and reports nil as soon as one is taken: each
// connection then tries the kernel and falls back where it refuses, as on
// Linux. When none is taken, the error joins the reason of each attempt.
func freebsdProbe(enable func(d Direction, s *record.Session) error) error {
	var errs []error
	for _, s := range freebsdProbeSessions() {
		for _, d := range []Direction{TX, RX} {
			err := enable(d, s)
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("%v %v: %w", d, s, err))
		}
	}
	return fmt.Errorf("kernel: ktls(4) takes no session in either direction: %w", errors.Join(errs...))
}

// freebsdEnableError explains the errnos of TCP_TXTLS_ENABLE and
// TCP_RXTLS_ENABLE (sys/kern/uipc_ktls.c) by the setting that causes them;
// the result still wraps err. On FreeBSD ENOTSUP and EOPNOTSUPP are one
// errno: ktls(4) switched off, or no crypto backend for the suite.
func freebsdEnableError(d Direction, err error) error {
	var why string
	switch {
	case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP):
		why = "ktls(4) is off (sysctl kern.ipc.tls.enable=1 turns it on) or has no crypto backend for this suite (kldload ktls_ocf)"
	case errors.Is(err, syscall.ENXIO):
		why = "ktls(4) TX needs unmapped mbufs (sysctl kern.ipc.mb_use_ext_pgs=1)"
	case errors.Is(err, syscall.EALREADY):
		why = "this direction already has a TLS session; ktls(4) cannot re-key"
	default:
		return err
	}
	return fmt.Errorf("kernel: enabling %v: %s: %w", d, why, err)
}
