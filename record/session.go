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
