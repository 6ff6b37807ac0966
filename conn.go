package ktls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktls-go/ktls/internal/handshake"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
)

// Conn is a TLS connection whose handshake runs in crypto/tls and whose
// record layer then runs, per direction, in the kernel or in user space (or
// stays on crypto/tls when neither can carry the suite). It implements
// net.Conn, io.ReaderFrom and io.WriterTo. Read and Write may be called
// concurrently; Close unblocks both.
type Conn struct {
	conn         net.Conn // the socket
	hc           *handshake.Conn
	tls          *tls.Conn
	config       *Config
	clientConfig *tls.Config // the client's per-connection tls.Config
	isClient     bool

	handshakeMu  sync.Mutex
	handshakeErr error
	done         atomic.Bool // hand-off complete; the fields below are set
	state        tls.ConnectionState
	rc           syscall.RawConn // the socket, for the kernel; nil if not a syscall.Conn
	txMode       Mode            // as set at hand-off
	rxMode       Mode
	// TLS 1.3 application traffic secrets of each direction, kept to follow
	// KeyUpdates; txSecret is guarded by out, rxSecret by in.
	txSecret, rxSecret []byte

	closed atomic.Bool

	in struct {
		sync.Mutex
		r       *record.Reader // user-space RX
		pending []byte         // plaintext not returned yet
		scratch []byte         // kernel RX: room for a whole record
		err     error          // sticky: io.EOF after close_notify, or a fatal error
	}
	out struct {
		sync.Mutex
		w               *record.Writer // user-space TX
		closeNotifySent bool
		closeNotifyErr  error
	}

	// tickets seals NewSessionTicket messages received after the hand-off
	// for crypto/tls (see storeTicket): the server's first application
	// traffic key at the sequence number crypto/tls's reading is at. Set on
	// TLS 1.3 clients with a ClientSessionCache; guarded by in.
	tickets       *record.Sealer
	ticketsRead   int           // TLS 1.3 NewSessionTicket records crypto/tls read before the hand-off
	ticketsAfter  atomic.Uint64 // TLS 1.3 NewSessionTicket messages after the hand-off (stored or dropped)
	sendfileBytes atomic.Int64  // bytes sent by sendfile(2) in ReadFrom
}

var (
	errShutdown        = errors.New("ktls: protocol is shutdown")
	errEarlyCloseWrite = errors.New("ktls: CloseWrite called before handshake complete")
)

// Handshake runs the handshake and the hand-off if they have not run yet.
// Read and Write call it; use it to see handshake errors early.
func (c *Conn) Handshake() error {
	return c.HandshakeContext(context.Background())
}

// HandshakeContext is Handshake with a context that bounds the handshake.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.done.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.done.Load() {
		return nil
	}
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	err := c.tls.HandshakeContext(ctx)
	if err == nil {
		err = c.handOff()
	}
	if err != nil {
		counters.handshakeErrors.Add(1)
		c.handshakeErr = err
		return err
	}
	countOpen(c.txMode, c.rxMode)
	c.done.Store(true)
	return nil
}

