package ktls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
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

	in, out halfConn // the receiving and the sending direction (see halfConn)

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
	if c.txMode != ModeNone && c.tickets == nil {
		// Nothing reads or writes through crypto/tls any more: let its
		// record layer (AEADs, buffers) and its per-connection
		// tls.Config go. ConnectionState is in c.state. A TLS 1.3
		// client with a session cache keeps both for storeTicket.
		c.tls, c.hc, c.clientConfig = nil, nil, nil
	}
	c.done.Store(true)
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
		if info, err := kernel.AttachedSocketInfo(c.rc); err == nil {
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
// (TLS 1.2 warning alerts and TLS 1.3 user_canceled are skipped); a TLS 1.3
// KeyUpdate re-keys the receiving direction and, when the peer asks for it,
// makes our own KeyUpdate and new sending key go out before our next record
// (RFC 8446 section 4.6.3: Read itself never waits to send); a TLS 1.3
// NewSessionTicket on a client is stored in the client's ClientSessionCache
// by crypto/tls when one is configured (Statistics.Control.TicketsStored),
// else dropped (TicketsDropped); post-handshake messages may be split across
// records; a TLS 1.2 HelloRequest is refused with a warning
// no_renegotiation, and Read returns that error; anything else (ChangeCipherSpec, other handshake
// messages, an unknown type, a record inside a split handshake message) is
// answered with an unexpected_message alert and an error. More than 16
// records in a row that carry nothing (empty application data, skipped
// alerts, post-handshake messages) end the connection with
// unexpected_message, as in crypto/tls. A bad record gives the errors of package record, wrapping
// EBADMSG, EMSGSIZE or EINVAL, and the matching alert is sent to the peer:
// by the Write that holds the sending direction once its send is done, else
// by Read itself, which then waits for room in the socket (up to the write
// deadline) as crypto/tls does.
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
			c.releaseScratch()
			return n, nil
		}
		c.releaseScratch()
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
		if typ == record.TypeApplicationData && len(c.in.hs) == 0 {
			if len(data) == 0 {
				// The kernel skips these itself.
				if err := c.ignoredLocked(); err != nil {
					c.in.err = err
				}
				continue
			}
			c.in.useless = 0
			if &data[0] == &p[0] {
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
		var (
			t   record.ContentType
			n   int
			err error
		)
		if buf == nil && c.in.scratch == nil && kernel.SpliceRXSafe() {
			// Hold a record's room only while there is something
			// to read: an idle connection holds none. A record
			// already there (a busy connection, an HTTP/2 one) is
			// read with one recvmsg; else the room goes back and
			// the read waits for input. Before Linux 5.16 (and on
			// FreeBSD, untried) the buffer is taken first: a
			// non-blocking read there can leave a zero-length
			// control record unseen (5.10, in the lab).
			t, n, err = kernel.RecvRecordLazy(c.rc, c.scratch, func() {
				c.in.waits++
				c.releaseScratch()
			})
			buf = c.in.scratch
		} else {
			if buf == nil {
				buf = c.scratch()
			}
			t, n, err = kernel.RecvRecord(c.rc, buf)
		}
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

// scratchPool holds the kernel RX buffers of whole records between uses.
var scratchPool = sync.Pool{New: func() any { return new([record.MaxPlaintext]byte) }}

// scratch returns a buffer for one whole record's payload, from
// scratchPool, kept until releaseScratch; c.in is held.
func (c *Conn) scratch() []byte {
	if c.in.scratch == nil {
		c.in.scratch = scratchPool.Get().(*[record.MaxPlaintext]byte)[:]
	}
	return c.in.scratch
}

// readToPending reads as readLocked does, into a buffer of scratchPool,
// which becomes the scratch buffer holding what was read as c.in.pending (or
// goes back to the pool if nothing was). c.in is held and nothing is pending.
func (c *Conn) readToPending() error {
	b := scratchPool.Get().(*[record.MaxPlaintext]byte)
	m, err := c.readLocked(b[:])
	if m > 0 {
		c.in.scratch, c.in.pending = b[:], b[:m]
	} else {
		scratchPool.Put(b)
	}
	return err
}

// releaseScratch gives the scratch buffer back to scratchPool once nothing
// in it is left to return (c.in.pending is empty); c.in is held.
func (c *Conn) releaseScratch() {
	if c.in.scratch != nil && len(c.in.pending) == 0 {
		scratchPool.Put((*[record.MaxPlaintext]byte)(c.in.scratch))
		c.in.scratch, c.in.pending = nil, nil
	}
}

// readError records a fatal read error (a bad record, the end of the
// stream without close_notify), counts it and answers a bad record with its
// alert. Timeouts and other transient errors are returned as they are.
func (c *Conn) readError(err error) error {
	if err == io.EOF {
		counters.eofNoCloseNotify.Add(1)
		c.in.err = ErrTruncated
		return c.in.err
	}
	if errors.Is(err, record.ErrTruncated) {
		counters.badTruncated.Add(1)
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
		// Linux paused reading after a record it took for a KeyUpdate
		// that was not followed (every path that reads one follows it
		// or ends the connection first: a safety net).
		{errnoKeyExpired, record.AlertUnexpectedMessage, &counters.unexpected},
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
	c.lockOut()
	defer c.unlockOut()
	if typ != record.TypeAlert {
		if err := c.prepareLocked(); err != nil {
			return err
		}
	} else if c.out.err != nil {
		return c.out.err
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
// which is followed as Read follows it so that the next record can be read;
// a record that starts like one but is no whole KeyUpdate ends the
// connection with the alert Read would send.
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
	if typ == record.TypeHandshake && c.state.Version == tls.VersionTLS13 && len(data) > 0 && data[0] == typeKeyUpdate {
		// Linux stops reading after any handshake record that starts
		// like a KeyUpdate until it is re-keyed: one that cannot be
		// followed ends the connection here, on both engines, with
		// the alert Read sends.
		c.in.useless = 0
		err := c.postHandshake(data)
		if err == nil && len(c.in.hs) > 0 {
			c.in.hs = c.in.hs[:0]
			err = c.unexpected("KeyUpdate split across records (ReadRecord takes whole messages)")
		}
		if err != nil {
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
	c.lockOut()
	defer c.unlockOut()
	if c.holdLocked(p) {
		return len(p), nil
	}
	n := 0
	for {
		if err := c.prepareLocked(); err != nil {
			return n, err
		}
		if err := c.sendHeldLocked(); err != nil {
			return n, err
		}
		m, err := c.writeLocked(p[n:min(int64(len(p)), int64(n)+c.budgetLocked())])
		n += m
		if err != nil || n == len(p) {
			return n, err
		}
	}
}

// writeLocked sends p as application data and counts the records; c.out is
// held and prepareLocked done.
func (c *Conn) writeLocked(p []byte) (n int, err error) {
	if c.txMode.IsKernel() {
		n, err = c.conn.Write(p)
	} else {
		n, err = c.out.w.Write(p)
	}
	c.out.records += recordsOf(int64(n))
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
		c.out.records++
		counters.recordsTX.Add(1)
		counters.bytesTX.Add(uint64(len(p)))
	}
	return err
}

// sendAlertLocked sends a fatal alert, once, and closes the sending
// direction: later writes fail with the alert, as in crypto/tls, and no
// close_notify follows. c.out is held.
func (c *Conn) sendAlertLocked(a record.Alert) {
	if c.out.closed {
		return
	}
	c.out.closed = true
	c.out.closeNotifyErr = errShutdown
	c.out.err = &net.OpError{Op: "local error", Err: tls.AlertError(a)}
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

// closeNotifyLocked sends close_notify once, as crypto/tls does: with a
// five-second write deadline, after which writes fail.
// After a fatal alert (sent or owed) it sends nothing. c.out is held.
func (c *Conn) closeNotifyLocked() error {
	c.owedLocked()
	if !c.out.closed {
		c.out.closed = true
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.sendHeldLocked() // what Write held while corked goes first
		c.out.closeNotifyErr = c.writeRecordLocked(record.TypeAlert, []byte{1, byte(record.AlertCloseNotify)})
		c.out.err = errShutdown
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
	c.lockOut()
	defer c.unlockOut()
	return c.closeNotifyLocked()
}

// Close sends close_notify (unless a Write is blocked, or a fatal alert
// was sent or received) and closes the socket, which unblocks pending Reads
// and Writes.
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
		c.unlockOut()
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
	if !c.done.Load() {
		// As crypto/tls's, it waits for a running handshake.
		c.handshakeMu.Lock()
		defer c.handshakeMu.Unlock()
	}
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
