package ktls

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// keyLogBuf collects key log lines.
type keyLogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (k *keyLogBuf) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.b.Write(p)
}

// secret returns the secret of the key log line with the given label.
func (k *keyLogBuf) secret(t testing.TB, label string) []byte {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	for line := range strings.Lines(k.b.String()) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == label {
			b, err := hex.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no %s in the key log", label)
	return nil
}

// rawPeer is the peer of a ktls Conn after a TLS 1.3 handshake run by
// crypto/tls: it speaks the record layer itself (package record) on the raw
// TCP socket with the keys from crypto/tls's key log, so that it can send
// any record, bad ones included.
type rawPeer struct {
	t        testing.TB
	conn     net.Conn
	suite    uint16
	txSecret []byte
	rxSecret []byte
	w        *record.Writer
	r        *record.Reader
}

// newRawPeer returns a ktls Conn (the server if ktlsServer) whose
// directions both use engine, after a TLS 1.3 handshake with a crypto/tls
// peer that sends no session tickets, and the raw peer.
func newRawPeer(t testing.TB, engine Offload, ktlsServer bool, opts ...func(*Config)) (*Conn, *rawPeer) {
	t.Helper()
	var kl keyLogBuf
	scfg, ccfg := serverTLS(), clientTLS()
	scfg.SessionTicketsDisabled = true
	scfg.MinVersion, ccfg.MinVersion = tls.VersionTLS13, tls.VersionTLS13
	kcfg := &Config{TX: engine, RX: engine, KernelWithoutRekey: true}
	var pcfg *tls.Config
	if ktlsServer {
		kcfg.TLS, pcfg = scfg, ccfg
	} else {
		kcfg.TLS, pcfg = ccfg, scfg
	}
	pcfg.KeyLogWriter = &kl
	for _, o := range opts {
		o(kcfg)
	}
	cc, ss := tcpPair(t)
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	var k *Conn
	var p *tls.Conn
	var praw net.Conn
	if ktlsServer {
		k, p, praw = Server(ss, kcfg), tls.Client(cc, pcfg), cc
	} else {
		k, p, praw = Client(cc, kcfg), tls.Server(ss, pcfg), ss
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Handshake() }()
	if err := k.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	rp := &rawPeer{t: t, conn: praw, suite: p.ConnectionState().CipherSuite}
	client, server := kl.secret(t, "CLIENT_TRAFFIC_SECRET_0"), kl.secret(t, "SERVER_TRAFFIC_SECRET_0")
	rp.txSecret, rp.rxSecret = client, server
	if !ktlsServer {
		rp.txSecret, rp.rxSecret = server, client
	}
	rp.w = record.NewWriter(praw, rp.sealer(rp.txSecret))
	rp.r = record.NewReader(praw, rp.opener(rp.rxSecret))
	return k, rp
}

func (rp *rawPeer) session(secret []byte) *record.Session {
	s, err := record.TLS13Session(rp.suite, secret)
	if err != nil {
		rp.t.Fatal(err)
	}
	return s
}

func (rp *rawPeer) sealer(secret []byte) *record.Sealer {
	s, err := record.NewSealer(rp.session(secret))
	if err != nil {
		rp.t.Fatal(err)
	}
	return s
}

func (rp *rawPeer) opener(secret []byte) *record.Opener {
	o, err := record.NewOpener(rp.session(secret))
	if err != nil {
		rp.t.Fatal(err)
	}
	return o
}

// send writes one record.
func (rp *rawPeer) send(typ record.ContentType, p []byte) {
	rp.t.Helper()
	if err := rp.w.WriteRecord(typ, p); err != nil {
		rp.t.Fatal(err)
	}
}

// keyUpdate sends a KeyUpdate and moves to the next sending key.
func (rp *rawPeer) keyUpdate(requested bool) {
	rp.t.Helper()
	if err := rp.tryKeyUpdate(requested); err != nil {
		rp.t.Fatal(err)
	}
}

// tryKeyUpdate is keyUpdate returning the write error, for goroutines.
func (rp *rawPeer) tryKeyUpdate(requested bool) error {
	var req byte
	if requested {
		req = 1
	}
	if err := rp.w.WriteRecord(record.TypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, req}); err != nil {
		return err
	}
	next, err := record.TLS13NextSecret(rp.suite, rp.txSecret)
	if err != nil {
		return err
	}
	rp.txSecret = next
	rp.w.SetSealer(rp.sealer(next))
	return nil
}