// handOff moves the connection off crypto/tls: it derives the sessions of
// both directions and installs each one in the kernel or in the user-space
// record layer, per policy. After it, nothing touches the tls.Conn's record
// layer again.
func (c *Conn) handOff() error {
	st := c.tls.ConnectionState()
	txPol, rxPol := c.config.policy()
	if _, ok := record.CipherOf(st.CipherSuite); !ok || txPol == OffloadOff || rxPol == OffloadOff {
		if !ok && (txPol == OffloadKernel || rxPol == OffloadKernel) {
			c.hc.Detach()
			return fmt.Errorf("ktls: cipher suite %s cannot be offloaded", tls.CipherSuiteName(st.CipherSuite))
		}
		switch {
		case ok:
			counters.fbOff.Add(1)
		case strings.Contains(tls.CipherSuiteName(st.CipherSuite), "_CBC_") && !CBCEnabled():
			counters.fbCBC.Add(1)
		default:
			counters.fbCipher.Add(1)
		}
		c.hc.Passthrough()
		return nil
	}
	if c.isClient && st.Version == tls.VersionTLS13 && c.clientConfig.ClientSessionCache != nil && !c.clientConfig.SessionTicketsDisabled {
		n, err := c.hc.ReadTickets(c.tls, st.CipherSuite)
		c.ticketsRead = n
		if err != nil {
			c.hc.Detach()
			return err
		}
	}
	c.hc.Detach()
	c.state = c.tls.ConnectionState()
	c.txSecret, c.rxSecret = c.hc.TrafficSecrets()
	tx, rx, err := c.hc.Sessions(st.Version, st.CipherSuite)
	if err != nil {
		if txPol == OffloadKernel || rxPol == OffloadKernel {
			return err
		}
		// Nothing was read or written since the handshake: crypto/tls
		// can carry on.
		counters.fbSecrets.Add(1)
		c.wipeSecrets()
		c.hc.Passthrough()
		return nil
	}
	defer tx.Wipe()
	defer rx.Wipe()
	if c.isClient && st.Version == tls.VersionTLS13 && c.clientConfig.ClientSessionCache != nil && !c.clientConfig.SessionTicketsDisabled {
		if c.tickets, err = record.NewSealer(rx); err != nil {
			return err
		}
	}

	txKernel, err := c.wantKernel(txPol, st.Version)
	if err != nil {
		return err
	}
	rxKernel, err := c.wantKernel(rxPol, st.Version)
	if err != nil {
		return err
	}
	attached := false
	if txKernel || rxKernel {
		err := c.attach()
		if err != nil && (txPol == OffloadKernel || rxPol == OffloadKernel) {
			return err
		}
		if err != nil {
			counters.fbUnsupported.Add(1) // not a socket, or the kernel refused
		}
		attached = err == nil
	}
	if c.txMode, err = c.install(kernel.TX, tx, txPol, attached && txKernel); err != nil {
		return err
	}
	c.rxMode, err = c.install(kernel.RX, rx, rxPol, attached && rxKernel)
	return err
}

// wipeOnClose clears the kept traffic secrets of the directions not in use
// (a Read or Write blocked on the socket returns soon after Close anyway;
// its secret is then left to the garbage collector).
func (c *Conn) wipeOnClose() {
	if c.in.TryLock() {
		clear(c.rxSecret)
		c.rxSecret = nil
		c.in.Unlock()
	}
	if c.out.TryLock() {
		clear(c.txSecret)
		c.txSecret = nil
		c.out.Unlock()
	}
}

// wipeSecrets clears the kept traffic secrets.
func (c *Conn) wipeSecrets() {
	clear(c.txSecret)
	clear(c.rxSecret)
	c.txSecret, c.rxSecret = nil, nil
}

// install puts one direction's session in the kernel (when useKernel: the
// socket is attached and the policy asks for it) or in the user-space record
// layer, and returns the direction's mode. With policy OffloadAuto a kernel
// that refuses the session (old kernel, suite not built in) is not an error.
func (c *Conn) install(d kernel.Direction, s *record.Session, p Offload, useKernel bool) (Mode, error) {
	if useKernel {
		err := kernel.Enable(c.rc, d, s)
		if err == nil {
			return ModeKernel, nil
		}
		if p == OffloadKernel {
			return ModeNone, err
		}
		counters.fbUnsupported.Add(1)
	}
	if d == kernel.TX {
		sealer, err := record.NewSealer(s)
		if err != nil {
			return ModeNone, err
		}
		c.out.w = record.NewWriter(c.conn, sealer)
	} else {
		opener, err := record.NewOpener(s)
		if err != nil {
			return ModeNone, err
		}
		c.in.r = record.NewReader(c.conn, opener)
	}
	return ModeUser, nil
}

