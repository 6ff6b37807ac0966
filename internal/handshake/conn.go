// Package handshake provides the net.Conn that crypto/tls talks through
// while it runs the handshake for ktls: it reads whole records from the
// socket, one at a time or a queued flight of records that belong to the
// handshake, so that nothing after the handshake is ever buffered in user
// space; it captures the secrets through a per-connection key log, learns
// the TLS 1.2 randoms from the wire, and counts the records each direction
// carried under the application traffic keys. From that it derives the two
// record.Sessions the connection continues with, in the kernel (Linux TLS
// ULP, FreeBSD ktls(4)) or in the user-space record layer.
package handshake

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ktls-go/ktls/record"
)

const (
	// maxBody is the largest record body crypto/tls accepts (TLS 1.2:
	// 2^14 + 2048). A header announcing more is handed to crypto/tls
	// without its body, and crypto/tls rejects it.
	maxBody = record.MaxPlaintext + 2048
	// helloRandomEnd is where the random of a ClientHello or ServerHello
	// ends in the message: type (1), length (3), legacy version (2),
	// random (32).
	helloRandomEnd = 1 + 3 + 2 + 32
	// helloPrefix is how much of a ServerHello the hand-off reads: up to
	// its random, legacy_session_id (at most 32 bytes) and cipher_suite.
	helloPrefix = helloRandomEnd + 1 + 32 + 2
)

// Handshake message types (RFC 8446 section 4).
const (
	typeClientHello      = 1
	typeServerHello      = 2
	typeNewSessionTicket = 4
)

// Read modes of a Conn.
const (
	modeHandshake   = iota // read the handshake's records, observing them
	modeOne                // read one more record, then detach
	modeDetached           // crypto/tls may no longer read or write
	modePassthrough        // the whole connection stays on crypto/tls
)

// ErrDetached is returned by Read and Write once the connection has been
// handed off: the tls.Conn must not touch the socket any more. It is a
// net.Error reporting a timeout, so that a tls.Conn.Read that meets it does
// not record a permanent error.
var ErrDetached net.Error = detachedError{}

type detachedError struct{}

func (detachedError) Error() string   { return "ktls: connection handed off from crypto/tls" }
func (detachedError) Timeout() bool   { return true }
func (detachedError) Temporary() bool { return true }

// Conn is the net.Conn crypto/tls uses during the handshake. It wraps the
// connected socket. Its Read returns at most the rest of the records it has
// read, which are whole records crypto/tls will process before its
// handshake ends, so crypto/tls (which reads with bytes.Buffer.ReadFrom)
// never takes more from the socket than the handshake's records.
type Conn struct {
	net.Conn
	isClient bool
	log      keyLog
	mode     atomic.Int32

	// Read side; crypto/tls reads from one goroutine at a time.
	rbuf   []byte // the current records, complete when ready
	roff   int    // bytes of rbuf already returned
	ready  bool
	single bool // read one record at a time (ReadTickets)
	// peekFrom and peekTo delimit, in rbuf's array past its records, what
	// the last peek saw queued behind them: still the head of the socket's
	// queue until the next read.
	peekFrom, peekTo int
	firstErr         error // readFirstFlight failed in the middle of a record
	in               direction
	suite            uint16         // from the ServerHello
	hsOpener         *record.Opener // TLS 1.3: the peer's handshake traffic key
	scratch          []byte
	pk               peeker // looks at the socket's receive queue

	// Write side.
	wmu      sync.Mutex
	wpartial []byte      // an incomplete record written by crypto/tls
	wrote    atomic.Bool // crypto/tls has written to the socket
	out      direction
}

// direction is what was observed of one direction's records.
type direction struct {
	hello     [helloPrefix]byte // the start of the first handshake message, across records
	helloLen  int               // bytes in hello
	helloDone bool              // hello held all the hand-off reads of it, or it is no hello
	random    []byte            // random of the first ClientHello / ServerHello
	ccs       bool              // a ChangeCipherSpec record was seen
	afterCCS  uint64            // records after the last ChangeCipherSpec (TLS 1.2)
	sealed    [][]byte          // copies of the records of outer type application_data (TLS 1.3), and of those after a ChangeCipherSpec (TLS 1.2)
	hsLead    int               // the first application_data records of sealed, known to be under the handshake key (TLS 1.3, received)
	hsMiss    bool              // an application_data record did not open under the handshake key
}

