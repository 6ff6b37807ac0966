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
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// recordingConn keeps a copy of the bytes read from and written to a conn.
type recordingConn struct {
	net.Conn
	mu          sync.Mutex
	read, wrote bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.wrote.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// newRawPeer12 is newRawPeer for TLS 1.2: the raw peer's keys come from the
// CLIENT_RANDOM key log line and the ServerHello random seen on the wire.
// The client offers suites, if any are given, else crypto/tls's defaults.
func newRawPeer12(t testing.TB, engine Offload, ktlsServer bool, suites ...uint16) (*Conn, *rawPeer) {
	t.Helper()
	var kl keyLogBuf
	scfg, ccfg := serverTLS(), clientTLS()
	scfg.SessionTicketsDisabled = true
	scfg.MaxVersion, ccfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	ccfg.CipherSuites = suites
	kcfg := &Config{TX: engine, RX: engine}
	var pcfg *tls.Config
	if ktlsServer {
		kcfg.TLS, pcfg = scfg, ccfg
	} else {
		kcfg.TLS, pcfg = ccfg, scfg
	}
	pcfg.KeyLogWriter = &kl
	cc, ss := tcpPair(t)
	deadline := time.Now().Add(20 * time.Second)
	cc.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	var k *Conn
	var p *tls.Conn
	var praw net.Conn
	if ktlsServer {
		k, praw = Server(ss, kcfg), cc
	} else {
		k, praw = Client(cc, kcfg), ss
	}
	rec := &recordingConn{Conn: praw}
	if ktlsServer {
		p = tls.Client(rec, pcfg)
	} else {
		p = tls.Server(rec, pcfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Handshake() }()
	if err := k.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if v := p.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("version %x, want TLS 1.2", v)
	}
	// The ServerHello is the first record from the server: record
	// header, handshake header, legacy_version, then the random.
	fromServer := rec.read.Bytes()
	if !ktlsServer {
		fromServer = rec.wrote.Bytes()
	}
	if len(fromServer) < 43 || fromServer[0] != byte(record.TypeHandshake) || fromServer[5] != 2 {
		t.Fatal("no ServerHello at the start of the server's stream")
	}
	serverRandom := fromServer[11:43]
	clientRandom, master := clientRandomLine(t, &kl)
	suite := p.ConnectionState().CipherSuite
	client, server, err := record.TLS12Sessions(suite, master, clientRandom, serverRandom)
	if err != nil {
		t.Fatal(err)
	}
	// Each side sent and received one record (Finished) after
	// ChangeCipherSpec: no tickets, no other records.
	client.Seq, server.Seq = 1, 1
	tx, rx := client, server
	if !ktlsServer {
		tx, rx = server, client
	}
	sl, err := record.NewSealer(tx)
	if err != nil {
		t.Fatal(err)
	}
	op, err := record.NewOpener(rx)
	if err != nil {
		t.Fatal(err)
	}
	rp := &rawPeer{t: t, conn: praw, suite: suite}
	rp.w = record.NewWriter(praw, sl)
	rp.r = record.NewReader(praw, op)
	return k, rp
}

// clientRandomLine returns the client random and master secret of the
// CLIENT_RANDOM key log line.
func clientRandomLine(t testing.TB, k *keyLogBuf) (clientRandom, master []byte) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	for line := range strings.Lines(k.b.String()) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "CLIENT_RANDOM" {
			cr, err1 := hex.DecodeString(f[1])
			ms, err2 := hex.DecodeString(f[2])
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			return cr, ms
		}
	}
	t.Fatal("no CLIENT_RANDOM in the key log")
	return nil, nil
}

func TestControlRecords12(t *testing.T) { testControlRecords12(t, OffloadUser) }

func TestKernelControlRecords12(t *testing.T) {
	ktlstest.RequireKernel(t)
	testControlRecords12(t, OffloadKernel)
}