// wantKernel reports whether a direction with policy p should try the
// kernel, counting why OffloadAuto does not. OffloadKernel fails while the
// kernel is switched off (SetKernelEnabled).
func (c *Conn) wantKernel(p Offload, version uint16) (bool, error) {
	switch p {
	case OffloadKernel:
		if !KernelEnabled() {
			return false, errors.New("ktls: kernel TLS is switched off (SetKernelEnabled(false), KTLS_ENABLE=0)")
		}
		return true, nil
	case OffloadAuto:
		switch {
		case !KernelEnabled():
			counters.fbDisabled.Add(1)
		case kernel.Supported() != nil:
			counters.fbUnsupported.Add(1)
		case version == tls.VersionTLS13 && !c.config.kernelWithoutRekey() && kernel.Rekey() != nil:
			counters.fbRekey.Add(1)
		default:
			return true, nil
		}
	}
	return false, nil
}

// attach attaches the kernel's TLS to the socket (Linux TCP_ULP "tls").
func (c *Conn) attach() error {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("ktls: %T is not a socket: %w", c.conn, errors.ErrUnsupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	if err := kernel.Attach(rc); err != nil {
		return err
	}
	c.rc = rc
	return nil
}

// Mode reports who carries each direction's records. With OffloadAuto a
// TLS 1.3 direction is in the kernel only where the kernel can follow a
// KeyUpdate (Linux 6.14 and later), unless Config.KernelWithoutRekey is set;
// otherwise it is ModeUser. Where the kernel
// carries a direction, the mode is read from the kernel (Linux sock_diag
// TLS_INFO_TXCONF / TLS_INFO_RXCONF, FreeBSD TCP_TXTLS_MODE /
// TCP_RXTLS_MODE), so it tells software from device offload. Before the
// handshake both are ModeNone.
func (c *Conn) Mode() (tx, rx Mode) {
	if !c.done.Load() {
		return ModeNone, ModeNone
	}
	tx, rx = c.txMode, c.rxMode
	if c.rc != nil && (tx.IsKernel() || rx.IsKernel()) {
		if info, err := kernel.SocketInfo(c.rc); err == nil {
			if tx.IsKernel() {
				tx = modeOf(info.TX)
			}
			if rx.IsKernel() {
				rx = modeOf(info.RX)
			}
		}
	}
	return tx, rx
}

// modeOf maps a kernel configuration to a Mode.
func modeOf(conf kernel.Conf) Mode {
	switch conf {
	case kernel.ConfSW:
		return ModeKernel
	case kernel.ConfHW:
		return ModeKernelDevice
	case kernel.ConfHWRecord:
		return ModeKernelTOE
	}
	return ModeNone
}

// ErrTruncated is returned by Read (and WriteTo) when the peer closed the
// connection without close_notify, between records or inside one, so that a
// truncation attack can be told from a clean io.EOF. errors.Is(err,
// io.ErrUnexpectedEOF) is true for it. It is record.ErrTruncated: one
// sentinel for both packages.
var ErrTruncated = record.ErrTruncated

// Read reads application data, running the handshake first if needed.
//
// Records other than application data are handled as crypto/tls handles
// them, on both engines: a close_notify alert ends the stream with io.EOF; a
// peer that closes without one gets ErrTruncated; another alert is returned
// as a *net.OpError holding a tls.AlertError naming it, as crypto/tls does
// (TLS 1.2 warning alerts are skipped); a TLS 1.3 KeyUpdate re-keys the
// receiving direction and, when the peer asks for it, is answered with our
// own KeyUpdate and a new sending key; a TLS 1.3 NewSessionTicket on a
// client is stored in the client's ClientSessionCache by crypto/tls when
// one is configured (Statistics.Control.TicketsStored), else dropped
// (TicketsDropped); anything else (ChangeCipherSpec, other handshake
// messages, an unknown type) is answered with an unexpected_message alert and
// an error. A bad record gives the errors of package record, wrapping
// EBADMSG, EMSGSIZE or EINVAL, and the matching alert is sent to the peer.
// All of these errors but timeouts stick: later Reads return them again.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.rxMode == ModeNone {
		return c.tls.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.in.Lock()
	defer c.in.Unlock()
	return c.readLocked(p)
}