// NewConn returns a Conn over c, the connected socket, for the client or the
// server side of the handshake.
func NewConn(c net.Conn, isClient bool) *Conn {
	return &Conn{Conn: c, isClient: isClient}
}

// KeyLogWriter returns the writer to set as the connection's
// tls.Config.KeyLogWriter. It captures the secrets the hand-off needs and
// passes every line on to next (the user's KeyLogWriter) when next is not nil.
func (c *Conn) KeyLogWriter(next io.Writer) io.Writer {
	c.log.mu.Lock()
	c.log.next = next
	c.log.mu.Unlock()
	return &c.log
}

// Read returns bytes of the current record, reading the next whole record
// from the socket when the current one is used up.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.ready || c.roff == len(c.rbuf) {
		switch c.mode.Load() {
		case modeDetached:
			return 0, ErrDetached
		case modePassthrough:
			return c.Conn.Read(p)
		case modeOne:
			c.mode.Store(modeDetached)
			c.single = true
		}
		if c.ready {
			c.rbuf, c.ready = c.rbuf[:0], false
		}
		if err := c.readRecords(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.rbuf[c.roff:])
	c.roff += n
	return n, nil
}

// batchBuffer is the room readRecords peeks into.
const batchBuffer = 4096

// batchPool holds read buffers of batchBuffer bytes between handshakes.
var batchPool = sync.Pool{New: func() any { return new([batchBuffer]byte) }}

// release returns the read buffer to batchPool once the handshake has
// consumed all of it.
func (c *Conn) release() {
	if c.roff == len(c.rbuf) && cap(c.rbuf) == batchBuffer {
		batchPool.Put((*[batchBuffer]byte)(c.rbuf[:batchBuffer]))
		c.rbuf, c.roff, c.ready = nil, 0, false
		c.peekFrom, c.peekTo = 0, 0
	}
}

// readRecords reads the next whole record into rbuf, together with the
// complete records queued behind it that crypto/tls is sure to consume
// before its handshake ends (see handshakeRecord). It waits until the
// socket is readable, looks at what is queued (MSG_PEEK) and reads exactly
// those records: two system calls for a whole flight rather than two per
// record, and one when the last peek already saw the flight queued. Where
// that is not possible (no socket, first record not queued whole or larger
// than the buffer) it reads one record. Before crypto/tls has written
// anything, it reads whatever the peer sent (readFirstFlight).
func (c *Conn) readRecords() error {
	if len(c.rbuf) == 0 && !c.single {
		if !c.isClient && !c.wrote.Load() {
			return c.readFirstFlight()
		}
		if cap(c.rbuf) < batchBuffer {
			c.rbuf = batchPool.Get().(*[batchBuffer]byte)[:0]
			c.peekFrom, c.peekTo = 0, 0
		}
		buf := c.rbuf[:cap(c.rbuf)]
		queued := copy(buf, buf[c.peekFrom:c.peekTo])
		c.peekFrom, c.peekTo = 0, 0
		if queued < record.HeaderLen || queued < record.HeaderLen+int(binary.BigEndian.Uint16(buf[3:5])) {
			var err error
			if queued, err = c.pk.peekWait(c.Conn, buf); err != nil {
				return err
			}
		}
		n, end, afterCCS := 0, 0, c.in.afterCCS
		if !c.in.ccs {
			afterCCS = noCCS
		}
		for len(buf[:queued])-end >= record.HeaderLen {
			rec := buf[end:queued]
			recEnd := record.HeaderLen + int(binary.BigEndian.Uint16(rec[3:5]))
			if !tlsHeader(rec) || len(rec) < recEnd || n > 0 && !c.handshakeRecord(rec[:recEnd], afterCCS) {
				break
			}
			if n == 0 {
				c.handshakeRecord(rec[:recEnd], afterCCS) // keep the handshake key's sequence
			}
			if record.ContentType(rec[0]) == record.TypeChangeCipherSpec {
				afterCCS = 0
			} else if afterCCS != noCCS {
				afterCCS++
			}
			end += recEnd
			n++
		}
		if n > 0 {
			if _, err := io.ReadFull(c.Conn, buf[:end]); err != nil {
				return err // cannot happen: the bytes are queued
			}
			c.rbuf = buf[:end]
			c.peekFrom, c.peekTo = end, queued
			for rest := c.rbuf; len(rest) > 0; {
				recEnd := record.HeaderLen + int(binary.BigEndian.Uint16(rest[3:5]))
				c.observe(&c.in, rest[:recEnd])
				rest = rest[recEnd:]
			}
			c.roff, c.ready = 0, true
			return nil
		}
	}
	return c.readRecord()
}