// recv reads one record; a KeyUpdate from the ktls side moves the
// receiving key on.
func (rp *rawPeer) recv() (record.ContentType, []byte, error) {
	typ, p, err := rp.r.ReadRecord()
	if err == nil && typ == record.TypeHandshake && len(p) == 5 && p[0] == typeKeyUpdate {
		next, err := record.TLS13NextSecret(rp.suite, rp.rxSecret)
		if err != nil {
			rp.t.Fatal(err)
		}
		rp.rxSecret = next
		rp.r.SetOpener(rp.opener(next))
	}
	return typ, bytes.Clone(p), err
}

// wantAlert reads records until an alert and checks it.
func (rp *rawPeer) wantAlert(want record.Alert) {
	rp.t.Helper()
	for {
		typ, p, err := rp.recv()
		if err != nil {
			rp.t.Fatalf("peer waiting for alert %v: %v", want, err)
		}
		if typ == record.TypeAlert {
			if len(p) != 2 || record.Alert(p[1]) != want {
				rp.t.Fatalf("peer got alert %x, want %v", p, want)
			}
			return
		}
	}
}

func TestControlRecords(t *testing.T) { testControlRecords(t, OffloadUser) }

func TestKernelControlRecords(t *testing.T) {
	ktlstest.RequireKernel(t)
	testControlRecords(t, OffloadKernel)
}

// testControlRecords sends each kind of control record to a ktls Conn and
// checks what Read reports and which alert the peer gets.
func testControlRecords(t *testing.T, engine Offload) {
	t.Run("close_notify", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		before := Stats().Control.CloseNotify
		rp.send(record.TypeApplicationData, []byte("data"))
		rp.send(record.TypeAlert, []byte{1, 0})
		got, err := io.ReadAll(k)
		if err != nil || string(got) != "data" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if _, err := k.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read after close_notify = %v, want io.EOF", err)
		}
		if Stats().Control.CloseNotify <= before {
			t.Error("close_notify not counted")
		}
		k.Close()
		rp.wantAlert(record.AlertCloseNotify)
	})
	t.Run("alert", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		rp.send(record.TypeAlert, []byte{2, byte(record.AlertHandshakeFailure)})
		_, err := k.Read(make([]byte, 1))
		var ae tls.AlertError
		if !errors.As(err, &ae) || ae != tls.AlertError(record.AlertHandshakeFailure) {
			t.Fatalf("Read = %v, want tls.AlertError handshake_failure", err)
		}
		if _, err2 := k.Read(make([]byte, 1)); !errors.As(err2, &ae) {
			t.Errorf("second Read = %v, want the same error", err2)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		before := Stats()
		rp.send(record.TypeApplicationData, []byte("data"))
		rp.conn.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(k)
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != "data" {
			t.Fatalf("ReadAll = %q, %v; want data and ErrTruncated", got, err)
		}
		// Issue 17.4: counted apart from records refused.
		if s := Stats(); s.EOFWithoutCloseNotify <= before.EOFWithoutCloseNotify || s.BadRecords.Truncated != before.BadRecords.Truncated {
			t.Errorf("EOF without close_notify counted %d -> %d (bad records truncated %d -> %d)", before.EOFWithoutCloseNotify, s.EOFWithoutCloseNotify, before.BadRecords.Truncated, s.BadRecords.Truncated)
		}
	})
	for name, rec := range map[string]struct {
		typ   record.ContentType
		p     []byte
		alert record.Alert
	}{
		"client_hello":      {record.TypeHandshake, []byte{1, 0, 0, 0}, record.AlertUnexpectedMessage},
		"ticket_to_server":  {record.TypeHandshake, []byte{typeNewSessionTicket, 0, 0, 0}, record.AlertUnexpectedMessage},
		"bad_key_update":    {record.TypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 7}, record.AlertIllegalParameter},
		"short_key_update":  {record.TypeHandshake, []byte{typeKeyUpdate, 0, 0, 0}, record.AlertDecodeError},
		"key_update_inside": {record.TypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 0, typeNewSessionTicket, 0, 0, 0}, record.AlertUnexpectedMessage},
	} {
		t.Run(name, func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			before := Stats().Control.Unexpected
			rp.send(rec.typ, rec.p)
			if _, err := k.Read(make([]byte, 1)); err == nil {
				t.Fatal("Read succeeded")
			}
			rp.wantAlert(rec.alert)
			if Stats().Control.Unexpected <= before {
				t.Error("not counted as unexpected")
			}
		})
	}
	t.Run("plaintext_change_cipher_spec", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		rp.conn.Write([]byte{byte(record.TypeChangeCipherSpec), 3, 3, 0, 1, 1})
		_, err := k.Read(make([]byte, 1))
		// The record layer refuses the outer type; Linux does not look
		// at it and fails to authenticate the record.
		errno, alert := syscall.EINVAL, record.AlertUnexpectedMessage
		if engine == OffloadKernel {
			errno, alert = syscall.EBADMSG, record.AlertBadRecordMAC
		}
		if !errors.Is(err, errno) {
			t.Errorf("Read = %v, want %v", err, errno)
		}
		rp.wantAlert(alert)
	})
	t.Run("ticket_stored", func(t *testing.T) {
		cache := &recordingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		k, rp := newRawPeer(t, engine, false, func(c *Config) { c.TLS.ClientSessionCache = cache })
		before := Stats().Control.TicketsStored
		ticket := []byte{typeNewSessionTicket, 0, 0, 17, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 4, 't', 'k', 't', '1', 0, 0}
		rp.send(record.TypeHandshake, ticket)
		if engine != OffloadKernel || kernel.Rekey() == nil {
			rp.keyUpdate(false) // crypto/tls still gets tickets under its key
		}
		ticket[18] = '2'
		rp.send(record.TypeHandshake, ticket)
		rp.send(record.TypeApplicationData, []byte("after"))
		buf := make([]byte, 10)
		n, err := k.Read(buf)
		if err != nil || string(buf[:n]) != "after" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		if got := Stats().Control.TicketsStored - before; got < 2 {
			t.Errorf("tickets stored = %d, want 2", got)
		}
		if got := cache.tickets(); len(got) != 2 || got[0] != "tkt1" || got[1] != "tkt2" {
			t.Errorf("cache got tickets %q, want tkt1, tkt2", got)
		}
	})
	t.Run("ticket_to_client", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, false)
		before := Stats().Control.TicketsDropped
		ticket := []byte{typeNewSessionTicket, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 9, 0, 0}
		rp.send(record.TypeHandshake, ticket)
		rp.send(record.TypeApplicationData, []byte("after"))
		buf := make([]byte, 10)
		n, err := k.Read(buf)
		if err != nil || string(buf[:n]) != "after" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		if Stats().Control.TicketsDropped <= before {
			t.Error("ticket not counted as dropped")
		}
	})
}

