package ktls

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

// Session is the record state of one direction (version, cipher suite, key,
// IV or salt, next sequence number): what ktls(4)'s struct tls_enable and
// Linux's tls12_crypto_info_* carry. See package record.
type Session = record.Session

// Direction names one direction of a connection's records, as ktls(4)'s
// TCP_TXTLS_ENABLE and TCP_RXTLS_ENABLE do.
type Direction int

const (
	// TX is the sending direction.
	TX Direction = iota
	// RX is the receiving direction.
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

// Install hands one direction of an established TCP connection to the
// kernel, for programs that run their own handshake: it attaches Linux's
// TLS upper layer protocol (TCP_ULP "tls") unless it is attached already,
// and installs s with setsockopt SOL_TLS TLS_TX or TLS_RX (FreeBSD:
// TCP_TXTLS_ENABLE or TCP_RXTLS_ENABLE with a struct tls_enable).
//
// From then on the kernel seals what is written to conn as application_data
// records, starting at sequence number s.Seq, or opens the records that
// arrive and returns their plaintext. A control record makes a plain read
// fail (EIO on Linux); reading it needs recvmsg with a control message
// buffer, which Conn does. Installing a direction again re-keys it where
// the kernel can (TLS 1.3, Linux 6.14 and later) and fails with EBUSY
// (FreeBSD: EALREADY) elsewhere. Errors wrap the kernel's errno. s is not
// kept; the caller may wipe it afterwards.
func Install(conn net.Conn, d Direction, s *Session) error {
	if d != TX && d != RX {
		return fmt.Errorf("ktls: install: bad direction %v: %w", d, syscall.EINVAL)
	}
	if s == nil {
		return fmt.Errorf("ktls: install %v: no session: %w", d, syscall.EINVAL)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("ktls: install %v: %w", d, err)
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("ktls: install %v: %T is not a socket: %w", d, conn, errors.ErrUnsupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("ktls: install %v: %w", d, err)
	}
	if err := kernel.Attach(rc); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("ktls: install %v: %w", d, err)
	}
	kd := kernel.TX
	if d == RX {
		kd = kernel.RX
	}
	if err := kernel.Enable(rc, kd, s); err != nil {
		return fmt.Errorf("ktls: install %v: %w", d, err)
	}
	return nil
}
