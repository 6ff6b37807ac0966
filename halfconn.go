package ktls

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/ktls-go/ktls/record"
)

// halfConn is the state of one direction of a Conn after the hand-off,
// modelled on crypto/tls's halfConn: its own lock, its sticky error and the
// work it owes. Conn.in is the receiving direction, Conn.out the sending
// one; each uses the fields of its side.
//
// Locking: c.in is held by Read, ReadRecord and WriteTo, c.out by whatever
// sends a record. No path holds c.out while it waits for anything but the
// socket (ReadFrom reads a source that may block without it), and the
// receiving side never waits for c.out: what it needs sent (an alert, the
// answer to a KeyUpdate) is posted as owed work, done by whoever holds c.out
// next (see Conn.lockOut and Conn.unlockOut).
type halfConn struct {
	sync.Mutex
	// err is sticky. Receiving: io.EOF after close_notify, ErrTruncated or
	// a fatal error. Sending: errShutdown after close_notify, the fatal
	// alert we sent, errPeerFatal after the peer's, or a failed re-key.
	err error

	// Receiving.
	r       *record.Reader // user-space RX
	pending []byte         // plaintext not returned yet
	scratch []byte         // kernel RX: room for a whole record, from scratchPool while in use
	hs      []byte         // a TLS 1.3 post-handshake message begun in an earlier record
	useless int            // records in a row that carried nothing (see maxUselessRecords)
	waits   int            // kernel RX: reads that found nothing and waited for input

	// Sending.
	w              *record.Writer // user-space TX
	closed         bool           // close_notify or a fatal alert went out (or was tried): nothing may follow
	closeNotifyErr error          // what sending close_notify returned
	records        uint64         // records sent under the current key, at most (see recordsPerKey)
	overKey        bool           // counted once: the key went past recordsPerKey without a KeyUpdate
	corked         bool           // Write holds small writes in held (see Conn.Cork)
	held           []byte         // application data written while corked, not sent yet

	// Work owed by the sending direction, posted without its lock.
	alert     atomic.Uint32 // a fatal alert to send (alert+1), after which nothing more
	warning   atomic.Uint32 // a warning alert to send (alert+1)
	peerFatal atomic.Bool   // the peer sent a fatal alert: send nothing more
	keyUpdate atomic.Bool   // a KeyUpdate(update_not_requested) to send before our next record
}

// lockOut takes the sending direction and does the work it owes.
func (c *Conn) lockOut() {
	c.out.Lock()
	c.owedLocked()
}

// unlockOut does the work the sending direction owes and releases it. An
// alert posted by the receiving side while c.out is held is sent here, by
// the holder, once its own send is done; one posted after the holder's last
// look finds c.out free.
func (c *Conn) unlockOut() {
	for {
		c.owedLocked()
		c.out.Unlock()
		if c.out.alert.Load() == 0 && c.out.warning.Load() == 0 || !c.out.TryLock() {
			return
		}
	}
}

// owedLocked sends the alerts the receiving side posted, if any, and closes
// the sending direction after a fatal alert from the peer (RFC 8446 section
// 6.2: nothing more may be sent). c.out is held.
func (c *Conn) owedLocked() {
	if c.out.peerFatal.Load() && !c.out.closed {
		c.out.closed = true
		c.out.closeNotifyErr = errShutdown
		c.out.err = errPeerFatal
		return
	}
	if a := c.out.warning.Swap(0); a != 0 && !c.out.closed {
		c.writeRecordLocked(record.TypeAlert, []byte{1, byte(a - 1)})
	}
	if a := c.out.alert.Swap(0); a != 0 {
		c.sendAlertLocked(record.Alert(a - 1))
	}
}

// sendAlert sends a fatal alert to the peer: at once if the sending
// direction is free, else by the holder of c.out as soon as its send is
// done (see unlockOut). The receiving side calls it without waiting for
// c.out. Nothing is sent after a fatal alert: no close_notify, no data.
func (c *Conn) sendAlert(a record.Alert) {
	c.out.alert.CompareAndSwap(0, uint32(a)+1)
	if c.out.TryLock() {
		c.unlockOut()
	}
}

// errPeerFatal is the sending direction's error after a fatal alert from the
// peer.
var errPeerFatal = errors.New("ktls: the peer ended the connection with a fatal alert")

// sendWarning sends a warning alert as sendAlert sends a fatal one; the
// connection goes on.
func (c *Conn) sendWarning(a record.Alert) {
	c.out.warning.Store(uint32(a) + 1)
	if c.out.TryLock() {
		c.unlockOut()
	}
}