func TestKeyUpdate(t *testing.T) { testKeyUpdate(t, OffloadUser) }

func TestKernelKeyUpdate(t *testing.T) {
	ktlstest.RequireKernel(t)
	testKeyUpdate(t, OffloadKernel)
}

// testKeyUpdate sends KeyUpdates with and without update_requested in the
// middle of a stream, and checks that no byte is lost in either direction.
// On a kernel that cannot re-key, the KeyUpdate fails the Read with an
// error that says so.
func testKeyUpdate(t *testing.T, engine Offload) {
	k, rp := newRawPeer(t, engine, true)
	canRekey := engine != OffloadKernel || kernel.Rekey() == nil
	before := Stats()
	data := testData(100000, 7)
	werr := make(chan error, 1)
	go func() {
		_, err := rp.w.Write(data[:40000])
		if err == nil {
			err = rp.tryKeyUpdate(false)
		}
		if err == nil {
			_, err = rp.w.Write(data[40000:70000])
		}
		if err == nil {
			err = rp.tryKeyUpdate(true)
		}
		if err == nil {
			_, err = rp.w.Write(data[70000:])
		}
		werr <- err
	}()
	got := make([]byte, len(data))
	n, err := io.ReadFull(k, got)
	if !canRekey {
		k.Close()
		<-werr
		if err == nil || !strings.Contains(err.Error(), "cannot re-key") || n != 40000 {
			t.Fatalf("ReadFull = %d, %v; want 40000 bytes and a re-key error", n, err)
		}
		return
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFull = %d, %v; %s", n, err, firstDiff(got[:n], data))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	// Our answer to update_requested came before this data.
	go k.Write([]byte("reply"))
	var sawUpdate bool
	for {
		typ, p, err := rp.recv()
		if err != nil {
			t.Fatal(err)
		}
		if typ == record.TypeHandshake && len(p) == 5 && p[0] == typeKeyUpdate {
			sawUpdate = p[4] == 0
			continue
		}
		if typ != record.TypeApplicationData || string(p) != "reply" || !sawUpdate {
			t.Fatalf("peer got %v %q (KeyUpdate seen: %v)", typ, p, sawUpdate)
		}
		break
	}
	s := Stats()
	if s.RekeysRX-before.RekeysRX < 2 || s.RekeysTX-before.RekeysTX < 1 || s.Control.KeyUpdates-before.Control.KeyUpdates < 2 {
		t.Errorf("rekeys rx %d tx %d keyupdates %d; want >= 2, 1, 2", s.RekeysRX-before.RekeysRX, s.RekeysTX-before.RekeysTX, s.Control.KeyUpdates-before.Control.KeyUpdates)
	}
}

func TestBadRecords(t *testing.T) { testBadRecords(t, OffloadUser) }

func TestKernelBadRecords(t *testing.T) {
	ktlstest.RequireKernel(t)
	testBadRecords(t, OffloadKernel)
}

// testBadRecords sends each class of bad record and checks the error, the
// alert the peer gets, the counter, and that the error sticks.
func testBadRecords(t *testing.T, engine Offload) {
	cases := map[string]struct {
		mangle  func(rec []byte) []byte
		errno   syscall.Errno
		alert   record.Alert
		counter func(Statistics) uint64
	}{
		"bad_mac": {func(rec []byte) []byte { rec[len(rec)-1] ^= 1; return rec }, syscall.EBADMSG, record.AlertBadRecordMAC,
			func(s Statistics) uint64 { return s.BadRecords.MAC }},
		"overflow": {func(rec []byte) []byte {
			rec = append(rec[:5], make([]byte, record.MaxPlaintext+257)...)
			rec[3], rec[4] = byte((len(rec)-5)>>8), byte(len(rec)-5)
			return rec
		}, syscall.EMSGSIZE, record.AlertRecordOverflow, func(s Statistics) uint64 { return s.BadRecords.Overflow }},
		"version": {func(rec []byte) []byte { rec[2] = 2; return rec }, syscall.EINVAL, record.AlertProtocolVersion,
			func(s Statistics) uint64 { return s.BadRecords.Invalid }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			k, rp := newRawPeer(t, engine, true)
			before := tc.counter(Stats())
			rp.send(record.TypeApplicationData, []byte("good"))
			s := rp.sealer(rp.txSecret)
			// The sealer starts at 0: skip the record just sent.
			s.Seal(nil, record.TypeApplicationData, []byte("good"))
			rec, err := s.Seal(nil, record.TypeApplicationData, []byte("bad"))
			if err != nil {
				t.Fatal(err)
			}
			rp.conn.Write(tc.mangle(rec))
			buf := make([]byte, 100)
			n, err := k.Read(buf)
			if err != nil || string(buf[:n]) != "good" {
				t.Fatalf("first Read = %q, %v", buf[:n], err)
			}
			_, err = k.Read(buf)
			if !errors.Is(err, tc.errno) {
				t.Fatalf("Read = %v, want %v", err, tc.errno)
			}
			if _, err2 := k.Read(buf); !errors.Is(err2, tc.errno) {
				t.Errorf("second Read = %v, want the same error", err2)
			}
			rp.wantAlert(tc.alert)
			if tc.counter(Stats()) <= before {
				t.Error("not counted")
			}
		})
	}
	t.Run("truncated_record", func(t *testing.T) {
		k, rp := newRawPeer(t, engine, true)
		s := rp.sealer(rp.txSecret)
		rec, _ := s.Seal(nil, record.TypeApplicationData, []byte("cut"))
		rp.conn.Write(rec[:len(rec)-3])
		rp.conn.(*net.TCPConn).CloseWrite()
		if _, err := k.Read(make([]byte, 10)); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Read = %v, want ErrTruncated", err)
		}
	})
}