// readLocked is Read with c.in held.
func (c *Conn) readLocked(p []byte) (int, error) {
	for {
		if len(c.in.pending) > 0 {
			n := copy(p, c.in.pending)
			c.in.pending = c.in.pending[n:]
			return n, nil
		}
		if c.in.err != nil {
			return 0, c.in.err
		}
		buf := p
		if c.rxMode.IsKernel() && len(buf) < record.MaxPlaintext {
			buf = nil
		}
		typ, data, err := c.recvLocked(buf)
		if err != nil {
			return 0, err
		}
		if typ == record.TypeApplicationData {
			if len(data) > 0 && &data[0] == &p[0] {
				return len(data), nil
			}
			c.in.pending = data
			continue
		}
		if err := c.control(typ, data); err != nil {
			c.in.err = err
		}
	}
}

// recvLocked reads the next record from the engine that owns RX, into buf
// if buf is not nil and (in user space) the record fits, else into c.in's
// buffers, and counts it. At the end of the stream and on bad records it
// sets c.in.err; c.in is held.
func (c *Conn) recvLocked(buf []byte) (record.ContentType, []byte, error) {
	var (
		typ  record.ContentType
		data []byte
	)
	if c.rxMode.IsKernel() {
		if buf == nil {
			buf = c.scratch()
		}
		t, n, err := kernel.RecvRecord(c.rc, buf)
		if err != nil {
			return 0, nil, c.readError(err)
		}
		if t == 0 && n == 0 {
			return 0, nil, c.readError(io.EOF)
		}
		typ, data = t, buf[:n]
	} else {
		t, d, err := c.in.r.ReadRecordTo(buf)
		if err != nil {
			return 0, nil, c.readError(err)
		}
		typ, data = t, d
	}
	counters.recordsRX.Add(1)
	counters.bytesRX.Add(uint64(len(data)))
	return typ, data, nil
}

// scratch returns a buffer for one whole record's payload; c.in is held.
func (c *Conn) scratch() []byte {
	if c.in.scratch == nil {
		c.in.scratch = make([]byte, record.MaxPlaintext)
	}
	return c.in.scratch
}

// readError records a fatal read error (a bad record, the end of the
// stream without close_notify), counts it and answers a bad record with its
// alert. Timeouts and other transient errors are returned as they are.
func (c *Conn) readError(err error) error {
	if err == io.EOF || errors.Is(err, record.ErrTruncated) {
		counters.badTruncated.Add(1)
		if err == io.EOF {
			err = ErrTruncated
		}
		c.in.err = err
		return err
	}
	var rerr *record.Error
	alert, bad := record.AlertInternalError, false
	if errors.As(err, &rerr) {
		alert, bad = rerr.Alert, true
	}
	// The kernel's errors for bad records, answered with the alerts
	// OpenSSL sends for them.
	for _, e := range []struct {
		errno syscall.Errno
		alert record.Alert
		n     *atomic.Uint64
	}{
		{syscall.EBADMSG, record.AlertBadRecordMAC, &counters.badMAC},
		{syscall.EMSGSIZE, record.AlertRecordOverflow, &counters.badOverflow},
		{syscall.EINVAL, record.AlertProtocolVersion, &counters.badInvalid},
	} {
		if errors.Is(err, e.errno) {
			e.n.Add(1)
			if !bad {
				alert, bad = e.alert, true
			}
			break
		}
	}
	if bad {
		c.in.err = err
		c.sendAlert(alert)
	}
	return err
}

