//go:build !linux && !freebsd

package kernel

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"github.com/ktls-go/ktls/record"
)

var errUnsupported = fmt.Errorf("kernel: no kernel TLS on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Supported reports why kernel TLS cannot be used: this OS has none. The
// error wraps errors.ErrUnsupported.
func Supported() error { return errUnsupported }

// Rekey reports whether the kernel can re-key a TLS 1.3 direction; never
// here: it fails with an error wrapping errors.ErrUnsupported.
func Rekey() error { return errUnsupported }

// Attach fails with an error wrapping errors.ErrUnsupported.
func Attach(c syscall.RawConn) error { return errUnsupported }

// Enable fails with an error wrapping errors.ErrUnsupported.
func Enable(c syscall.RawConn, d Direction, s *record.Session) error { return errUnsupported }

// RecordSeq fails with an error wrapping errors.ErrUnsupported.
func RecordSeq(c syscall.RawConn, d Direction, s *record.Session) (uint64, error) {
	return 0, errUnsupported
}

// SendRecord fails with an error wrapping errors.ErrUnsupported.
func SendRecord(c syscall.RawConn, typ record.ContentType, p []byte) (int, error) {
	return 0, errUnsupported
}

// DataReadSafe is false: there is no receive offload here.
const DataReadSafe = false

// SpliceRXSafe is false: there is no receive offload here.
func SpliceRXSafe() bool { return false }

// RecvRecord fails with an error wrapping errors.ErrUnsupported.
func RecvRecord(c syscall.RawConn, p []byte) (typ record.ContentType, n int, err error) {
	return 0, 0, errUnsupported
}

// RecvRecordLazy is RecvRecord into take's buffer.
func RecvRecordLazy(c syscall.RawConn, take func() []byte, drop func()) (typ record.ContentType, n int, err error) {
	return RecvRecord(c, take())
}

// AttachedSocketInfo fails with an error wrapping errors.ErrUnsupported.
func AttachedSocketInfo(c syscall.RawConn) (Info, error) { return Info{}, errUnsupported }

// SocketInfo fails with an error wrapping errors.ErrUnsupported.
func SocketInfo(c syscall.RawConn) (Info, error) { return Info{}, errUnsupported }

// Stats fails with an error wrapping errors.ErrUnsupported.
func Stats() (map[string]uint64, error) { return nil, errUnsupported }

// ClearError fails with an error wrapping errors.ErrUnsupported.
func ClearError(c syscall.RawConn) error { return errUnsupported }

// SetTXMode fails with an error wrapping errors.ErrUnsupported.
func SetTXMode(c syscall.RawConn, conf Conf) error { return errUnsupported }
