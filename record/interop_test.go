package record

// Interoperability with crypto/tls. Keys come from crypto/tls's
// KeyLogWriter; what crypto/tls wrote is learned from the bytes on the wire,
// recorded by a wrapper under the tls.Conn.
//
// TLS 1.2: a crypto/tls client and server; Config.CipherSuites on the client
// picks each AEAD suite.
//
// TLS 1.3: crypto/tls does not let a Config choose TLS 1.3 suites. A Go
// server takes the first suite of its own preference list that the client
// offers (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 with AES hardware and
// an AES-first client; ChaCha20-Poly1305 first otherwise), and a Go client
// always offers all three, so with two crypto/tls peers AES-256-GCM never
// happens and the other two depend on the CPU. Rewriting the ClientHello on
// the wire would break the transcript. So the TLS 1.3 tests run a crypto/tls
// server against a minimal client written here, whose ClientHello offers only
// the suite under test; the client takes its keys from the server's key log,
// opens the server's flight with this package, and sends its Finished sealed
// by this package (certificate checks are skipped). A test with two
// crypto/tls peers covers whichever suite they negotiate on this machine.

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var interopSizes = []int{0, 1, 16383, 16384, 16385, 1 << 20}

func interopPayloads() [][]byte {
	rng := mrand.NewChaCha8([32]byte{'k', 't', 'l', 's'})
	var ps [][]byte
	for _, n := range interopSizes {
		p := make([]byte, n)
		rng.Read(p)
		ps = append(ps, p)
	}
	return ps
}

var (
	certOnce sync.Once
	certVal  tls.Certificate
)

// testCert returns a self-signed ECDSA P-256 certificate.
func testCert(t testing.TB) tls.Certificate {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "ktls test"},
			DNSNames:     []string{"localhost"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		certVal = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return certVal
}

// keyLog collects the secrets crypto/tls writes to Config.KeyLogWriter.
type keyLog struct {
	mu           sync.Mutex
	cond         *sync.Cond
	secrets      map[string][]byte
	clientRandom []byte
}

func newKeyLog() *keyLog {
	k := &keyLog{secrets: map[string][]byte{}}
	k.cond = sync.NewCond(&k.mu)
	return k
}

func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return 0, fmt.Errorf("bad key log line")
		}
		cr, err1 := hex.DecodeString(f[1])
		secret, err2 := hex.DecodeString(f[2])
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("bad key log line")
		}
		k.clientRandom = cr
		k.secrets[f[0]] = secret
	}
	k.cond.Broadcast()
	return len(p), nil
}

// secret waits for a label to be logged.
func (k *keyLog) secret(label string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	for k.secrets[label] == nil {
		k.cond.Wait()
	}
	return k.secrets[label]
}

// recConn records the bytes written to and read from a connection.
type recConn struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.out.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

func (c *recConn) read() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.in.Bytes())
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// splitRecords cuts a recorded stream into records without checking them.
func splitRecords(t testing.TB, stream []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(stream) > 0 {
		if len(stream) < HeaderLen {
			t.Fatalf("stream ends inside a header")
		}
		n := HeaderLen + int(binary.BigEndian.Uint16(stream[3:]))
		if len(stream) < n {
			t.Fatalf("stream ends inside a record")
		}
		recs = append(recs, stream[:n:n])
		stream = stream[n:]
	}
	return recs
}

// keyedRecords returns the records of a recorded stream protected under the
// traffic keys: for TLS 1.2 those after ChangeCipherSpec, for TLS 1.3 the
// application_data records that do not authenticate under the handshake
// keys hs.
func keyedRecords(t testing.TB, stream []byte, version uint16, hs *Session) [][]byte {
	t.Helper()
	recs := splitRecords(t, stream)
	var hsOpener *Opener
	if version == VersionTLS13 {
		var err error
		if hsOpener, err = NewOpener(hs); err != nil {
			t.Fatal(err)
		}
	}
	for i, rec := range recs {
		switch {
		case version == VersionTLS12 && rec[0] == byte(TypeChangeCipherSpec):
			return recs[i+1:]
		case version == VersionTLS13 && rec[0] == byte(TypeApplicationData):
			if _, _, err := hsOpener.Open(bytes.Clone(rec)); err != nil {
				return recs[i:]
			}
		}
	}
	return nil
}