// control handles a record other than application data. It returns nil when
// the record is to be skipped.
func (c *Conn) control(typ record.ContentType, data []byte) error {
	switch typ {
	case record.TypeAlert:
		if len(data) != 2 {
			counters.unexpected.Add(1)
			c.sendAlert(record.AlertDecodeError)
			return errors.New("ktls: malformed alert record")
		}
		if data[1] == byte(record.AlertCloseNotify) {
			counters.closeNotify.Add(1)
			return io.EOF
		}
		counters.alerts.Add(1)
		if c.state.Version == tls.VersionTLS12 && data[0] == 1 { // warning level
			return nil
		}
		return &net.OpError{Op: "remote error", Err: tls.AlertError(data[1])}
	case record.TypeHandshake:
		if c.state.Version == tls.VersionTLS13 {
			return c.postHandshake(data)
		}
	}
	counters.unexpected.Add(1)
	c.sendAlert(record.AlertUnexpectedMessage)
	return fmt.Errorf("ktls: unexpected %v record after the handshake", typ)
}

// Handshake message types after a TLS 1.3 handshake (RFC 8446 section 4).
const (
	typeNewSessionTicket = 4
	typeKeyUpdate        = 24
)

// postHandshake handles the TLS 1.3 post-handshake messages of one
// handshake record: NewSessionTicket (client only) and KeyUpdate. A message
// split across records is refused (decode_error); so is a KeyUpdate that is
// not the last message of its record (unexpected_message, RFC 8446 section
// 5.1).
func (c *Conn) postHandshake(data []byte) error {
	fail := func(a record.Alert, msg string) error {
		counters.unexpected.Add(1)
		c.sendAlert(a)
		return errors.New("ktls: " + msg)
	}
	if len(data) == 0 {
		return fail(record.AlertUnexpectedMessage, "empty handshake record after the handshake")
	}
	for len(data) > 0 {
		if len(data) < 4 || len(data) < 4+(int(data[1])<<16|int(data[2])<<8|int(data[3])) {
			return fail(record.AlertDecodeError, "post-handshake message split across records")
		}
		n := 4 + (int(data[1])<<16 | int(data[2])<<8 | int(data[3]))
		msg := data[:n]
		data = data[n:]
		switch {
		case msg[0] == typeNewSessionTicket && c.isClient:
			if err := c.storeTicket(msg); err != nil {
				return fail(record.AlertDecodeError, err.Error())
			}
		case msg[0] == typeKeyUpdate:
			counters.keyUpdates.Add(1)
			switch {
			case len(data) > 0:
				return fail(record.AlertUnexpectedMessage, "KeyUpdate not at the end of a record")
			case n != 5:
				return fail(record.AlertDecodeError, "malformed KeyUpdate")
			case msg[4] > 1:
				return fail(record.AlertIllegalParameter, "KeyUpdate with an unknown request_update value")
			}
			return c.keyUpdate(msg[4] == 1)
		default:
			return fail(record.AlertUnexpectedMessage, fmt.Sprintf("unexpected handshake message type %d after the handshake", msg[0]))
		}
	}
	return nil
}

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
// again) or in user space; when the peer requested it, our own KeyUpdate is
// sent and the sending direction moves on too. c.in is held.
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
	if !requested {
		return nil
	}
	c.out.Lock()
	defer c.out.Unlock()
	return c.updateTXLocked(false)
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
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closeNotifySent {
		return errShutdown
	}
	return c.updateTXLocked(requestPeer)
}

// updateTXLocked sends a KeyUpdate under the current sending key and moves
// the sending direction to the next traffic secret. After close_notify it
// does nothing. c.out is held.
func (c *Conn) updateTXLocked(requestPeer bool) error {
	if c.out.closeNotifySent {
		return nil
	}
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
		c.out.closeNotifySent, c.out.closeNotifyErr = true, err
		return err
	}
	counters.rekeysTX.Add(1)
	return nil
}

