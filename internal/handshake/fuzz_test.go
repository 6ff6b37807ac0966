package handshake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ktls-go/ktls/record"
)

// fuzzCert is a self-signed certificate for the fuzzed servers.
var fuzzCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})

// recordingConn records what is read through it.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read bytes.Buffer
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.read.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

// realFlights runs a crypto/tls handshake of the given version and returns
// the bytes each side received: what the server sent (seeds for a fuzzed
// client) and what the client sent (seeds for a fuzzed server).
func realFlights(version uint16) (toClient, toServer []byte) {
	a, b := net.Pipe()
	ra, rb := &recordingConn{Conn: a}, &recordingConn{Conn: b}
	cfg := &tls.Config{Certificates: []tls.Certificate{fuzzCert()}, InsecureSkipVerify: true,
		MinVersion: version, MaxVersion: version}
	done := make(chan struct{})
	go func() {
		s := tls.Server(rb, cfg)
		s.Handshake()
		s.Write([]byte("hello"))
		close(done)
	}()
	c := tls.Client(ra, cfg)
	c.Handshake()
	c.Read(make([]byte, 10))
	<-done
	a.Close()
	b.Close()
	return ra.read.Bytes(), rb.read.Bytes()
}

// addFlightSeeds adds real handshake flights of TLS 1.2 and 1.3 as seeds,
// whole and cut into their records.
func addFlightSeeds(f *testing.F, add func(isClient bool, b []byte)) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		toClient, toServer := realFlights(v)
		add(true, toClient)
		add(false, toServer)
		for _, side := range []struct {
			isClient bool
			b        []byte
		}{{true, toClient}, {false, toServer}} {
			for b := side.b; len(b) >= record.HeaderLen; {
				n := min(len(b), record.HeaderLen+int(b[3])<<8|int(b[4]))
				add(side.isClient, b[:n])
				b = b[n:]
			}
		}
	}
}

// FuzzHandshakeObserver runs a crypto/tls handshake through a Conn whose
// peer sends arbitrary bytes, over a real socket (so that the batched,
// MSG_PEEK reads are used) or a plain reader handing out small pieces. The
// handshake must end without hanging, and the hand-off (TrafficSecrets,
// Sessions, for any version and suite) must fail cleanly or give valid
// sessions; nothing may panic.
func FuzzHandshakeObserver(f *testing.F) {
	addFlightSeeds(f, func(isClient bool, b []byte) { f.Add(isClient, true, b); f.Add(isClient, false, b) })
	f.Add(true, true, []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, isClient, socket bool, peer []byte) {
		var raw net.Conn
		if socket {
			c, p := socketPair(t)
			go func() {
				p.Write(peer)
				p.(*net.TCPConn).CloseWrite()
				// Drain what crypto/tls sends so that its writes never block.
				var buf [4096]byte
				for {
					if _, err := p.Read(buf[:]); err != nil {
						break
					}
				}
				p.Close()
			}()
			raw = c
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
		} else {
			raw = &fakeConn{r: iotest.HalfReader(bytes.NewReader(peer))}
		}
		hc := NewConn(raw, isClient)
		cfg := &tls.Config{Certificates: []tls.Certificate{fuzzCert()}, InsecureSkipVerify: true,
			KeyLogWriter: hc.KeyLogWriter(nil), Time: func() time.Time { return time.Unix(1e9, 0) }}
		var tc *tls.Conn
		if isClient {
			tc = tls.Client(hc, cfg)
		} else {
			tc = tls.Server(hc, cfg)
		}
		err := tc.Handshake()
		if socket && err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("handshake hung: %v", err)
			}
		}
		hc.Detach()
		state := tc.ConnectionState()
		for _, v := range []uint16{state.Version, record.VersionTLS12, record.VersionTLS13} {
			for _, suite := range []uint16{state.CipherSuite, tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384} {
				hc.TrafficSecrets()
				tx, rx, err := hc.Sessions(v, suite)
				if err != nil {
					continue
				}
				if tx.Validate() != nil || rx.Validate() != nil {
					t.Fatalf("invalid sessions %v, %v", tx, rx)
				}
				tx.Wipe()
				rx.Wipe()
			}
		}
	})
}

// FuzzRecordReads feeds arbitrary bytes to Read, in small pieces or from a
// socket, and to Write: the reads must add up to a prefix of the input and
// end without hanging, and Write must pass the bytes on unchanged.
func FuzzRecordReads(f *testing.F) {
	addFlightSeeds(f, func(isClient bool, b []byte) { f.Add(isClient, b) })
	f.Fuzz(func(t *testing.T, socket bool, in []byte) {
		var raw net.Conn
		if socket {
			c, p := socketPair(t)
			defer c.Close()
			go func() {
				p.Write(in)
				p.Close()
			}()
			raw = c
			c.SetDeadline(time.Now().Add(10 * time.Second))
		} else {
			raw = &fakeConn{r: iotest.HalfReader(bytes.NewReader(in))}
		}
		hc := NewConn(raw, false)
		var got []byte
		buf := make([]byte, 70000)
		for range len(in) + 2 {
			n, err := hc.Read(buf[:1+len(got)%9000])
			got = append(got, buf[:n]...)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("Read hung: %v", err)
				}
				break
			}
		}
		if !bytes.HasPrefix(in, got) {
			t.Fatalf("read %d bytes that are not a prefix of the input", len(got))
		}
		OnlyTickets(in)
		w := NewConn(&fakeConn{r: bytes.NewReader(nil)}, true)
		for b := in; len(b) > 0; {
			n := min(len(b), 1+int(b[0])%300)
			if _, err := w.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		if fc := w.Conn.(*fakeConn); !bytes.Equal(fc.written.Bytes(), in) {
			t.Fatal("Write changed the bytes")
		}
	})
}

// socketPair returns the two ends of a loopback TCP connection.
func socketPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if b, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	return a, b
}
