package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/ktls-go/ktls/internal/handshake"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

// maxUselessRecords is how many records in a row may carry nothing (empty
// application data, TLS 1.2 warning alerts, TLS 1.3 user_canceled,
// post-handshake messages) before the connection is ended, as crypto/tls
// does (its maxUselessRecords).
const maxUselessRecords = 16

// ignoredLocked counts a record that carried nothing; past
// maxUselessRecords in a row it ends the connection with unexpected_message.
// c.in is held.
func (c *Conn) ignoredLocked() error {
	c.in.useless++
	if c.in.useless <= maxUselessRecords {
		return nil
	}
	counters.tooManyIgnored.Add(1)
	c.sendAlert(record.AlertUnexpectedMessage)
	return fmt.Errorf("ktls: more than %d records in a row carried nothing (empty data, warning alerts, KeyUpdates, tickets)", maxUselessRecords)
}

// refuse answers a record that may not come, or not so, with alert a,
// counts it (Control.Unexpected) and returns the error that says why.
func (c *Conn) refuse(a record.Alert, format string, args ...any) error {
	counters.unexpected.Add(1)
	c.sendAlert(a)
	return fmt.Errorf("ktls: "+format, args...)
}

// unexpected is refuse with unexpected_message.
func (c *Conn) unexpected(format string, args ...any) error {
	return c.refuse(record.AlertUnexpectedMessage, format, args...)
}