// testControlRecords12 sends control records after a TLS 1.2 handshake.
func testControlRecords12(t *testing.T, engine Offload) {
	t.Run("data", func(t *testing.T) {
		k, rp := newRawPeer12(t, engine, true)
		rp.send(record.TypeApplicationData, []byte("hello"))
		buf := make([]byte, 10)
		n, err := k.Read(buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		go k.Write([]byte("back"))
		if typ, p, err := rp.recv(); err != nil || typ != record.TypeApplicationData || string(p) != "back" {
			t.Fatalf("peer got %v %q, %v", typ, p, err)
		}
	})
	for name, a := range map[string]record.Alert{
		"warning_user_canceled":    record.AlertUserCanceled,
		"warning_no_renegotiation": record.AlertNoRenegotiation,
	} {
		t.Run(name, func(t *testing.T) {
			k, rp := newRawPeer12(t, engine, true)
			rp.send(record.TypeAlert, []byte{1, byte(a)})
			rp.send(record.TypeApplicationData, []byte("after"))
			buf := make([]byte, 10)
			n, err := k.Read(buf)
			if err != nil || string(buf[:n]) != "after" {
				t.Fatalf("Read = %q, %v; want the data after the warning", buf[:n], err)
			}
		})
	}
	// Issue 13.6: a HelloRequest is refused with a warning
	// no_renegotiation, as crypto/tls does, and the connection goes on.
	for _, ktlsServer := range []bool{false, true} {
		t.Run("hello_request_"+map[bool]string{false: "client", true: "server"}[ktlsServer], func(t *testing.T) {
			k, rp := newRawPeer12(t, engine, ktlsServer)
			// As crypto/tls: a warning no_renegotiation, and Read ends
			// with that error (BoGo's Renegotiate-Client-NoIgnore).
			rp.send(record.TypeHandshake, []byte{0, 0, 0, 0})
			rp.send(record.TypeApplicationData, []byte("after"))
			buf := make([]byte, 10)
			n, err := k.Read(buf)
			var ae tls.AlertError
			if !errors.As(err, &ae) || record.Alert(ae) != record.AlertNoRenegotiation {
				t.Fatalf("Read = %q, %v; want the error no_renegotiation", buf[:n], err)
			}
			if _, err2 := k.Read(buf); err2 != err {
				t.Errorf("second Read: %v; want the same error %v", err2, err)
			}
			if typ, p, err := rp.recv(); err != nil || typ != record.TypeAlert || len(p) != 2 || p[0] != 1 || record.Alert(p[1]) != record.AlertNoRenegotiation {
				t.Fatalf("peer got %v %x, %v; want a warning no_renegotiation", typ, p, err)
			}
		})
	}
	t.Run("warning_flood", func(t *testing.T) {
		// Issue 13.4: 16 warnings in a row are skipped, 17 are not.
		k, rp := newRawPeer12(t, engine, true)
		for range 16 {
			rp.send(record.TypeAlert, []byte{1, byte(record.AlertUserCanceled)})
		}
		rp.send(record.TypeApplicationData, []byte("a"))
		if _, err := io.ReadFull(k, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		for range 17 {
			rp.send(record.TypeAlert, []byte{1, byte(record.AlertUserCanceled)})
		}
		wantFatal(t, k, rp, record.AlertUnexpectedMessage)
	})
	t.Run("key_limit", func(t *testing.T) {
		// Issue 13.10: TLS 1.2 has no KeyUpdate: past the limit the
		// connection goes on, counted once.
		old := recordsPerKey
		recordsPerKey = 2
		defer func() { recordsPerKey = old }()
		k, rp := newRawPeer12(t, engine, true)
		if c, _ := record.CipherOf(k.ConnectionState().CipherSuite); c == record.CipherChaCha20Poly1305 {
			t.Logf("ChaCha20-Poly1305: no record limit") // reasoned: the limit is AES-GCM's
			return
		}
		before := Stats().KeyLimitExceeded
		data := testData(5*record.MaxPlaintext, 3)
		go k.Write(data)
		var got []byte
		for len(got) < len(data) {
			typ, p, err := rp.recv()
			if err != nil || typ != record.TypeApplicationData {
				t.Fatalf("peer got %v, %v", typ, err)
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, data) {
			t.Fatal(firstDiff(got, data))
		}
		if n := Stats().KeyLimitExceeded - before; n != 1 {
			t.Errorf("key limit counted %d times, want 1", n)
		}
	})
	t.Run("fatal_alert", func(t *testing.T) {
		k, rp := newRawPeer12(t, engine, true)
		rp.send(record.TypeAlert, []byte{2, byte(record.AlertHandshakeFailure)})
		_, err := k.Read(make([]byte, 1))
		var ae tls.AlertError
		if !errors.As(err, &ae) || ae != tls.AlertError(record.AlertHandshakeFailure) || !strings.Contains(err.Error(), "handshake failure") {
			t.Fatalf("Read = %v, want tls.AlertError handshake_failure", err)
		}
	})
	t.Run("close_notify", func(t *testing.T) {
		k, rp := newRawPeer12(t, engine, true)
		rp.send(record.TypeApplicationData, []byte("data"))
		rp.send(record.TypeAlert, []byte{1, 0})
		got, err := io.ReadAll(k)
		if err != nil || string(got) != "data" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if _, err := k.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read after close_notify = %v, want io.EOF", err)
		}
		k.Close()
		rp.wantAlert(record.AlertCloseNotify)
	})
	for name, tc := range map[string]struct {
		ktlsServer bool
		typ        record.ContentType
		p          []byte
	}{
		"client_hello":       {true, record.TypeHandshake, []byte{1, 0, 0, 0}},
		"change_cipher_spec": {true, record.TypeChangeCipherSpec, []byte{1}},
	} {
		t.Run(name, func(t *testing.T) {
			k, rp := newRawPeer12(t, engine, tc.ktlsServer)
			before := Stats().Control.Unexpected
			rp.send(tc.typ, tc.p)
			if _, err := k.Read(make([]byte, 1)); err == nil {
				t.Fatal("Read succeeded")
			}
			rp.wantAlert(record.AlertUnexpectedMessage)
			if Stats().Control.Unexpected <= before {
				t.Error("not counted as unexpected")
			}
		})
	}
}

// TestRenegotiatingClientStaysOnCryptoTLS: a client whose tls.Config allows
// renegotiation is not handed off (issue 13.6), so that crypto/tls can
// follow a HelloRequest.
func TestRenegotiatingClientStaysOnCryptoTLS(t *testing.T) {
	ccfg := clientTLS()
	ccfg.Renegotiation = tls.RenegotiateOnceAsClient
	scfg := serverTLS()
	scfg.MaxVersion = tls.VersionTLS12
	pr := newPair(t, false, &Config{TLS: ccfg, TX: OffloadUser, RX: OffloadUser}, scfg)
	pr.fc.release()
	pr.handshake(t)
	if tx, rx := pr.k.Mode(); tx != ModeNone || rx != ModeNone {
		t.Fatalf("Mode() = %v, %v; want none, none", tx, rx)
	}
	echo(t, pr)
}