// readFirstFlight reads the peer's first flight on a server that has sent
// nothing yet. Whatever the client sends before it gets the server's first
// flight (a ClientHello, a ChangeCipherSpec, early data, or garbage) is for
// crypto/tls to read or refuse before its handshake can end, so one plain
// read takes it all; a record cut at the end of what arrived is read to its
// end. From the first bytes that are not a TLS record header on, what was
// read is handed on as it is, for crypto/tls to refuse.
func (c *Conn) readFirstFlight() error {
	if c.firstErr != nil {
		return c.firstErr
	}
	if cap(c.rbuf) < batchBuffer {
		c.rbuf = batchPool.Get().(*[batchBuffer]byte)[:0]
	}
	c.peekFrom, c.peekTo = 0, 0
	n, err := c.Conn.Read(c.rbuf[:cap(c.rbuf)])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	c.rbuf = c.rbuf[:n]
	// An error in the middle of a record leaves nothing to resume from: it
	// sticks (crypto/tls keeps no error that is a timeout).
	fail := func(err error) error {
		c.rbuf, c.firstErr = c.rbuf[:0], err
		return err
	}
	for end := 0; end < len(c.rbuf); {
		if err := c.readTo(end + record.HeaderLen); err != nil {
			return fail(err)
		}
		h := c.rbuf[end:]
		body := int(binary.BigEndian.Uint16(h[3:5]))
		if !tlsHeader(h) || body > maxBody {
			break
		}
		recEnd := end + record.HeaderLen + body
		if err := c.readTo(recEnd); err != nil {
			return fail(err)
		}
		c.observe(&c.in, c.rbuf[end:recEnd])
		end = recEnd
	}
	c.roff, c.ready = 0, true
	return nil
}