// openStream opens records that follow each other with a Reader fed in
// random chunks, and returns the content types of the non-application
// records (with the first handshake message type) and the application data.
func openStream(t testing.TB, recs [][]byte, s *Session) (control []string, data []byte) {
	t.Helper()
	o, err := NewOpener(s)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(&chunkReader{b: bytes.Join(recs, nil), rng: mrand.New(mrand.NewPCG(1, 2))}, o)
	for {
		typ, pt, err := r.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", o.Seq()-s.Seq, err)
		}
		switch typ {
		case TypeApplicationData:
			data = append(data, pt...)
		case TypeHandshake:
			control = append(control, fmt.Sprintf("handshake(%d)", pt[0]))
		default:
			control = append(control, typ.String())
		}
	}
	if o.Seq() != s.Seq+uint64(len(recs)) {
		t.Errorf("opened %d records, want %d", o.Seq()-s.Seq, len(recs))
	}
	return control, data
}

// chunkReader returns its bytes in random pieces of 1 byte to 100 KiB.
type chunkReader struct {
	b   []byte
	rng *mrand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), 1+c.rng.IntN(100<<10))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// exchange writes each payload with write and reads them all back with
// read, concurrently.
func exchange(t testing.TB, payloads [][]byte, write func() error, read io.Reader) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- write() }()
	want := bytes.Join(payloads, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(read, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("data differs")
	}
}

