package record

import (
	"crypto/tls"
	"encoding/binary"
	"strconv"
	"syscall"
)

// Session is the state of one direction of a TLS connection: what ktls(4)'s
// struct tls_enable and Linux's struct tls12_crypto_info_* carry into the
// kernel, and what NewSealer and NewOpener need.
//
// A Session holds key material. Its String method never prints it; call Wipe
// when the Session is no longer needed.
type Session struct {
	Version     uint16 // VersionTLS12 or VersionTLS13
	CipherSuite uint16 // IANA id, as tls.ConnectionState.CipherSuite
	Key         []byte // AEAD key (16 or 32 bytes)
	IV          []byte // 12 bytes for TLS 1.3 and for ChaCha20-Poly1305; 4-byte salt (implicit nonce) for TLS 1.2 AES-GCM
	Seq         uint64 // sequence number of the next record in this direction
}

// ivLen is the length of Session.IV for a version and AEAD.
func ivLen(version uint16, c Cipher) int {
	if version == VersionTLS12 && c != CipherChaCha20Poly1305 {
		return 4
	}
	return nonceLen
}

// Validate checks that the version, the suite and the key and IV lengths fit
// together. The error wraps syscall.EINVAL, as setsockopt(TLS_TX) and
// TCP_TXTLS_ENABLE return for a bad crypto_info or tls_enable.
func (s *Session) Validate() error {
	info, ok := suiteOf(s.CipherSuite)
	switch {
	case s.Version != VersionTLS12 && s.Version != VersionTLS13:
		return sessionError("unsupported version " + versionName(s.Version))
	case !ok:
		return sessionError("unsupported cipher suite " + tls.CipherSuiteName(s.CipherSuite))
	case info.version != s.Version:
		return sessionError("cipher suite " + tls.CipherSuiteName(s.CipherSuite) + " does not belong to " + versionName(s.Version))
	case len(s.Key) != info.cipher.KeyLen():
		return sessionError("key length " + strconv.Itoa(len(s.Key)) + ", want " + strconv.Itoa(info.cipher.KeyLen()))
	case len(s.IV) != ivLen(s.Version, info.cipher):
		return sessionError("IV length " + strconv.Itoa(len(s.IV)) + ", want " + strconv.Itoa(ivLen(s.Version, info.cipher)))
	}
	return nil
}

// SessionError is the error Session.Validate returns; it wraps
// syscall.EINVAL.
type SessionError struct {
	Reason string // what is wrong; never contains key material
}

// Error returns the reason prefixed with the package name.
func (e *SessionError) Error() string { return "record: invalid session: " + e.Reason }

// Unwrap returns syscall.EINVAL.
func (e *SessionError) Unwrap() error { return syscall.EINVAL }

func sessionError(reason string) error { return &SessionError{Reason: reason} }

func versionName(v uint16) string {
	switch v {
	case VersionTLS12:
		return "TLS 1.2"
	case VersionTLS13:
		return "TLS 1.3"
	}
	return "version 0x" + strconv.FormatUint(uint64(v), 16)
}

// Cipher returns the AEAD of the session's cipher suite, or 0 if the suite
// is unknown.
func (s *Session) Cipher() Cipher {
	c, _ := CipherOf(s.CipherSuite)
	return c
}

// String describes the session by version, suite and sequence number. It
// never includes the key or IV.
func (s *Session) String() string {
	if s == nil {
		return "<nil>"
	}
	return versionName(s.Version) + " " + tls.CipherSuiteName(s.CipherSuite) + " seq=" + strconv.FormatUint(s.Seq, 10)
}

// Wipe overwrites Key and IV with zeros.
func (s *Session) Wipe() {
	clear(s.Key)
	clear(s.IV)
}

// Linux crypto_info cipher_type values (include/uapi/linux/tls.h).
const (
	linuxCipherAESGCM128        = 51
	linuxCipherAESGCM256        = 52
	linuxCipherChaCha20Poly1305 = 54
)

// LinuxCryptoInfo returns the exact bytes of the Linux struct
// tls12_crypto_info_aes_gcm_128, tls12_crypto_info_aes_gcm_256 or
// tls12_crypto_info_chacha20_poly1305 for the session, as passed to
// setsockopt(SOL_TLS, TLS_TX or TLS_RX). Version and cipher_type are in host
// byte order; rec_seq is the big-endian Seq. For AES-GCM, salt is the 4-byte
// implicit nonce; iv is the rest of the TLS 1.3 IV, or for TLS 1.2 the first
// explicit nonce the kernel will send, which is the big-endian Seq (as
// OpenSSL does). For ChaCha20-Poly1305, iv is the whole 12-byte IV.
//
// The result holds key material; clear it after use.
func (s *Session) LinuxCryptoInfo() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var cipherType uint16
	switch s.Cipher() {
	case CipherAES128GCM:
		cipherType = linuxCipherAESGCM128
	case CipherAES256GCM:
		cipherType = linuxCipherAESGCM256
	case CipherChaCha20Poly1305:
		cipherType = linuxCipherChaCha20Poly1305
	}
	b := make([]byte, 4, 4+nonceLen+32+8)
	binary.NativeEndian.PutUint16(b[0:], s.Version)
	binary.NativeEndian.PutUint16(b[2:], cipherType)
	if s.Cipher() == CipherChaCha20Poly1305 {
		b = append(b, s.IV...) // iv[12]
		b = append(b, s.Key...)
		// salt[0]
	} else {
		if s.Version == VersionTLS13 {
			b = append(b, s.IV[4:]...) // iv[8]
		} else {
			b = binary.BigEndian.AppendUint64(b, s.Seq) // iv[8]: explicit nonce
		}
		b = append(b, s.Key...)
		b = append(b, s.IV[:4]...) // salt[4]
	}
	return binary.BigEndian.AppendUint64(b, s.Seq), nil // rec_seq[8]
}