// sendAlert sends a fatal alert to the peer if no Write is in progress.
func (c *Conn) sendAlert(a record.Alert) {
	if !c.out.TryLock() {
		return
	}
	defer c.out.Unlock()
	if c.out.closeNotifySent {
		return
	}
	c.out.closeNotifySent = true
	c.out.closeNotifyErr = errShutdown
	alert := []byte{2, byte(a)}
	if err := c.writeRecordLocked(record.TypeAlert, alert); err != nil && c.txMode.IsKernel() {
		// Linux leaves the error of a record it could not authenticate
		// (EBADMSG) pending on the socket, and every send fails until
		// it is cleared.
		if kernel.ClearError(c.rc) != nil {
			c.writeRecordLocked(record.TypeAlert, alert)
		}
	}
}

// WriteRecord sends p as one record of content type typ, as ktls(4) and
// Linux do for sendmsg with a TLS_SET_RECORD_TYPE control message: through
// the kernel when it owns the sending direction, else through the
// user-space record layer. len(p) must not exceed record.MaxPlaintext
// (else EMSGSIZE), and typ must be one TLS defines (20 to 23, not
// change_cipher_spec after a TLS 1.3 handshake; else EINVAL).
// Linux's kernel TLS makes no record of an empty sendmsg, so there an empty
// p fails with an error wrapping EINVAL; in user space it sends a
// zero-length record. The caller speaks the protocol: a KeyUpdate sent this
// way does not change our keys. On a connection left on crypto/tls
// (ModeNone) WriteRecord fails with an error wrapping errors.ErrUnsupported.
func (c *Conn) WriteRecord(typ record.ContentType, p []byte) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	if c.txMode == ModeNone {
		return fmt.Errorf("ktls: WriteRecord on a connection left on crypto/tls: %w", errors.ErrUnsupported)
	}
	if len(p) > record.MaxPlaintext {
		return fmt.Errorf("ktls: record payload of %d bytes: %w", len(p), syscall.EMSGSIZE)
	}
	if typ < record.TypeChangeCipherSpec || typ > record.TypeApplicationData || typ == record.TypeChangeCipherSpec && c.state.Version == tls.VersionTLS13 {
		return fmt.Errorf("ktls: cannot send a %v record after a %s handshake: %w", typ, tls.VersionName(c.state.Version), syscall.EINVAL)
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closeNotifySent {
		return errShutdown
	}
	return c.writeRecordLocked(typ, p)
}

// ReadRecord reads the next record, of any content type, and returns its
// header and its payload, which is valid until the next read: through the
// kernel when it owns the receiving direction (recvmsg with
// TLS_GET_RECORD_TYPE on Linux, TLS_GET_RECORD on FreeBSD), else through the
// user-space record layer. The header's Version is the record layer's
// legacy version (0x0303) and its Length the payload's length (the
// plaintext's, as the kernels report it). Records are returned as they are,
// zero-length ones included (except that Linux's kernel TLS passes over
// zero-length application data records); the only one acted upon is a TLS 1.3 KeyUpdate,
// which is followed as Read follows it so that the next record can be read.
// The end of the stream without a close_notify record gives ErrTruncated,
// and bad records the errors Read returns. Plaintext that a Read left
// buffered is returned first, as an application data record. On a
// connection left on crypto/tls (ModeNone) ReadRecord fails with an error
// wrapping errors.ErrUnsupported.
func (c *Conn) ReadRecord() (record.Header, []byte, error) {
	if err := c.Handshake(); err != nil {
		return record.Header{}, nil, err
	}
	if c.rxMode == ModeNone {
		return record.Header{}, nil, fmt.Errorf("ktls: ReadRecord on a connection left on crypto/tls: %w", errors.ErrUnsupported)
	}
	c.in.Lock()
	defer c.in.Unlock()
	hdr := func(t record.ContentType, p []byte) record.Header {
		return record.Header{Type: t, Version: record.VersionTLS12, Length: len(p)}
	}
	if len(c.in.pending) > 0 {
		p := c.in.pending
		c.in.pending = nil
		return hdr(record.TypeApplicationData, p), p, nil
	}
	if c.in.err != nil {
		return record.Header{}, nil, c.in.err
	}
	typ, data, err := c.recvLocked(nil)
	if err != nil {
		return record.Header{}, nil, err
	}
	if typ == record.TypeHandshake && c.state.Version == tls.VersionTLS13 && len(data) == 5 && data[0] == typeKeyUpdate && data[4] <= 1 {
		counters.keyUpdates.Add(1)
		if err := c.keyUpdate(data[4] == 1); err != nil {
			c.in.err = err
			return record.Header{}, nil, err
		}
	}
	return hdr(typ, data), data, nil
}