// readTo reads from the socket until rbuf holds n bytes.
func (c *Conn) readTo(n int) error {
	if len(c.rbuf) >= n {
		return nil
	}
	if cap(c.rbuf) < n {
		c.rbuf = append(make([]byte, 0, max(n, 2*cap(c.rbuf))), c.rbuf...)
	}
	m, err := io.ReadFull(c.Conn, c.rbuf[len(c.rbuf):n])
	c.rbuf = c.rbuf[:len(c.rbuf)+m]
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// tlsHeader reports whether the record header at the start of b can be a
// TLS record's: a content type from change_cipher_spec (20) to heartbeat
// (24) and a legacy version of major 3. Anything else (say, an HTTP request
// sent to a TLS port) is handed to crypto/tls as just its five header bytes,
// which it rejects at once, instead of waiting for a body of the length the
// bogus header announces.
func tlsHeader(b []byte) bool {
	return b[0] >= 20 && b[0] <= 24 && b[1] == 3
}

// noCCS is the afterCCS of a direction without a ChangeCipherSpec yet.
const noCCS = ^uint64(0)

// handshakeRecord reports whether rec, a complete record queued after the
// one crypto/tls asked for, is one it will consume before its handshake
// ends, so that reading it now buffers nothing past the handshake: the
// first ChangeCipherSpec, a handshake record before it or right after it
// (the TLS 1.2 Finished; a TLS 1.3 second ClientHello), or (TLS 1.3) a
// record that authenticates under the peer's handshake traffic key.
// afterCCS counts the records since the ChangeCipherSpec (noCCS: none yet).
// A record under the application key, an alert, or a second
// ChangeCipherSpec is not. Nor is, once the peer's TLS 1.3 handshake key is
// known, any plaintext record: one may come right behind the peer's
// Finished (a peer without middlebox compatibility sends no
// ChangeCipherSpec to count from), and is then the record layer's.
func (c *Conn) handshakeRecord(rec []byte, afterCCS uint64) bool {
	switch record.ContentType(rec[0]) {
	case record.TypeChangeCipherSpec:
		return afterCCS == noCCS && c.handshakeOpener() == nil
	case record.TypeHandshake:
		return (afterCCS == noCCS || afterCCS == 0) && c.handshakeOpener() == nil
	case record.TypeApplicationData:
		o := c.handshakeOpener()
		if o == nil {
			return false
		}
		c.scratch = append(c.scratch[:0], rec...)
		_, _, err := o.Open(c.scratch)
		c.in.underHandshakeKey(err == nil)
		return err == nil
	}
	return false
}

// handshakeOpener returns an Opener for the peer's TLS 1.3 handshake
// traffic key, at the sequence number of the next record, once the key log
// and the ServerHello have given the secret and the suite; else nil.
func (c *Conn) handshakeOpener() *record.Opener {
	if c.hsOpener != nil || c.suite == 0 {
		return c.hsOpener
	}
	c.log.mu.Lock()
	secret := c.log.serverHandshake
	if !c.isClient {
		secret = c.log.clientHandshake
	}
	if secret == nil { // not yet, or not TLS 1.3
		c.log.mu.Unlock()
		return nil
	}
	s, err := record.TLS13Session(c.suite, secret)
	c.log.mu.Unlock()
	if err != nil {
		return nil
	}
	defer s.Wipe()
	if c.hsOpener, err = record.NewOpener(s); err != nil {
		return nil
	}
	for _, rec := range c.in.sealed { // records read before the secret was known
		if record.ContentType(rec[0]) == record.TypeApplicationData {
			c.scratch = append(c.scratch[:0], rec...)
			_, _, err := c.hsOpener.Open(c.scratch)
			c.in.underHandshakeKey(err == nil)
		}
	}
	return c.hsOpener
}

// underHandshakeKey notes whether the peer's next record of outer type
// application_data opened under its TLS 1.3 handshake key: the leading ones
// that did are not under the application key, and count need not try them.
func (d *direction) underHandshakeKey(ok bool) {
	if !ok {
		d.hsMiss = true
	} else if !d.hsMiss {
		d.hsLead++
	}
}

// readRecord reads one whole record into rbuf: the header, then exactly the
// body it announces. It resumes a record a previous call left incomplete.
func (c *Conn) readRecord() error {
	c.peekFrom, c.peekTo = 0, 0
	for {
		want := record.HeaderLen
		if len(c.rbuf) >= record.HeaderLen {
			if n := int(binary.BigEndian.Uint16(c.rbuf[3:5])); n <= maxBody && tlsHeader(c.rbuf) {
				want += n
			}
			if len(c.rbuf) == want {
				if !c.single && record.ContentType(c.rbuf[0]) == record.TypeApplicationData {
					c.handshakeRecord(c.rbuf, 0) // keep the handshake key's sequence
				}
				c.observe(&c.in, c.rbuf)
				c.roff, c.ready = 0, true
				return nil
			}
		}
		if cap(c.rbuf) < want {
			c.rbuf = append(make([]byte, 0, max(want, 2*cap(c.rbuf))), c.rbuf...)
		}
		n, err := c.Conn.Read(c.rbuf[len(c.rbuf):want])
		c.rbuf = c.rbuf[:len(c.rbuf)+n]
		if err != nil {
			if err == io.EOF && len(c.rbuf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
}

// Write writes what crypto/tls sends to the socket and observes the records
// in it (a Write may hold several records, or part of one).
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch c.mode.Load() {
	case modeDetached:
		return 0, ErrDetached
	case modePassthrough:
		return c.Conn.Write(p)
	}
	c.wrote.Store(true)
	n, err := c.Conn.Write(p)
	rest := p[:n]
	if len(c.wpartial) > 0 {
		c.wpartial = append(c.wpartial, rest...)
		rest = c.wpartial
	}
	for len(rest) >= record.HeaderLen {
		end := record.HeaderLen + int(binary.BigEndian.Uint16(rest[3:5]))
		if len(rest) < end {
			break
		}
		c.observe(&c.out, rest[:end])
		rest = rest[end:]
	}
	c.wpartial = append(c.wpartial[:0], rest...)
	return n, err
}

// observe notes what the hand-off needs from one whole record.
func (c *Conn) observe(d *direction, rec []byte) {
	switch record.ContentType(rec[0]) {
	case record.TypeChangeCipherSpec:
		d.ccs, d.afterCCS = true, 0
		return
	case record.TypeHandshake:
		if !d.ccs && !d.helloDone {
			c.observeHello(d, rec[record.HeaderLen:])
		}
	}
	if d.ccs || record.ContentType(rec[0]) == record.TypeApplicationData {
		d.sealed = append(d.sealed, bytes.Clone(rec))
	}
	if d.ccs {
		d.afterCCS++
	}
}

// observeHello reads the random of d's first handshake message, a
// ClientHello or ServerHello, and a ServerHello's cipher suite, from the
// plaintext handshake records' bodies, wherever the records cut the
// message.
func (c *Conn) observeHello(d *direction, body []byte) {
	d.helloLen += copy(d.hello[d.helloLen:], body)
	h := d.hello[:d.helloLen]
	if len(h) == 0 {
		return
	}
	if h[0] != typeClientHello && h[0] != typeServerHello {
		d.helloDone = true
		return
	}
	if len(h) < helloRandomEnd {
		return
	}
	if d.random == nil {
		d.random = bytes.Clone(h[helloRandomEnd-32 : helloRandomEnd])
	}
	if h[0] == typeServerHello {
		// legacy_session_id, then cipher_suite.
		if len(h) == helloRandomEnd {
			return
		}
		at := helloRandomEnd + 1 + int(h[helloRandomEnd])
		if at+2 > helloPrefix {
			d.helloDone = true
			return
		}
		if len(h) < at+2 {
			return
		}
		c.suite = binary.BigEndian.Uint16(h[at:])
	}
	d.helloDone = true
}

// Detach ends crypto/tls's use of the socket: from now on Read and Write
// return ErrDetached. Call it once the handshake is done and before the
// session is installed anywhere else.
func (c *Conn) Detach() {
	c.wmu.Lock()
	c.mode.Store(modeDetached)
	c.wmu.Unlock()
	c.release()
}

// Feed makes rec, one whole record, the next (and last) thing crypto/tls
// reads after the hand-off: its Read gets rec, then ErrDetached again. This
// lets crypto/tls process a post-handshake message the connection's new
// owner received (a TLS 1.3 NewSessionTicket, to be stored in the client's
// ClientSessionCache), re-sealed by the caller under the key and at the
// sequence number crypto/tls expects. Call it only after Detach, from the
// goroutine that then calls the tls.Conn's Read.
func (c *Conn) Feed(rec []byte) {
	c.peekFrom, c.peekTo = 0, 0
	c.rbuf = append(c.rbuf[:0], rec...)
	c.roff, c.ready = 0, true
}

// Passthrough keeps the whole connection on crypto/tls: Read and Write go
// straight to the socket from now on, and the secrets are dropped.
func (c *Conn) Passthrough() {
	c.wmu.Lock()
	c.mode.Store(modePassthrough)
	c.wmu.Unlock()
	c.release()
	c.forget()
}

// forget drops the observations and wipes the secrets.
func (c *Conn) forget() {
	c.in.sealed, c.out.sealed = nil, nil
	c.log.wipe()
}

// Sessions derives the sessions of both directions from the key log and the
// randoms seen on the wire, with each Seq set to the number of records the
// direction carried under its application traffic keys during the
// handshake. version and suite are the negotiated ones
// (tls.ConnectionState). Call it once, after Detach; it wipes the captured
// secrets. The caller owns the sessions and should Wipe them. It fails
// when crypto/tls left part of what was read from the socket unconsumed:
// those bytes are the record layer's, and only crypto/tls can still read
// them (Passthrough).
func (c *Conn) Sessions(version, suite uint16) (tx, rx *record.Session, err error) {
	defer c.forget()
	if c.ready && c.roff < len(c.rbuf) {
		return nil, nil, fmt.Errorf("ktls: %d bytes read past the end of the handshake", len(c.rbuf)-c.roff)
	}
	client, server, err := c.sessions(version, suite)
	if err != nil {
		return nil, nil, err
	}
	tx, rx = client, server
	if !c.isClient {
		tx, rx = server, client
	}
	if tx.Seq, err = c.out.count(tx, true); err == nil {
		rx.Seq, err = c.in.count(rx, false)
	}
	if err != nil {
		tx.Wipe()
		rx.Wipe()
		return nil, nil, err
	}
	return tx, rx, nil
}

// TrafficSecrets returns copies of the TLS 1.3 application traffic secrets
// of the sending and the receiving direction (nil for TLS 1.2), which a
// connection needs to follow KeyUpdates (record.TLS13NextSecret). Call it
// before Sessions. The caller owns the copies and should clear them.
func (c *Conn) TrafficSecrets() (tx, rx []byte) {
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	if c.log.clientTraffic == nil || c.log.serverTraffic == nil {
		return nil, nil
	}
	tx, rx = bytes.Clone(c.log.clientTraffic), bytes.Clone(c.log.serverTraffic)
	if !c.isClient {
		tx, rx = rx, tx
	}
	return tx, rx
}

// sessions derives both directions' sessions with sequence number 0.
func (c *Conn) sessions(version, suite uint16) (client, server *record.Session, err error) {
	k := &c.log
	k.mu.Lock()
	defer k.mu.Unlock()
	switch version {
	case record.VersionTLS13:
		if k.clientTraffic == nil || k.serverTraffic == nil {
			return nil, nil, errors.New("ktls: the key log gave no TLS 1.3 application traffic secrets")
		}
		if client, err = record.TLS13Session(suite, k.clientTraffic); err != nil {
			return nil, nil, err
		}
		if server, err = record.TLS13Session(suite, k.serverTraffic); err != nil {
			client.Wipe()
			return nil, nil, err
		}
		return client, server, nil
	case record.VersionTLS12:
		clientRandom, serverRandom := c.out.random, c.in.random
		if !c.isClient {
			clientRandom, serverRandom = serverRandom, clientRandom
		}
		master := k.master
		if master == nil {
			master = k.resumed
		}
		switch {
		case master == nil:
			return nil, nil, errors.New("ktls: the key log gave no TLS 1.2 master secret")
		case clientRandom == nil || serverRandom == nil:
			return nil, nil, errors.New("ktls: hello randoms not seen on the wire")
		case k.master != nil && !bytes.Equal(clientRandom, k.clientRandom):
			return nil, nil, errors.New("ktls: key log line is for another client random")
		}
		return record.TLS12Sessions(suite, master, clientRandom, serverRandom)
	}
	return nil, nil, fmt.Errorf("ktls: unsupported TLS version %#04x", version)
}

// count returns the number of records d carried under the application keys
// of s, and so checks the keys. TLS 1.2 tells by the ChangeCipherSpec: every
// later record (the Finished) is under the new keys, and each must
// authenticate under s (on a copy), so that keys derived from wrong inputs
// are never installed. In TLS 1.3 every protected record has the outer type
// application_data, so each is authenticated with the candidate key;
// those that pass must be the last ones. For the records this side wrote
// (own), crypto/tls's, the last record is tried first: a server's flight
// ends with its one NewSessionTicket under the application key, and when
// that record opens as the first under s, none before it can (crypto/tls
// never seals two records under one key and number), so the handshake's
// records (a certificate is kilobytes) need not be tried.
func (d *direction) count(s *record.Session, own bool) (uint64, error) {
	var (
		o   *record.Opener
		err error
		buf []byte
	)
	open := func(rec []byte) error {
		if o == nil {
			if o, err = record.NewOpener(&record.Session{Version: s.Version, CipherSuite: s.CipherSuite, Key: s.Key, IV: s.IV}); err != nil {
				return err
			}
		}
		buf = append(buf[:0], rec...)
		_, _, err := o.Open(buf)
		return err
	}
	if s.Version == record.VersionTLS12 {
		if !d.ccs || d.afterCCS > uint64(len(d.sealed)) {
			return 0, errors.New("ktls: no ChangeCipherSpec seen")
		}
		for _, rec := range d.sealed[len(d.sealed)-int(d.afterCCS):] {
			if open(rec) != nil {
				return 0, errors.New("ktls: the TLS 1.2 keys derived do not authenticate the records after ChangeCipherSpec")
			}
		}
		return d.afterCCS, nil
	}
	if own && len(d.sealed) > 0 {
		if last := d.sealed[len(d.sealed)-1]; record.ContentType(last[0]) == record.TypeApplicationData && open(last) == nil {
			return 1, nil
		}
	}
	skip := d.hsLead
	for _, rec := range d.sealed {
		if record.ContentType(rec[0]) != record.TypeApplicationData {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if err := open(rec); err != nil && (o == nil || o.Seq() > 0) {
			if o == nil {
				return 0, err
			}
			return 0, errors.New("ktls: record under an unknown key after application data records")
		}
	}
	if o == nil {
		return 0, nil
	}
	return o.Seq(), nil
}

// SetResumedSession records the session crypto/tls is resuming: the
// client's ClientSessionCache returned it, or the server's UnwrapSession
// did. crypto/tls writes no key log line for a resumed TLS 1.2 session, so
// its master secret comes from here: from the session's public encoding
// (tls.SessionState.Bytes: version, type, suite, creation time, then the
// secret with a one-byte length). Anything unexpected in it is ignored, and
// the hand-off then fails for lack of a secret.
func (c *Conn) SetResumedSession(ss *tls.SessionState) {
	b, err := ss.Bytes()
	if err != nil {
		return
	}
	defer clear(b)
	const secretAt = 2 + 1 + 2 + 8
	if len(b) < secretAt+1 || binary.BigEndian.Uint16(b) != record.VersionTLS12 {
		return
	}
	n := int(b[secretAt])
	if n != 48 || len(b) < secretAt+1+n {
		return
	}
	c.log.mu.Lock()
	clear(c.log.resumed)
	c.log.resumed = bytes.Clone(b[secretAt+1 : secretAt+1+n])
	c.log.mu.Unlock()
}

// maxTickets bounds the NewSessionTicket records ReadTickets passes on.
const maxTickets = 8

// ReadTickets lets tc, a TLS 1.3 client connection whose handshake is done,
// process the NewSessionTicket records that are already queued on the
// socket, so that its ClientSessionCache stores them: while the next whole
// record in the socket's receive queue (looked at with MSG_PEEK, without
// waiting) authenticates under the server's application key as nothing but
// NewSessionTicket messages, tc.Read is allowed to read exactly that record
// and then meets ErrDetached, which it returns without recording an error.
// Records that are not queued yet are left to the connection's new owner.
// It returns the number of records tc read.
func (c *Conn) ReadTickets(tc *tls.Conn, suite uint16) (n int, err error) {
	c.log.mu.Lock()
	rx, err := record.TLS13Session(suite, c.log.serverTraffic)
	c.log.mu.Unlock()
	if err != nil {
		return 0, err
	}
	defer rx.Wipe()
	var hdr [record.HeaderLen]byte
	for range maxTickets {
		if c.ready && c.roff < len(c.rbuf) {
			return n, nil
		}
		if c.pk.peek(c.Conn, hdr[:]) < len(hdr) || record.ContentType(hdr[0]) != record.TypeApplicationData {
			return n, nil
		}
		end := record.HeaderLen + int(binary.BigEndian.Uint16(hdr[3:5]))
		buf := make([]byte, end)
		if c.pk.peek(c.Conn, buf) < end {
			return n, nil
		}
		if rx.Seq, err = c.in.count(rx, false); err != nil {
			return n, err
		}
		o, err := record.NewOpener(rx)
		if err != nil {
			return n, err
		}
		typ, msg, err := o.Open(buf[:end])
		if err != nil || typ != record.TypeHandshake || !OnlyTickets(msg) {
			return n, nil
		}
		c.mode.Store(modeOne)
		var one [1]byte
		if _, err := tc.Read(one[:]); !errors.Is(err, ErrDetached) {
			return n, fmt.Errorf("ktls: reading a session ticket: unexpected result %v", err)
		}
		c.mode.Store(modeHandshake)
		n++
	}
	return n, nil
}

// OnlyTickets reports whether b, the payload of a handshake record, is a
// sequence of whole NewSessionTicket messages.
func OnlyTickets(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 || b[0] != typeNewSessionTicket {
			return false
		}
		n := 4 + (int(b[1])<<16 | int(b[2])<<8 | int(b[3]))
		if len(b) < n {
			return false
		}
		b = b[n:]
	}
	return true
}