// FreeBSD algorithm numbers (sys/opencrypto/cryptodev.h) and TLS version
// bytes (sys/sys/ktls.h).
const (
	freeBSDAESNISTGCM16       = 25
	freeBSDChaCha20Poly1305   = 41
	freeBSDTLSMajorVerOne     = 3
	freeBSDTLSMinorVerTwo     = 3
	freeBSDTLSMinorVerThree   = 4
	freeBSDTLSEnableSize      = 64
	freeBSDTLSEnableRecSeqOff = 50
)

// FreeBSDTLSEnable holds the fields of FreeBSD's struct tls_enable
// (sys/sys/ktls.h) for setsockopt(IPPROTO_TCP, TCP_TXTLS_ENABLE or
// TCP_RXTLS_ENABLE). The OS glue pins the byte slices and passes their
// addresses to Marshal; the *_len fields are the slice lengths.
type FreeBSDTLSEnable struct {
	CipherKey       []byte  // cipher_key
	IV              []byte  // iv: implicit IV (4 bytes for TLS 1.2 AES-GCM, else 12)
	AuthKey         []byte  // auth_key: empty for AEAD suites
	CipherAlgorithm int32   // cipher_algorithm: CRYPTO_AES_NIST_GCM_16 or CRYPTO_CHACHA20_POLY1305
	AuthAlgorithm   int32   // auth_algorithm: 0 for AEAD suites
	Flags           int32   // flags: must be 0
	TLSVMajor       uint8   // tls_vmajor: 3
	TLSVMinor       uint8   // tls_vminor: 3 for TLS 1.2, 4 for TLS 1.3
	RecSeq          [8]byte // rec_seq: big-endian sequence number of the next record
}

// FreeBSDEnable returns the struct tls_enable fields for the session. The
// CipherKey and IV slices alias s.Key and s.IV.
func (s *Session) FreeBSDEnable() (FreeBSDTLSEnable, error) {
	if err := s.Validate(); err != nil {
		return FreeBSDTLSEnable{}, err
	}
	e := FreeBSDTLSEnable{
		CipherKey:       s.Key,
		IV:              s.IV,
		CipherAlgorithm: freeBSDAESNISTGCM16,
		TLSVMajor:       freeBSDTLSMajorVerOne,
		TLSVMinor:       freeBSDTLSMinorVerTwo,
	}
	if s.Cipher() == CipherChaCha20Poly1305 {
		e.CipherAlgorithm = freeBSDChaCha20Poly1305
	}
	if s.Version == VersionTLS13 {
		e.TLSVMinor = freeBSDTLSMinorVerThree
	}
	binary.BigEndian.PutUint64(e.RecSeq[:], s.Seq)
	return e, nil
}

// Marshal returns the 64-byte LP64 layout of struct tls_enable in host byte
// order, with keyPtr, ivPtr and authPtr as the cipher_key, iv and auth_key
// pointers:
//
//	0 cipher_key, 8 iv, 16 auth_key, 24 cipher_algorithm, 28 cipher_key_len,
//	32 iv_len, 36 auth_algorithm, 40 auth_key_len, 44 flags,
//	48 tls_vmajor, 49 tls_vminor, 50 rec_seq[8], 58 padding
func (e *FreeBSDTLSEnable) Marshal(keyPtr, ivPtr, authPtr uint64) []byte {
	b := make([]byte, freeBSDTLSEnableSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[0:], keyPtr)
	ne.PutUint64(b[8:], ivPtr)
	ne.PutUint64(b[16:], authPtr)
	ne.PutUint32(b[24:], uint32(e.CipherAlgorithm))
	ne.PutUint32(b[28:], uint32(len(e.CipherKey)))
	ne.PutUint32(b[32:], uint32(len(e.IV)))
	ne.PutUint32(b[36:], uint32(e.AuthAlgorithm))
	ne.PutUint32(b[40:], uint32(len(e.AuthKey)))
	ne.PutUint32(b[44:], uint32(e.Flags))
	b[48] = e.TLSVMajor
	b[49] = e.TLSVMinor
	copy(b[freeBSDTLSEnableRecSeqOff:], e.RecSeq[:])
	return b
}