func TestRecordRoundTrip(t *testing.T) { testRecordRoundTrip(t, OffloadUser) }

func TestKernelRecordRoundTrip(t *testing.T) {
	ktlstest.RequireKernel(t)
	testRecordRoundTrip(t, OffloadKernel)
}

// testRecordRoundTrip sends records of every type and size with
// WriteRecord and the peer, and reads them with ReadRecord and the peer.
func testRecordRoundTrip(t *testing.T, engine Offload) {
	k, rp := newRawPeer(t, engine, true)
	for _, typ := range []record.ContentType{record.TypeChangeCipherSpec, 24} {
		if err := k.WriteRecord(typ, []byte{1}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("WriteRecord(%v) = %v, want EINVAL", typ, err)
		}
	}
	types := []record.ContentType{record.TypeAlert, record.TypeHandshake, record.TypeApplicationData}
	sizes := []int{0, 1, 2, 1000, record.MaxPlaintext}
	for _, typ := range types {
		for _, size := range sizes {
			p := testData(size, uint64(typ)*1000+uint64(size))
			if typ == record.TypeHandshake && size == 5 {
				continue // could be a KeyUpdate
			}
			// ktls -> peer.
			err := k.WriteRecord(typ, p)
			if engine == OffloadKernel && size == 0 {
				if !errors.Is(err, syscall.EINVAL) {
					t.Errorf("kernel WriteRecord(%v, empty) = %v, want EINVAL", typ, err)
				}
			} else if err != nil {
				t.Fatalf("WriteRecord(%v, %d) = %v", typ, size, err)
			} else if gt, gp, err := rp.recv(); err != nil || gt != typ || !bytes.Equal(gp, p) {
				t.Fatalf("peer got %v (%d bytes), %v; want %v (%d bytes)", gt, len(gp), err, typ, size)
			}
			// peer -> ktls. The kernel skips empty application data
			// records.
			if engine == OffloadKernel && size == 0 && typ == record.TypeApplicationData {
				continue
			}
			rp.send(typ, p)
			h, gp, err := k.ReadRecord()
			if err != nil || h.Type != typ || h.Length != size || h.Version != record.VersionTLS12 || !bytes.Equal(gp, p) {
				t.Fatalf("ReadRecord = %+v (%d bytes), %v; want %v (%d bytes)", h, len(gp), err, typ, size)
			}
		}
	}
}