// Write writes application data, running the handshake first if needed.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.txMode == ModeNone {
		return c.tls.Write(p)
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closeNotifySent {
		return 0, errShutdown
	}
	var (
		n   int
		err error
	)
	if c.txMode.IsKernel() {
		n, err = c.conn.Write(p)
	} else {
		n, err = c.out.w.Write(p)
	}
	countTX(int64(n))
	return n, err
}

// countTX counts n application data bytes sent in full-size records.
func countTX(n int64) {
	if n > 0 {
		counters.recordsTX.Add(recordsOf(n))
		counters.bytesTX.Add(uint64(n))
	}
}

// writeRecordLocked sends one record of type typ; c.out is held.
func (c *Conn) writeRecordLocked(typ record.ContentType, p []byte) error {
	var err error
	if c.txMode.IsKernel() {
		_, err = kernel.SendRecord(c.rc, typ, p)
	} else {
		err = c.out.w.WriteRecord(typ, p)
	}
	if err == nil {
		counters.recordsTX.Add(1)
		counters.bytesTX.Add(uint64(len(p)))
	}
	return err
}

// closeNotifyLocked sends close_notify once, as crypto/tls does: with a
// five-second write deadline, after which writes fail.
func (c *Conn) closeNotifyLocked() error {
	if !c.out.closeNotifySent {
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.out.closeNotifyErr = c.writeRecordLocked(record.TypeAlert, []byte{1, byte(record.AlertCloseNotify)})
		c.out.closeNotifySent = true
		c.conn.SetWriteDeadline(time.Now())
	}
	return c.out.closeNotifyErr
}

// CloseWrite sends close_notify; the peer reads io.EOF. Further writes
// fail. The TCP connection stays open for reading.
func (c *Conn) CloseWrite() error {
	if !c.done.Load() {
		return errEarlyCloseWrite
	}
	if c.txMode == ModeNone {
		return c.tls.CloseWrite()
	}
	c.out.Lock()
	defer c.out.Unlock()
	return c.closeNotifyLocked()
}

// Close sends close_notify (unless a Write is blocked) and closes the
// socket, which unblocks pending Reads and Writes.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if !c.done.Load() {
		return c.conn.Close()
	}
	countClose(c.txMode, c.rxMode)
	defer c.wipeOnClose()
	if c.txMode == ModeNone {
		return c.tls.Close()
	}
	var alertErr error
	if c.out.TryLock() {
		if err := c.closeNotifyLocked(); err != nil && err != errShutdown {
			alertErr = fmt.Errorf("ktls: failed to send closeNotify alert (but connection was closed anyway): %w", err)
		}
		c.out.Unlock()
	}
	if err := c.conn.Close(); err != nil {
		return err
	}
	return alertErr
}

// ConnectionState returns the state of the handshake (version, cipher
// suite, ALPN, peer certificates, resumption...) as crypto/tls reports it;
// after the hand-off, as it was then.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if c.done.Load() && c.txMode != ModeNone {
		return c.state
	}
	return c.tls.ConnectionState()
}

// NetConn returns the underlying connection. Writing to or reading from it
// directly corrupts the TLS stream.
func (c *Conn) NetConn() net.Conn { return c.conn }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the connection, as
// net.Conn does. A Write that times out leaves the stream broken.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