func writeAll(w io.Writer, payloads [][]byte) func() error {
	return func() error {
		for _, p := range payloads {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
}

// writeOurs writes an empty record and then the payloads with Writer.
func writeOurs(w *Writer, payloads [][]byte) func() error {
	return func() error {
		if err := w.WriteRecord(TypeApplicationData, nil); err != nil {
			return err
		}
		return writeAll(w, payloads)()
	}
}

// TestInteropCryptoTLS runs a crypto/tls client against a crypto/tls server
// for every TLS 1.2 AEAD suite and for the TLS 1.3 suite they negotiate. In
// each direction, the records crypto/tls wrote must open with sessions
// derived from the key log, and records sealed by this package with the
// next sequence numbers must be read by crypto/tls.
func TestInteropCryptoTLS(t *testing.T) {
	for _, tc := range []struct {
		version, suite uint16
	}{
		{VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		{VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		{VersionTLS13, 0},
	} {
		name := "TLS13"
		if tc.suite != 0 {
			name = tls.CipherSuiteName(tc.suite)
		}
		t.Run(name, func(t *testing.T) { interopPair(t, tc.version, tc.suite) })
	}
}

func interopPair(t *testing.T, version, suite uint16) {
	payloads := interopPayloads()
	kl := newKeyLog()
	sraw, craw := tcpPair(t)
	srec, crec := &recConn{Conn: sraw}, &recConn{Conn: craw}
	server := tls.Server(srec, &tls.Config{Certificates: []tls.Certificate{testCert(t)}, MinVersion: version, MaxVersion: version})
	// A session cache makes the client offer tickets, so that a TLS 1.3
	// server sends a NewSessionTicket under the application key.
	ccfg := &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version, KeyLogWriter: kl,
		ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	if suite != 0 {
		ccfg.CipherSuites = []uint16{suite}
	}
	client := tls.Client(crec, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	suite = client.ConnectionState().CipherSuite
	t.Logf("negotiated %s", tls.CipherSuiteName(suite))

	// crypto/tls writes in both directions.
	exchange(t, payloads, writeAll(server, payloads), client)
	exchange(t, payloads, writeAll(client, payloads), server)

	var cs, ss, chs, shs *Session
	var err error
	if version == VersionTLS12 {
		sh := splitRecords(t, crec.read())[0]
		if sh[0] != byte(TypeHandshake) || sh[5] != 2 {
			t.Fatalf("first server record is not a ServerHello")
		}
		serverRandom := sh[HeaderLen+6 : HeaderLen+6+32]
		cs, ss, err = TLS12Sessions(suite, kl.secret("CLIENT_RANDOM"), kl.clientRandom, serverRandom)
	} else {
		cs, err = TLS13Session(suite, kl.secret("CLIENT_TRAFFIC_SECRET_0"))
		ss, _ = TLS13Session(suite, kl.secret("SERVER_TRAFFIC_SECRET_0"))
		chs, _ = TLS13Session(suite, kl.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"))
		shs, _ = TLS13Session(suite, kl.secret("SERVER_HANDSHAKE_TRAFFIC_SECRET"))
	}
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Join(payloads, nil)
	for _, dir := range []struct {
		name        string
		stream      []byte
		s, hs       *Session
		wantControl string
		writer      net.Conn
		reader      *tls.Conn
	}{
		{"server", srec.written(), ss, shs, map[uint16]string{VersionTLS12: "handshake(20)", VersionTLS13: "handshake(4)"}[version], sraw, client},
		{"client", crec.written(), cs, chs, map[uint16]string{VersionTLS12: "handshake(20)", VersionTLS13: ""}[version], craw, server},
	} {
		recs := keyedRecords(t, dir.stream, version, dir.hs)
		control, data := openStream(t, recs, dir.s)
		if got := strings.Join(control, ","); got != dir.wantControl {
			t.Errorf("%s: control records %q, want %q (Finished in TLS 1.2, NewSessionTicket from a TLS 1.3 server)", dir.name, got, dir.wantControl)
		}
		if !bytes.Equal(data, want) {
			t.Errorf("%s: application data differs: %d bytes, want %d", dir.name, len(data), len(want))
		}
		// Now this package takes over the direction at the next sequence
		// number, and crypto/tls reads.
		next := *dir.s
		next.Seq = uint64(len(recs))
		sl, err := NewSealer(&next)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, payloads, writeOurs(NewWriter(dir.writer, sl), payloads), dir.reader)
		t.Logf("%s: crypto/tls wrote %d records under the traffic key, then we wrote up to seq %d", dir.name, len(recs), sl.Seq())
	}
}

// TestInteropTLS13Suites runs each TLS 1.3 suite against a crypto/tls server
// with the minimal client described at the top of this file.
func TestInteropTLS13Suites(t *testing.T) {
	for _, suite := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) { interopTLS13(t, suite) })
	}
}

func interopTLS13(t *testing.T, suite uint16) {
	payloads := interopPayloads()
	kl := newKeyLog()
	sraw, conn := tcpPair(t)
	server := tls.Server(sraw, &tls.Config{
		Certificates:     []tls.Certificate{testCert(t)},
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
		KeyLogWriter:     kl,
	})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()

	// ClientHello offering only the suite under test.
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ch := clientHello13(suite, key.PublicKey().Bytes())
	if _, err := conn.Write(append([]byte{22, 3, 1, byte(len(ch) >> 8), byte(len(ch))}, ch...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn) // read the handshake record by record
	sh := readPlainRecord(t, br)
	if sh[0] != 2 || binary.BigEndian.Uint16(sh[4+2+32+1+int(sh[4+2+32]):]) != suite {
		t.Fatalf("server did not pick %s", tls.CipherSuiteName(suite))
	}
	transcript := append(bytes.Clone(ch), sh...)
	if b, err := br.Peek(1); err == nil && b[0] == byte(TypeChangeCipherSpec) {
		br.Discard(HeaderLen + 1) // the server's compatibility ChangeCipherSpec
	}

	cHS, err := TLS13Session(suite, kl.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"))
	if err != nil {
		t.Fatal(err)
	}
	sHS, _ := TLS13Session(suite, kl.secret("SERVER_HANDSHAKE_TRAFFIC_SECRET"))
	hsOpener, _ := NewOpener(sHS)
	r := NewReader(br, hsOpener)
	var flight []byte
	for !hasFinished(flight) {
		typ, pt, err := r.ReadRecord()
		if err != nil {
			t.Fatalf("server flight: %v", err)
		}
		if typ != TypeHandshake {
			t.Fatalf("server flight: %v record", typ)
		}
		flight = append(flight, pt...)
	}
	transcript = append(transcript, flight...)

	// Client Finished (RFC 8446 section 4.4.4), sealed with our Sealer.
	info, _ := suiteOf(suite)
	h := info.hashFunc()
	th := h()
	th.Write(transcript)
	mac := hmac.New(h, expandLabel(hmac.New(h, kl.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET")), "finished", info.hashLen()))
	mac.Write(th.Sum(nil))
	fin := append([]byte{20, 0, 0, byte(info.hashLen())}, mac.Sum(nil)...)
	hsSealer, _ := NewSealer(cHS)
	rec, err := hsSealer.Seal(nil, TypeHandshake, fin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}

	// Application keys. The Reader has buffered what followed the server
	// Finished; switch it to the application key.
	sAP, _ := TLS13Session(suite, kl.secret("SERVER_TRAFFIC_SECRET_0"))
	cAP, _ := TLS13Session(suite, kl.secret("CLIENT_TRAFFIC_SECRET_0"))
	apOpener, _ := NewOpener(sAP)
	r.SetOpener(apOpener)
	errc2 := make(chan error, 1)
	go func() { errc2 <- writeAll(server, payloads)() }()
	want := bytes.Join(payloads, nil)
	var got []byte
	var control []string
	for len(got) < len(want) {
		typ, pt, err := r.ReadRecord()
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		if typ == TypeApplicationData {
			got = append(got, pt...)
		} else {
			control = append(control, fmt.Sprintf("%v(%d)", typ, pt[0]))
		}
	}
	if err := <-errc2; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("application data from crypto/tls differs")
	}
	if c := strings.Join(control, ","); c != "handshake(4)" {
		t.Errorf("control records %q, want one NewSessionTicket", c)
	}
	t.Logf("opened %d records from crypto/tls (first a NewSessionTicket)", apOpener.Seq())

	// Our records to crypto/tls.
	apSealer, _ := NewSealer(cAP)
	exchange(t, payloads, writeOurs(NewWriter(conn, apSealer), payloads), server)
	t.Logf("crypto/tls read our %d records", apSealer.Seq())
}

// clientHello13 builds a TLS 1.3 ClientHello handshake message offering one
// suite and an X25519 key share.
func clientHello13(suite uint16, pub []byte) []byte {
	u16 := func(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
	ext := func(b []byte, typ int, body []byte) []byte { return append(u16(u16(b, typ), len(body)), body...) }
	var exts []byte
	exts = ext(exts, 0x002b, []byte{2, 3, 4})                                  // supported_versions: TLS 1.3
	exts = ext(exts, 0x000a, []byte{0, 2, 0, 0x1d})                            // supported_groups: x25519
	exts = ext(exts, 0x000d, []byte{0, 6, 4, 3, 8, 4, 8, 7})                   // signature_algorithms
	exts = ext(exts, 0x002d, []byte{1, 1})                                     // psk_key_exchange_modes: psk_dhe_ke, so that the server sends a ticket
	exts = ext(exts, 0x0033, append(u16(u16(u16(nil, 36), 0x1d), 32), pub...)) // key_share
	body := []byte{3, 3}
	random := make([]byte, 32)
	rand.Read(random)
	body = append(body, random...)
	body = append(body, 0)               // legacy_session_id
	body = u16(u16(body, 2), int(suite)) // cipher_suites
	body = append(body, 1, 0)            // legacy_compression_methods
	body = append(u16(body, len(exts)), exts...)
	return append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
}

// readPlainRecord reads one unprotected handshake record, skipping
// ChangeCipherSpec, and returns its body.
func readPlainRecord(t testing.TB, r io.Reader) []byte {
	t.Helper()
	for {
		hdr := make([]byte, HeaderLen)
		if _, err := io.ReadFull(r, hdr); err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(hdr, 0)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, h.Length)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		if h.Type == TypeHandshake {
			return body
		}
		if h.Type != TypeChangeCipherSpec {
			t.Fatalf("unexpected %v record %x", h.Type, body)
		}
	}
}

// hasFinished reports whether a sequence of handshake messages ends with a
// complete Finished.
func hasFinished(msgs []byte) bool {
	for len(msgs) >= 4 {
		n := 4 + (int(msgs[1])<<16 | int(msgs[2])<<8 | int(msgs[3]))
		if len(msgs) < n {
			return false
		}
		if msgs[0] == 20 && len(msgs) == n {
			return true
		}
		msgs = msgs[n:]
	}
	return false
}