// recordingCache records the tickets put into a ClientSessionCache.
type recordingCache struct {
	tls.ClientSessionCache
	mu  sync.Mutex
	got []string
}

func (c *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		if ticket, _, err := cs.ResumptionState(); err == nil {
			c.mu.Lock()
			c.got = append(c.got, string(ticket))
			c.mu.Unlock()
		}
	}
	c.ClientSessionCache.Put(key, cs)
}

func (c *recordingCache) tickets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got
}

func TestPeerControl(t *testing.T) { testPeerControl(t, OffloadUser) }

func TestKernelPeerControl(t *testing.T) {
	ktlstest.RequireKernel(t)
	testPeerControl(t, OffloadKernel)
}

// testPeerControl has a crypto/tls peer send control records: a KeyUpdate
// answering ours (update_requested), an alert refusing a record it does not
// expect, and close_notify.
func testPeerControl(t *testing.T, engine Offload) {
	canRekey := engine != OffloadKernel || kernel.Rekey() == nil
	t.Run("key_update", func(t *testing.T) {
		cfg := serverTLS()
		cfg.MinVersion = tls.VersionTLS13
		pr := newPair(t, true, &Config{TLS: cfg, TX: engine, RX: engine, KernelWithoutRekey: true}, clientTLS())
		pr.fc.release()
		pr.handshake(t)
		before := Stats()
		if !canRekey {
			// Linux before 6.14: refused before anything is sent, and
			// the connection goes on under the old keys.
			err := pr.k.KeyUpdate(true)
			if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "cannot re-key") {
				t.Fatalf("KeyUpdate on a kernel without rekey = %v, want EBUSY saying it cannot re-key", err)
			}
			t.Logf("kernel without rekey: %v", err)
			echo(t, pr)
			return
		}
		if err := pr.k.KeyUpdate(true); err != nil {
			t.Fatal(err)
		}
		if _, err := pr.k.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(pr.p, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("peer read %q, %v", buf, err)
		}
		// The peer answered with its own KeyUpdate before this.
		go pr.p.Write([]byte("pong"))
		if _, err := io.ReadFull(pr.k, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("read %q, %v", buf, err)
		}
		s := Stats()
		if s.RekeysTX <= before.RekeysTX || s.RekeysRX <= before.RekeysRX {
			t.Errorf("rekeys tx %d -> %d, rx %d -> %d", before.RekeysTX, s.RekeysTX, before.RekeysRX, s.RekeysRX)
		}
		echo(t, pr)
	})
	t.Run("alert", func(t *testing.T) {
		pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine, KernelWithoutRekey: true}, clientTLS())
		pr.fc.release()
		pr.handshake(t)
		if err := pr.k.WriteRecord(record.TypeHandshake, []byte{99, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		go pr.p.Read(make([]byte, 1))
		_, err := pr.k.Read(make([]byte, 1))
		var ae tls.AlertError
		if !errors.As(err, &ae) || ae != tls.AlertError(record.AlertUnexpectedMessage) {
			t.Fatalf("Read = %v, want the peer's unexpected_message alert", err)
		}
	})
	t.Run("close_notify", func(t *testing.T) {
		pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine, KernelWithoutRekey: true}, clientTLS())
		pr.fc.release()
		pr.handshake(t)
		pr.p.Write([]byte("bye"))
		pr.p.Close()
		got, err := io.ReadAll(pr.k)
		if err != nil || string(got) != "bye" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
	})
}
