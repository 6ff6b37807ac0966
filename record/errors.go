package record

import (
	"io"
	"strconv"
	"syscall"
)

// Alert is a TLS alert description (RFC 8446 section 6). An Error carries the
// alert a connection should send to its peer before closing.
type Alert uint8

// Alert descriptions this package reports, plus the ones a connection sends
// most often.
const (
	AlertCloseNotify       Alert = 0
	AlertUnexpectedMessage Alert = 10
	AlertBadRecordMAC      Alert = 20
	AlertRecordOverflow    Alert = 22
	AlertHandshakeFailure  Alert = 40
	AlertIllegalParameter  Alert = 47
	AlertDecodeError       Alert = 50
	AlertDecryptError      Alert = 51
	AlertProtocolVersion   Alert = 70
	AlertInternalError     Alert = 80
	AlertUserCanceled      Alert = 90
	AlertNoRenegotiation   Alert = 100
)

// String returns the alert's name as used in the RFCs.
func (a Alert) String() string {
	switch a {
	case AlertCloseNotify:
		return "close_notify"
	case AlertUnexpectedMessage:
		return "unexpected_message"
	case AlertBadRecordMAC:
		return "bad_record_mac"
	case AlertRecordOverflow:
		return "record_overflow"
	case AlertHandshakeFailure:
		return "handshake_failure"
	case AlertIllegalParameter:
		return "illegal_parameter"
	case AlertDecodeError:
		return "decode_error"
	case AlertDecryptError:
		return "decrypt_error"
	case AlertProtocolVersion:
		return "protocol_version"
	case AlertInternalError:
		return "internal_error"
	case AlertUserCanceled:
		return "user_canceled"
	case AlertNoRenegotiation:
		return "no_renegotiation"
	}
	return "alert(" + strconv.Itoa(int(a)) + ")"
}

// Error is a record-layer failure. It mirrors the errors ktls(4) and Linux's
// TLS ULP return for bad records, and says which alert to send:
//
//	wrong legacy version              EINVAL    protocol_version
//	unknown or unexpected outer type  EINVAL    unexpected_message
//	length above the protocol limit   EMSGSIZE  record_overflow
//	length below the AEAD's minimum   EBADMSG   bad_record_mac
//	stream ended inside a record      EMSGSIZE  decode_error (Err is ErrTruncated)
//	authentication failed             EBADMSG   bad_record_mac
//	TLS 1.3 inner type unknown/CCS    EBADMSG   unexpected_message
//	TLS 1.3 plaintext empty or zeros  EBADMSG   unexpected_message
//	sequence number exhausted         EBADMSG   internal_error (Err is ErrSeqOverflow)
//
// errors.Is(err, syscall.EBADMSG) and the like work on an Error.
type Error struct {
	Op    string // "parse", "open", "seal", "read" or "write"
	Alert Alert  // alert to send to the peer
	Err   error  // a syscall.Errno, or a sentinel of this package that wraps one
}

// Error returns a message naming the operation, the cause and the alert. It
// never contains key material or record contents.
func (e *Error) Error() string {
	return "record: " + e.Op + ": " + e.Err.Error() + " (alert " + e.Alert.String() + ")"
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// sentinel is an error value of this package that wraps an errno.
type sentinel struct {
	msg   string
	errno syscall.Errno
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.errno }

// truncated is ErrTruncated's type: it matches both io.ErrUnexpectedEOF and
// syscall.EMSGSIZE.
type truncated struct{}

func (truncated) Error() string   { return "stream ended without close_notify" }
func (truncated) Unwrap() []error { return []error{io.ErrUnexpectedEOF, syscall.EMSGSIZE} }

var (
	// ErrTruncated reports that the peer's stream ended without
	// close_notify: inside a record (Reader), as ktls(4) reports EMSGSIZE
	// for a record truncated at close, or, for package ktls's Conn, between
	// records. It is the one truncation error of both packages (ktls's
	// ErrTruncated is this value) and wraps io.ErrUnexpectedEOF and
	// syscall.EMSGSIZE.
	ErrTruncated error = truncated{}

	// ErrSeqOverflow reports that the 64-bit record sequence number of a
	// direction is exhausted; the connection must rekey (TLS 1.3) or close.
	// Linux reports EBADMSG in this case; ErrSeqOverflow wraps
	// syscall.EBADMSG.
	ErrSeqOverflow error = &sentinel{"record sequence number exhausted", syscall.EBADMSG}
)

func errorf(op string, alert Alert, err error) error {
	return &Error{Op: op, Alert: alert, Err: err}
}
