package record

import (
	"crypto/tls"
	"strconv"
)

// ContentType is the type field of a TLS record header (RFC 5246 section
// 6.2.1, RFC 8446 section 5.1). Linux passes it in the TLS_SET_RECORD_TYPE and
// TLS_GET_RECORD_TYPE control messages, FreeBSD in TLS_SET_RECORD_TYPE and
// struct tls_get_record.
type ContentType uint8

// Record content types.
const (
	TypeChangeCipherSpec ContentType = 20
	TypeAlert            ContentType = 21
	TypeHandshake        ContentType = 22
	TypeApplicationData  ContentType = 23
)

// String returns the name of the content type as used in the RFCs, or a
// number for an unknown type.
func (t ContentType) String() string {
	switch t {
	case TypeChangeCipherSpec:
		return "change_cipher_spec"
	case TypeAlert:
		return "alert"
	case TypeHandshake:
		return "handshake"
	case TypeApplicationData:
		return "application_data"
	}
	return "content_type(" + strconv.Itoa(int(t)) + ")"
}

// valid reports whether t is one of the four content types TLS 1.2 and 1.3
// define for the record layer.
func (t ContentType) valid() bool {
	return t >= TypeChangeCipherSpec && t <= TypeApplicationData
}

const (
	// HeaderLen is the length of a TLS record header: type, legacy version
	// and length.
	HeaderLen = 5

	// MaxPlaintext is the largest payload of one record, 2^14 bytes
	// (TLS_MAX_PAYLOAD_SIZE in Linux, TLS_MAX_MSG_SIZE_V10_2 in FreeBSD).
	MaxPlaintext = 16384

	// VersionTLS12 is TLS 1.2, the same value as crypto/tls.VersionTLS12 and
	// Linux's TLS_1_2_VERSION.
	VersionTLS12 = 0x0303

	// VersionTLS13 is TLS 1.3, the same value as crypto/tls.VersionTLS13 and
	// Linux's TLS_1_3_VERSION.
	VersionTLS13 = 0x0304
)

const (
	// maxCiphertext13 bounds TLSCiphertext.length in TLS 1.3 (RFC 8446
	// section 5.2).
	maxCiphertext13 = MaxPlaintext + 256
	// maxCiphertext12 bounds TLSCiphertext.length in TLS 1.2 (RFC 5246
	// section 6.2.3).
	maxCiphertext12 = MaxPlaintext + 2048
	// tagLen is the authentication tag length of every supported AEAD.
	tagLen = 16
	// explicitNonceLen is the per-record nonce TLS 1.2 AES-GCM puts on the
	// wire (RFC 5288).
	explicitNonceLen = 8
	// nonceLen is the AEAD nonce length of every supported AEAD.
	nonceLen = 12
)

// Cipher is the AEAD protecting a session's records. Each value matches one
// Linux crypto_info layout and one FreeBSD cipher_algorithm.
type Cipher uint8

// Supported AEADs.
const (
	// CipherAES128GCM is AES-128-GCM (Linux TLS_CIPHER_AES_GCM_128, FreeBSD
	// CRYPTO_AES_NIST_GCM_16 with a 16-byte key).
	CipherAES128GCM Cipher = iota + 1
	// CipherAES256GCM is AES-256-GCM (Linux TLS_CIPHER_AES_GCM_256, FreeBSD
	// CRYPTO_AES_NIST_GCM_16 with a 32-byte key).
	CipherAES256GCM
	// CipherChaCha20Poly1305 is ChaCha20-Poly1305 (Linux
	// TLS_CIPHER_CHACHA20_POLY1305, FreeBSD CRYPTO_CHACHA20_POLY1305).
	CipherChaCha20Poly1305
)

// String returns the AEAD's name.
func (c Cipher) String() string {
	switch c {
	case CipherAES128GCM:
		return "AES-128-GCM"
	case CipherAES256GCM:
		return "AES-256-GCM"
	case CipherChaCha20Poly1305:
		return "ChaCha20-Poly1305"
	}
	return "cipher(" + strconv.Itoa(int(c)) + ")"
}

// KeyLen returns the key length of the AEAD in bytes, or 0 for an unknown
// Cipher.
func (c Cipher) KeyLen() int {
	switch c {
	case CipherAES128GCM:
		return 16
	case CipherAES256GCM, CipherChaCha20Poly1305:
		return 32
	}
	return 0
}

// suiteInfo describes one AEAD cipher suite.
type suiteInfo struct {
	cipher  Cipher
	version uint16 // VersionTLS12 or VersionTLS13
	sha384  bool   // PRF / HKDF hash is SHA-384 rather than SHA-256
}

// suiteOf returns what this package knows about an IANA cipher suite id.
func suiteOf(suite uint16) (suiteInfo, bool) {
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		return suiteInfo{CipherAES128GCM, VersionTLS13, false}, true
	case tls.TLS_AES_256_GCM_SHA384:
		return suiteInfo{CipherAES256GCM, VersionTLS13, true}, true
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		return suiteInfo{CipherChaCha20Poly1305, VersionTLS13, false}, true
	case tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		0x009e: // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
		return suiteInfo{CipherAES128GCM, VersionTLS12, false}, true
	case tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		0x009f: // TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
		return suiteInfo{CipherAES256GCM, VersionTLS12, true}, true
	case tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		0xccaa: // TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
		return suiteInfo{CipherChaCha20Poly1305, VersionTLS12, false}, true
	}
	return suiteInfo{}, false
}

// CipherOf returns the AEAD of an IANA cipher suite id (the value of
// tls.ConnectionState.CipherSuite). It reports false for CBC suites and
// suites this package does not know; those cannot be carried by the record
// layer or by Linux's kernel TLS.
func CipherOf(suite uint16) (Cipher, bool) {
	info, ok := suiteOf(suite)
	return info.cipher, ok
}