// helloRequests reports whether p is one or more TLS 1.2 HelloRequest
// messages (type 0, empty body).
func helloRequests(p []byte) bool {
	if len(p) == 0 || len(p)%4 != 0 {
		return false
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// control handles a record other than application data. It returns nil when
// the record is to be skipped. c.in is held.
func (c *Conn) control(typ record.ContentType, data []byte) error {
	if len(c.in.hs) > 0 && typ != record.TypeHandshake {
		// RFC 8446 section 5.1: no other record inside a handshake
		// message.
		return c.unexpected("%v record inside a fragmented handshake message", typ)
	}
	switch typ {
	case record.TypeAlert:
		if len(data) != 2 {
			// crypto/tls answers unexpected_message too.
			return c.unexpected("alert record of %d bytes", len(data))
		}
		level, desc := data[0], record.Alert(data[1])
		if desc == record.AlertCloseNotify {
			counters.closeNotify.Add(1)
			return io.EOF
		}
		counters.alerts.Add(1)
		switch {
		case c.state.Version == tls.VersionTLS12 && level == 1,
			// As crypto/tls, BoringSSL, NSS and rustls, TLS 1.3's
			// only warning alert is skipped too.
			c.state.Version == tls.VersionTLS13 && desc == record.AlertUserCanceled:
			return c.ignoredLocked()
		case c.state.Version == tls.VersionTLS12 && level != 2:
			return c.unexpected("alert of level %d", level)
		}
		c.out.peerFatal.Store(true) // see owedLocked
		return &net.OpError{Op: "remote error", Err: tls.AlertError(desc)}
	case record.TypeHandshake:
		if c.state.Version == tls.VersionTLS13 {
			return c.postHandshake(data)
		}
		if helloRequests(data) {
			// HelloRequest: TLS 1.2 renegotiation is refused as
			// crypto/tls refuses it: a warning no_renegotiation, and
			// reading ends with that error (a client whose tls.Config
			// allows renegotiation stays on crypto/tls; see
			// Config.policy).
			c.sendWarning(record.AlertNoRenegotiation)
			return &net.OpError{Op: "local error", Err: tls.AlertError(record.AlertNoRenegotiation)}
		}
	}
	return c.unexpected("unexpected %v record after the handshake", typ)
}

// Handshake message types after a TLS 1.3 handshake (RFC 8446 section 4).
const (
	typeNewSessionTicket = 4
	typeKeyUpdate        = 24
)

// postHandshake handles the TLS 1.3 post-handshake messages of one
// handshake record: NewSessionTicket (client only) and KeyUpdate. A message
// may be split across records (RFC 8446 section 5.1): its beginning waits in
// c.in.hs, and any other record before its end is unexpected_message. A
// KeyUpdate must end its record, as a key change must (unexpected_message).
// c.in is held.
func (c *Conn) postHandshake(rec []byte) error {
	if len(rec) == 0 {
		return c.refuse(record.AlertUnexpectedMessage, "empty handshake record after the handshake")
	}
	data := rec
	if len(c.in.hs) > 0 {
		c.in.hs = append(c.in.hs, rec...)
		data = c.in.hs
	}
	for len(data) >= 4 {
		n := 4 + (int(data[1])<<16 | int(data[2])<<8 | int(data[3]))
		if n > 4+maxPostHandshake {
			return c.refuse(record.AlertDecodeError, "post-handshake message of %d bytes", n-4)
		}
		if len(data) < n {
			break
		}
		msg := data[:n]
		data = data[n:]
		if err := c.ignoredLocked(); err != nil {
			return err
		}
		switch {
		case msg[0] == typeNewSessionTicket && c.isClient:
			if err := c.storeTicket(msg); err != nil {
				return c.refuse(record.AlertDecodeError, "%w", err)
			}
		case msg[0] == typeKeyUpdate:
			counters.keyUpdates.Add(1)
			switch {
			case len(data) > 0:
				return c.refuse(record.AlertUnexpectedMessage, "KeyUpdate not at the end of a record")
			case n != 5:
				return c.refuse(record.AlertDecodeError, "malformed KeyUpdate")
			case msg[4] > 1:
				// RFC 8446 section 4.6.3 (crypto/tls says
				// decode_error).
				return c.refuse(record.AlertIllegalParameter, "KeyUpdate with an unknown request_update value")
			}
			c.in.hs = c.in.hs[:0]
			return c.keyUpdate(msg[4] == 1)
		default:
			return c.refuse(record.AlertUnexpectedMessage, "unexpected handshake message type %d after the handshake", msg[0])
		}
	}
	// What is left is the beginning of a message.
	c.in.hs = append(c.in.hs[:0], data...)
	if c.rxMode.IsKernel() && rec[0] == typeKeyUpdate {
		// Linux took this record for a KeyUpdate (it looks at its
		// first byte only) and reads no further until it is re-keyed,
		// while what follows is under the same key: give it that key
		// again.
		if err := c.resumeKernelRX(); err != nil {
			counters.rekeyErrors.Add(1)
			return c.refuse(record.AlertInternalError, "a handshake record that starts like a KeyUpdate: %w", err)
		}
	}
	return nil
}

// resumeKernelRX installs the current receiving key again, at the sequence
// number the kernel is at, so that a kernel that paused after a record it
// took for a KeyUpdate (Linux 6.14 and later) reads on. Kernels that cannot
// re-key do not pause. c.in is held.
func (c *Conn) resumeKernelRX() error {
	if kernel.Rekey() != nil {
		return nil
	}
	s, err := record.TLS13Session(c.state.CipherSuite, c.rxSecret)
	if err != nil {
		return err
	}
	defer s.Wipe()
	if s.Seq, err = kernel.RecordSeq(c.rc, kernel.RX, s); err != nil {
		return err
	}
	return kernel.Enable(c.rc, kernel.RX, s)
}

// maxPostHandshake bounds the post-handshake messages kept while they
// arrive in pieces: a NewSessionTicket with its ticket and extensions.
const maxPostHandshake = 1 << 16

// storeTicket hands a TLS 1.3 NewSessionTicket message to crypto/tls, which
// stores it in the client's ClientSessionCache: the message is sealed again
// under the server's first application traffic key at the sequence number
// crypto/tls's reading is at (whatever KeyUpdates happened since, crypto/tls
// still has that key) and fed to the tls.Conn through the handshake conn
// (handshake.Conn.Feed), after which its Read meets handshake.ErrDetached, a
// timeout it does not record as an error. Without a cache the ticket is
// dropped. Both are counted. c.in is held.
func (c *Conn) storeTicket(msg []byte) error {
	c.ticketsAfter.Add(1)
	if c.tickets == nil {
		counters.ticketsDropped.Add(1)
		return nil
	}
	rec, err := c.tickets.Seal(nil, record.TypeHandshake, msg)
	if err != nil {
		return err
	}
	c.hc.Feed(rec)
	var one [1]byte
	if _, err := c.tls.Read(one[:]); !errors.Is(err, handshake.ErrDetached) {
		c.tickets = nil
		return fmt.Errorf("NewSessionTicket refused by crypto/tls: %v", err)
	}
	counters.ticketsStored.Add(1)
	return nil
}

// keyUpdate follows a KeyUpdate from the peer: the receiving direction moves
// to the next traffic secret, in the kernel (Linux 6.14 and later: TLS_RX
// again) or in user space. When the peer requested it, our own KeyUpdate is
// owed: it goes out before our next record (RFC 8446 section 4.6.3), so
// that Read never waits for the sending direction, and several requests
// received while we are silent get one answer. c.in is held.
func (c *Conn) keyUpdate(requested bool) error {
	s, err := nextSession(c.state.CipherSuite, &c.rxSecret)
	if err != nil {
		return err
	}
	defer s.Wipe()
	if c.rxMode.IsKernel() {
		err = kernel.Enable(c.rc, kernel.RX, s)
		if err != nil {
			err = fmt.Errorf("ktls: the peer sent a KeyUpdate and the kernel cannot re-key the receiving direction (TLS 1.3 rekey needs Linux 6.14 or later; use OffloadAuto or OffloadUser): %w", err)
		}
	} else {
		var o *record.Opener
		if o, err = record.NewOpener(s); err == nil {
			c.in.r.SetOpener(o)
		}
	}
	if err != nil {
		counters.rekeyErrors.Add(1)
		c.sendAlert(record.AlertInternalError)
		return err
	}
	counters.rekeysRX.Add(1)
	if requested {
		c.out.keyUpdate.Store(true)
	}
	return nil
}

// nextSession replaces *secret by the next TLS 1.3 traffic secret and
// returns the session it makes.
func nextSession(suite uint16, secret *[]byte) (*record.Session, error) {
	if *secret == nil {
		return nil, errors.New("ktls: no traffic secret to follow a KeyUpdate")
	}
	next, err := record.TLS13NextSecret(suite, *secret)
	if err != nil {
		return nil, err
	}
	clear(*secret)
	*secret = next
	return record.TLS13Session(suite, next)
}

// KeyUpdate sends a TLS 1.3 KeyUpdate message and moves the sending
// direction to the next traffic secret (RFC 8446 section 4.6.3), in the
// kernel (Linux 6.14 and later) or in user space. With requestPeer the
// message asks the peer to update its sending keys too
// (update_requested); Read follows the peer's KeyUpdate when it comes. It
// fails with an error wrapping errors.ErrUnsupported for TLS 1.2 and
// connections left on crypto/tls, and with an error wrapping the kernel's
// (EBUSY) where the kernel cannot re-key; nothing is sent then, and the
// connection goes on under the old key.
func (c *Conn) KeyUpdate(requestPeer bool) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	if c.txMode == ModeNone || c.state.Version != tls.VersionTLS13 {
		return fmt.Errorf("ktls: KeyUpdate needs TLS 1.3 with an offloaded sending direction: %w", errors.ErrUnsupported)
	}
	c.lockOut()
	defer c.unlockOut()
	if c.out.err != nil {
		return c.out.err
	}
	return c.updateTXLocked(requestPeer)
}

// updateTXLocked sends a KeyUpdate under the current sending key and moves
// the sending direction to the next traffic secret. It answers a KeyUpdate
// the peer requested, if one is owed. c.out is held and c.out.err nil.
func (c *Conn) updateTXLocked(requestPeer bool) error {
	if c.txMode.IsKernel() {
		// Refuse before the KeyUpdate goes out, so that the stream stays
		// usable where the kernel cannot follow it.
		if err := kernel.Rekey(); err != nil {
			counters.rekeyErrors.Add(1)
			return fmt.Errorf("ktls: the kernel cannot re-key the sending direction for a TLS 1.3 KeyUpdate (needs Linux 6.14 or later; use OffloadAuto or OffloadUser): %w", err)
		}
	}
	msg := []byte{typeKeyUpdate, 0, 0, 1, 0}
	if requestPeer {
		msg[4] = 1
	}
	c.out.keyUpdate.Store(false)
	if err := c.writeRecordLocked(record.TypeHandshake, msg); err != nil {
		return err
	}
	s, err := nextSession(c.state.CipherSuite, &c.txSecret)
	if err != nil {
		return err
	}
	defer s.Wipe()
	if c.txMode.IsKernel() {
		err = kernel.Enable(c.rc, kernel.TX, s)
	} else {
		var sealer *record.Sealer
		if sealer, err = record.NewSealer(s); err == nil {
			c.out.w.SetSealer(sealer)
		}
	}
	if err != nil {
		counters.rekeyErrors.Add(1)
		// The peer can no longer read what we send.
		c.out.closed, c.out.closeNotifyErr, c.out.err = true, err, err
		return err
	}
	c.out.records = 0
	counters.rekeysTX.Add(1)
	return nil
}

// recordsPerKey is the number of records after which the sending direction
// of a TLS 1.3 AES-GCM connection moves to a new key with a KeyUpdate: RFC
// 8446 section 5.5 allows 2^24.5 full records per key; 2^24 leaves room
// for the records being counted at most (see Conn.writeLocked). A variable
// so that tests can lower it.
var recordsPerKey uint64 = 1 << 24

// keyLimited reports whether the sending key is bounded by recordsPerKey:
// AES-GCM suites (ChaCha20-Poly1305 is bounded by the sequence number
// only).
func (c *Conn) keyLimited() bool {
	ci, _ := record.CipherOf(c.state.CipherSuite)
	return ci == record.CipherAES128GCM || ci == record.CipherAES256GCM
}

// prepareLocked readies the sending direction for a record other than an
// alert: it fails once the direction is closed, and first sends the
// KeyUpdate the peer requested or the one recordsPerKey makes due. Where no
// KeyUpdate can be sent (TLS 1.2; a kernel that cannot re-key), a key past
// the limit goes on and is counted once (Statistics.KeyLimitExceeded). c.out
// is held.
func (c *Conn) prepareLocked() error {
	if c.out.err != nil {
		return c.out.err
	}
	due := c.out.records >= recordsPerKey && c.keyLimited()
	if due && (c.state.Version != tls.VersionTLS13 || c.txMode.IsKernel() && kernel.Rekey() != nil) {
		if !c.out.overKey {
			c.out.overKey = true
			counters.keyLimitExceeded.Add(1)
		}
		due = false
	}
	if due || c.out.keyUpdate.Load() {
		return c.updateTXLocked(false)
	}
	return nil
}

// budgetLocked returns how many bytes of application data may be sent
// before prepareLocked must run again. c.out is held.
func (c *Conn) budgetLocked() int64 {
	if !c.keyLimited() || c.out.records >= recordsPerKey {
		return 1 << 62
	}
	return int64(recordsPerKey-c.out.records) * record.MaxPlaintext
}
