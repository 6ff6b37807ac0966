package record

import "syscall"

// Header is a parsed TLS record header, the fields FreeBSD returns in struct
// tls_get_record.
type Header struct {
	Type    ContentType
	Version uint16 // legacy_record_version as on the wire
	Length  int    // length of the record body after the header
}

// ParseHeader parses and checks the record header at the start of b, which
// must hold at least HeaderLen bytes, for a connection that negotiated
// version (VersionTLS12 or VersionTLS13). It applies the checks ktls(4) and
// Linux apply to received records, returning an *Error:
//
//   - the content type must be one TLS defines (20..23), and for TLS 1.3,
//     where every record after the handshake is protected,
//     application_data; else EINVAL with unexpected_message;
//   - the legacy version must be 0x0303, else EINVAL with protocol_version;
//   - the length must not exceed 2^14+256 (TLS 1.3) or 2^14+2048 (TLS 1.2),
//     else EMSGSIZE with record_overflow, and must leave room for an AEAD
//     tag, else EBADMSG with bad_record_mac: such a record cannot
//     authenticate, and crypto/tls and Linux (tls_rx_msg_size) answer it
//     so.
//
// A version of 0 means "not yet negotiated": any legacy version 0x0301 to
// 0x0303 is accepted (a ClientHello may carry 0x0301), the length must not
// exceed 2^14 (TLSPlaintext), and no minimum applies; this is for plaintext
// handshake records only.
func ParseHeader(b []byte, version uint16) (Header, error) {
	h := Header{
		Type:    ContentType(b[0]),
		Version: uint16(b[1])<<8 | uint16(b[2]),
		Length:  int(b[3])<<8 | int(b[4]),
	}
	if !h.Type.valid() ||
		version == VersionTLS13 && h.Type != TypeApplicationData {
		return h, errorf("parse", AlertUnexpectedMessage, syscall.EINVAL)
	}
	switch version {
	case VersionTLS12, VersionTLS13:
		if h.Version != VersionTLS12 {
			return h, errorf("parse", AlertProtocolVersion, syscall.EINVAL)
		}
	case 0:
		if h.Version < 0x0301 || h.Version > VersionTLS12 {
			return h, errorf("parse", AlertProtocolVersion, syscall.EINVAL)
		}
	default:
		return h, errorf("parse", AlertInternalError, syscall.EINVAL)
	}
	if h.Length > maxCiphertext(version) {
		return h, errorf("parse", AlertRecordOverflow, syscall.EMSGSIZE)
	}
	if h.Length < minCiphertext(version) {
		return h, errorf("parse", AlertBadRecordMAC, syscall.EBADMSG)
	}
	return h, nil
}

// maxCiphertext is the largest record body allowed for version.
func maxCiphertext(version uint16) int {
	switch version {
	case VersionTLS13:
		return maxCiphertext13
	case VersionTLS12:
		return maxCiphertext12
	}
	return MaxPlaintext
}

// minCiphertext is the smallest protected record body for version, whatever
// the AEAD: a tag. Opener.Open checks the AEAD's exact minimum. A TLS 1.3
// body of only a tag may authenticate, and is then refused for carrying no
// content type (unexpected_message), as RFC 8446 section 5.4 says.
func minCiphertext(version uint16) int {
	if version == VersionTLS12 || version == VersionTLS13 {
		return tagLen
	}
	return 0
}
