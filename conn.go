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

	ticketsRead    int           // TLS 1.3 NewSessionTicket records crypto/tls read before the hand-off
	ticketsDropped atomic.Uint64 // TLS 1.3 NewSessionTicket records after hand-off
	sendfileBytes  atomic.Int64  // bytes sent by sendfile(2) in ReadFrom
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
		c.handshakeErr = err
		return err
	}
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
	tx, rx, err := c.hc.Sessions(st.Version, st.CipherSuite)
	if err != nil {
		if txPol == OffloadKernel || rxPol == OffloadKernel {
			return err
		}
		// Nothing was read or written since the handshake: crypto/tls
		// can carry on.
		c.hc.Passthrough()
		return nil
	}
	defer tx.Wipe()
	defer rx.Wipe()

	attached := false
	if c.wantKernel(txPol) || c.wantKernel(rxPol) {
		err := c.attach()
		if err != nil && (txPol == OffloadKernel || rxPol == OffloadKernel) {
			return err
		}
		attached = err == nil
	}
	if c.txMode, err = c.install(kernel.TX, tx, txPol, attached); err != nil {
		return err
	}
	c.rxMode, err = c.install(kernel.RX, rx, rxPol, attached)
	return err
}

// install puts one direction's session in the kernel (when the socket is
// attached and the policy asks for it) or in the user-space record layer,
// and returns the direction's mode. With policy OffloadAuto a kernel that
// refuses the session (old kernel, suite not built in) is not an error.
func (c *Conn) install(d kernel.Direction, s *record.Session, p Offload, attached bool) (Mode, error) {
	if attached && c.wantKernel(p) {
		err := kernel.Enable(c.rc, d, s)
		if err == nil {
			return ModeKernel, nil
		}
		if p == OffloadKernel {
			return ModeNone, err
		}
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
// kernel.
func (c *Conn) wantKernel(p Offload) bool {
	switch p {
	case OffloadKernel:
		return true
	case OffloadAuto:
		return kernel.Supported() == nil
	}
	return false
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

// Mode reports who carries each direction's records. Where the kernel
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

// Read reads application data, running the handshake first if needed. A
// close_notify from the peer ends the stream with io.EOF; another alert is
// returned as a *net.OpError holding a tls.AlertError, as crypto/tls does.
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
		var (
			typ  record.ContentType
			data []byte
		)
		if c.rxMode.IsKernel() {
			buf := p
			if len(buf) < record.MaxPlaintext {
				buf = c.scratch()
			}
			t, n, err := kernel.RecvRecord(c.rc, buf)
			if err != nil {
				return 0, c.readError(err)
			}
			if t == 0 && n == 0 {
				c.in.err = io.EOF
				continue
			}
			if t == record.TypeApplicationData && &buf[0] == &p[0] {
				return n, nil
			}
			typ, data = t, buf[:n]
		} else {
			t, d, err := c.in.r.ReadRecord()
			if err != nil {
				return 0, c.readError(err)
			}
			typ, data = t, d
		}
		if typ == record.TypeApplicationData {
			c.in.pending = data
			continue
		}
		if err := c.control(typ, data); err != nil {
			c.in.err = err
		}
	}
}

// scratch returns a buffer for one whole record's payload; c.in is held.
func (c *Conn) scratch() []byte {
	if c.in.scratch == nil {
		c.in.scratch = make([]byte, record.MaxPlaintext)
	}
	return c.in.scratch
}

// readError records a fatal read error (a bad record, the end of the
// stream) and answers a bad record with its alert. Timeouts and other
// transient errors are returned as they are.
func (c *Conn) readError(err error) error {
	if err == io.EOF {
		c.in.err = io.EOF
		return err
	}
	var rerr *record.Error
	if errors.As(err, &rerr) {
		c.in.err = err
		c.sendAlert(rerr.Alert)
		return err
	}
	// The kernel's errors for bad records, answered with the alerts
	// OpenSSL sends for them.
	for errno, alert := range map[syscall.Errno]record.Alert{
		syscall.EBADMSG:  record.AlertBadRecordMAC,
		syscall.EMSGSIZE: record.AlertRecordOverflow,
		syscall.EINVAL:   record.AlertProtocolVersion,
	} {
		if errors.Is(err, errno) {
			c.in.err = err
			c.sendAlert(alert)
			break
		}
	}
	return err
}

// control handles a record other than application data. It returns nil when
// the record is to be skipped.
func (c *Conn) control(typ record.ContentType, data []byte) error {
	switch typ {
	case record.TypeAlert:
		if len(data) != 2 {
			c.sendAlert(record.AlertDecodeError)
			return errors.New("ktls: malformed alert record")
		}
		if data[1] == byte(record.AlertCloseNotify) {
			return io.EOF
		}
		if c.state.Version == tls.VersionTLS12 && data[0] == 1 { // warning level
			return nil
		}
		return &net.OpError{Op: "remote error", Err: tls.AlertError(data[1])}
	case record.TypeHandshake:
		if c.isClient && c.state.Version == tls.VersionTLS13 && handshake.OnlyTickets(data) {
			c.ticketsDropped.Add(1)
			return nil
		}
		c.sendAlert(record.AlertUnexpectedMessage)
		return errors.New("ktls: unsupported post-handshake message")
	}
	c.sendAlert(record.AlertUnexpectedMessage)
	return fmt.Errorf("ktls: unexpected %v record after the handshake", typ)
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
	c.writeRecordLocked(record.TypeAlert, []byte{2, byte(a)})
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
	if c.txMode.IsKernel() {
		return c.conn.Write(p)
	}
	return c.out.w.Write(p)
}

// writeRecordLocked sends one record of type typ; c.out is held.
func (c *Conn) writeRecordLocked(typ record.ContentType, p []byte) error {
	if c.txMode.IsKernel() {
		_, err := kernel.SendRecord(c.rc, typ, p)
		return err
	}
	return c.out.w.WriteRecord(typ, p)
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
