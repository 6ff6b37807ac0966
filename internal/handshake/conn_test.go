package handshake

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ktls-go/ktls/record"
)

// fakeConn reads from r and discards writes.
type fakeConn struct {
	net.Conn // nil: other methods are not used
	r        io.Reader
	written  bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error) { return f.written.Write(p) }

func rec(typ record.ContentType, body []byte) []byte {
	return append([]byte{byte(typ), 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

// TestReadOneRecord checks that Read never returns bytes past the end of the
// current record, whatever the buffer size.
func TestReadOneRecord(t *testing.T) {
	r1, r2 := rec(record.TypeHandshake, bytes.Repeat([]byte{1}, 300)), rec(record.TypeApplicationData, []byte("after"))
	// iotest-like: the underlying conn hands out small pieces.
	c := NewConn(&fakeConn{r: io.MultiReader(bytes.NewReader(r1[:3]), bytes.NewReader(r1[3:100]), bytes.NewReader(append(r1[100:], r2...)))}, false)
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], r1) {
		t.Fatalf("first Read = %d, %v; want the whole first record (%d bytes) and nothing more", n, err, len(r1))
	}
	n, err = io.ReadFull(c, buf[:2])
	if err != nil || !bytes.Equal(buf[:n], r2[:2]) {
		t.Fatalf("partial read of the second record = %q, %v", buf[:n], err)
	}
	n, err = c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], r2[2:]) {
		t.Fatalf("rest of the second record = %q, %v", buf[:n], err)
	}
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("Read at the end = %v, want EOF", err)
	}
	c.Detach()
	if _, err := c.Read(buf); err != ErrDetached {
		t.Fatalf("Read after Detach = %v", err)
	}
	if _, err := c.Write(buf); err != ErrDetached {
		t.Fatalf("Write after Detach = %v", err)
	}
}

// TestKeyLog checks parsing (lines split across writes, other labels) and
// that every byte reaches the user's writer.
func TestKeyLog(t *testing.T) {
	var user bytes.Buffer
	c := NewConn(&fakeConn{}, true)
	w := c.KeyLogWriter(&user)
	random, secret := bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0x55}, 32)
	log := fmt.Sprintf("CLIENT_HANDSHAKE_TRAFFIC_SECRET %x %x\nCLIENT_TRAFFIC_SECRET_0 %x %x\n", random, secret, random, secret)
	for _, part := range []string{log[:10], log[10:90], log[90:]} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if user.String() != log {
		t.Errorf("user's writer got %q", user.String())
	}
	if !bytes.Equal(c.log.clientTraffic, secret) || c.log.serverTraffic != nil || c.log.master != nil {
		t.Errorf("parsed secrets wrong")
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func keyLogLine(label string, random, secret []byte) []byte {
	return fmt.Appendf(nil, "%s %s %s\n", label, hex.EncodeToString(random), hex.EncodeToString(secret))
}

// TestCountTLS13 checks the sequence accounting of TLS 1.3: records under
// the handshake key do not count, the ones under the application key do.
func TestCountTLS13(t *testing.T) {
	const suite = tls.TLS_AES_128_GCM_SHA256
	for _, tickets := range []int{0, 1, 3, -1} {
		// -1: one ticket, then a record under a key that is neither the
		// handshake's nor the application's, which fails the hand-off.
		t.Run(fmt.Sprint(tickets), func(t *testing.T) {
			f := &fakeConn{r: bytes.NewReader(nil)}
			c := NewConn(f, false) // server: TX is the server's direction
			cs, ss, hs := randomBytes(32), randomBytes(32), randomBytes(32)
			kl := c.KeyLogWriter(nil)
			kl.Write(keyLogLine("CLIENT_TRAFFIC_SECRET_0", randomBytes(32), cs))
			kl.Write(keyLogLine("SERVER_TRAFFIC_SECRET_0", randomBytes(32), ss))
			seal := func(secret []byte, n int) []byte {
				s, err := record.TLS13Session(suite, secret)
				if err != nil {
					t.Fatal(err)
				}
				sealer, _ := record.NewSealer(s)
				var out []byte
				for range n {
					out, _ = sealer.Seal(out, record.TypeHandshake, []byte("handshake message"))
				}
				return out
			}
			// One Write holds the handshake-key flight and the tickets;
			// split it at an odd place to exercise reassembly.
			flight := append(rec(record.TypeChangeCipherSpec, []byte{1}), seal(hs, 4)...)
			if tickets >= 0 {
				flight = append(flight, seal(ss, tickets)...)
			} else {
				flight = append(flight, seal(ss, 1)...)
				flight = append(flight, seal(randomBytes(32), 1)...)
			}
			c.Write(flight[:7])
			c.Write(flight[7:])
			c.Detach()
			tx, rx, err := c.Sessions(record.VersionTLS13, suite)
			if tickets < 0 {
				if err == nil {
					t.Fatal("Sessions accepted a record under an unknown key after the ticket")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tx.Seq != uint64(tickets) || rx.Seq != 0 {
				t.Errorf("tx seq %d, rx seq %d; want %d, 0", tx.Seq, rx.Seq, tickets)
			}
		})
	}
}

// TestTLS12 checks that the TLS 1.2 sessions come from the key log and the
// hello randoms on the wire, wherever records cut the hellos, with the
// records after ChangeCipherSpec counted; and that keys derived from a
// wrong random, which do not authenticate the Finished, are refused.
func TestTLS12(t *testing.T) {
	const suite = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	cr, sr, master := randomBytes(32), randomBytes(32), randomBytes(48)
	client, server, err := record.TLS12Sessions(suite, master, cr, sr)
	if err != nil {
		t.Fatal(err)
	}
	finished := func(s *record.Session) []byte {
		sealer, _ := record.NewSealer(s)
		rec, _ := sealer.Seal(nil, record.TypeHandshake, make([]byte, 16))
		return rec
	}
	// hello frames a hello (random, empty session id, suite) in records of
	// size bytes; the random seen is sr with its first byte flipped if bad.
	hello := func(typ byte, random []byte, size int, bad bool) []byte {
		random = bytes.Clone(random)
		if bad {
			random[0] ^= 1
		}
		msg := slices.Concat([]byte{typ, 0, 0, 38 + 3, 3, 3}, random, []byte{0, byte(suite >> 8), byte(suite & 0xff)})
		var out []byte
		for len(msg) > 0 {
			n := min(size, len(msg))
			out = append(out, rec(record.TypeHandshake, msg[:n])...)
			msg = msg[n:]
		}
		return out
	}
	for _, size := range []int{1, 10, 20, 43, 1000} {
		for _, bad := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/bad=%v", size, bad), func(t *testing.T) {
				in := slices.Concat(hello(typeServerHello, sr, size, bad), rec(record.TypeChangeCipherSpec, []byte{1}), finished(server))
				c := NewConn(&fakeConn{r: bytes.NewReader(in)}, true)
				c.KeyLogWriter(nil).Write(keyLogLine("CLIENT_RANDOM", cr, master))
				c.Write(hello(typeClientHello, cr, size, false))
				c.Write(append(rec(record.TypeChangeCipherSpec, []byte{1}), finished(client)...))
				if _, err := io.ReadAll(c); err != nil {
					t.Fatal(err)
				}
				c.Detach()
				tx, rx, err := c.Sessions(record.VersionTLS12, suite)
				if bad {
					if err == nil {
						t.Fatal("Sessions accepted keys derived from a wrong server random")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(tx.Key, client.Key) || !bytes.Equal(rx.Key, server.Key) || tx.Seq != 1 || rx.Seq != 1 {
					t.Errorf("sessions: tx %v, rx %v (keys match: %v, %v)", tx, rx, bytes.Equal(tx.Key, client.Key), bytes.Equal(rx.Key, server.Key))
				}
				if c.log.master != nil {
					t.Error("Sessions left the master secret behind")
				}
				if c.suite != suite {
					t.Errorf("suite from the ServerHello = %#x, want %#x", c.suite, suite)
				}
			})
		}
	}
}

func TestOnlyTickets(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{4, 0, 0, 1, 9}, true},
		{[]byte{4, 0, 0, 1, 9, 4, 0, 0, 0}, true},
		{[]byte{4, 0, 0, 2, 9}, false},
		{[]byte{24, 0, 0, 1, 0}, false},
		{[]byte{4, 0, 0, 0, 24, 0, 0, 1, 0}, false},
		{[]byte{4, 0}, false},
	} {
		if got := OnlyTickets(tc.b); got != tc.want {
			t.Errorf("OnlyTickets(%x) = %v", tc.b, got)
		}
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
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
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// readFlight reads what one Read returns and checks it is exactly want,
// then checks that rest is still queued on the socket after Detach.
func readFlight(t *testing.T, c *Conn, raw net.Conn, want [][]byte, rest []byte) {
	t.Helper()
	buf := make([]byte, 1<<16)
	for i, w := range want {
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], w) {
			t.Fatalf("Read %d = %d bytes, %v; want %d bytes", i, n, err, len(w))
		}
	}
	c.Detach()
	got := make([]byte, len(rest))
	if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, rest) {
		t.Fatalf("left on the socket: %v; want the records after the handshake intact", err)
	}
}

// TestBatchTLS12 checks that a queued TLS 1.2 flight is read at once up to
// and including the Finished after the ChangeCipherSpec, and no further.
func TestBatchTLS12(t *testing.T) {
	a, b := tcpPair(t)
	hello := rec(record.TypeHandshake, append([]byte{typeServerHello, 0, 0, 38, 3, 3}, make([]byte, 32)...))
	nst := rec(record.TypeHandshake, []byte{typeNewSessionTicket, 0, 0, 0})
	ccs := rec(record.TypeChangeCipherSpec, []byte{1})
	fin := rec(record.TypeHandshake, make([]byte, 40))
	data, alert := rec(record.TypeApplicationData, make([]byte, 30)), rec(record.TypeAlert, []byte{1, 0})
	flight := slices.Concat(hello, nst, ccs, fin)
	b.Write(slices.Concat(flight, data, alert))
	time.Sleep(50 * time.Millisecond) // let it all arrive
	c := NewConn(a, true)
	readFlight(t, c, a, [][]byte{flight}, slices.Concat(data, alert))
}

// TestBatchTLS13 checks that the records under the peer's handshake key are
// read at once, and the one under another key (the application key) is
// left on the socket.
func TestBatchTLS13(t *testing.T) {
	const suite = tls.TLS_AES_128_GCM_SHA256
	a, b := tcpPair(t)
	hsSecret := randomBytes(32)
	seal := func(secret []byte, n int) []byte {
		s, _ := record.TLS13Session(suite, secret)
		sealer, _ := record.NewSealer(s)
		var out []byte
		for range n {
			out, _ = sealer.Seal(out, record.TypeHandshake, []byte("encrypted handshake message"))
		}
		return out
	}
	// ServerHello: version, random, empty session id, suite.
	hello := rec(record.TypeHandshake, append(append([]byte{typeServerHello, 0, 0, 38, 3, 3}, make([]byte, 32)...), 0, byte(suite>>8), byte(suite&0xff)))
	ccs := rec(record.TypeChangeCipherSpec, []byte{1})
	handshake, app := seal(hsSecret, 4), seal(randomBytes(32), 1)
	b.Write(slices.Concat(hello, ccs, handshake, app))
	time.Sleep(50 * time.Millisecond)
	c := NewConn(a, true)
	c.KeyLogWriter(nil).Write(keyLogLine("SERVER_HANDSHAKE_TRAFFIC_SECRET", randomBytes(32), hsSecret))
	// The first Read knows no suite yet: ServerHello and ChangeCipherSpec.
	// The second reads the four records under the handshake key.
	readFlight(t, c, a, [][]byte{slices.Concat(hello, ccs), handshake}, app)
}

// TestBatchTLS13PlaintextBehind checks that plaintext records queued right
// behind the records under the peer's handshake key (a peer without
// middlebox compatibility: no ChangeCipherSpec before them) are left on the
// socket for the record layer (issue 13, item 11a).
func TestBatchTLS13PlaintextBehind(t *testing.T) {
	const suite = tls.TLS_AES_128_GCM_SHA256
	hsSecret := randomBytes(32)
	s, _ := record.TLS13Session(suite, hsSecret)
	sealer, _ := record.NewSealer(s)
	finished, _ := sealer.Seal(nil, record.TypeHandshake, []byte("finished"))
	hello := rec(record.TypeHandshake, append(append([]byte{typeServerHello, 0, 0, 38, 3, 3}, make([]byte, 32)...), 0, byte(suite>>8), byte(suite&0xff)))
	ccs := rec(record.TypeChangeCipherSpec, []byte{1})
	hs := rec(record.TypeHandshake, []byte{24, 0, 0, 1, 0})
	for name, behind := range map[string][]byte{"ccs": ccs, "handshake": hs, "both": slices.Concat(ccs, hs), "reversed": slices.Concat(hs, ccs)} {
		t.Run(name, func(t *testing.T) {
			a, b := tcpPair(t)
			c := NewConn(a, true)
			c.KeyLogWriter(nil).Write(keyLogLine("SERVER_HANDSHAKE_TRAFFIC_SECRET", randomBytes(32), hsSecret))
			b.Write(hello)
			buf := make([]byte, 1<<16)
			if n, err := c.Read(buf); err != nil || !bytes.Equal(buf[:n], hello) {
				t.Fatalf("Read = %d bytes, %v; want the ServerHello", n, err)
			}
			b.Write(slices.Concat(finished, behind))
			time.Sleep(50 * time.Millisecond) // let it all arrive
			readFlight(t, c, a, [][]byte{finished}, behind)
		})
	}
}

// TestSessionsRefuseBufferedRecords checks that records read from the
// socket but not consumed by crypto/tls make Sessions fail (so that the
// connection stays on crypto/tls, which still reads them) instead of being
// dropped.
func TestSessionsRefuseBufferedRecords(t *testing.T) {
	in := slices.Concat(rec(record.TypeHandshake, []byte{20, 0, 0, 0}), rec(record.TypeChangeCipherSpec, []byte{1}))
	c := NewConn(&fakeConn{r: bytes.NewReader(in)}, true)
	c.KeyLogWriter(nil).Write(keyLogLine("CLIENT_TRAFFIC_SECRET_0", randomBytes(32), randomBytes(32)))
	c.KeyLogWriter(nil).Write(keyLogLine("SERVER_TRAFFIC_SECRET_0", randomBytes(32), randomBytes(32)))
	buf := make([]byte, 3)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	c.Detach()
	if _, _, err := c.Sessions(record.VersionTLS13, tls.TLS_AES_128_GCM_SHA256); err == nil {
		t.Fatal("Sessions succeeded with bytes of a record not consumed by crypto/tls")
	}
	c.Passthrough()
	got, _ := io.ReadAll(c)
	if !bytes.Equal(got, in[3:]) {
		t.Fatalf("after Passthrough crypto/tls reads %x, want %x", got, in[3:])
	}
}

// TestFirstFlight checks that a server that has sent nothing reads the
// client's first flight as it comes, records cut anywhere and larger than
// the batch buffer included, learns the ClientHello's random from it, and
// once it has written, reads no further than the handshake again.
func TestFirstFlight(t *testing.T) {
	a, b := tcpPair(t)
	random := randomBytes(32)
	body := slices.Concat([]byte{typeClientHello, 0, 0x17, 0x6c, 3, 3}, random, make([]byte, 6000-38))
	hello, ccs := rec(record.TypeHandshake, body), rec(record.TypeChangeCipherSpec, []byte{1})
	flight := slices.Concat(hello, ccs)
	c := NewConn(a, false)
	go func() {
		b.Write(flight[:3])
		time.Sleep(20 * time.Millisecond)
		b.Write(flight[3:100])
		time.Sleep(20 * time.Millisecond)
		b.Write(flight[100:])
	}()
	got := make([]byte, len(flight))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, flight) {
		t.Fatalf("first flight: %v, equal %v", err, bytes.Equal(got, flight))
	}
	if !bytes.Equal(c.in.random, random) {
		t.Errorf("client random %x, want %x", c.in.random, random)
	}
	c.Write(rec(record.TypeHandshake, []byte{typeServerHello, 0, 0, 0}))
	fin, data := rec(record.TypeHandshake, make([]byte, 40)), rec(record.TypeApplicationData, make([]byte, 30))
	b.Write(slices.Concat(fin, data))
	time.Sleep(50 * time.Millisecond) // let it all arrive
	readFlight(t, c, a, [][]byte{fin}, data)
}

// stepReader returns its steps in turn: bytes or an error.
type stepReader struct{ steps []any }

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.steps) == 0 {
		return 0, io.EOF
	}
	step := r.steps[0]
	r.steps = r.steps[1:]
	if err, ok := step.(error); ok {
		return 0, err
	}
	return copy(p, step.([]byte)), nil
}

// TestFirstFlightErrorSticks checks that an error in the middle of a
// record of the first flight is returned again, not resumed from a wrong
// place.
func TestFirstFlightErrorSticks(t *testing.T) {
	hello := rec(record.TypeHandshake, make([]byte, 100))
	errTimeout := errors.New("timeout")
	c := NewConn(&fakeConn{r: &stepReader{[]any{hello[:50], errTimeout, hello[50:]}}}, false)
	buf := make([]byte, 200)
	for i := range 2 {
		if _, err := c.Read(buf); err != errTimeout {
			t.Fatalf("Read %d = %v, want the timeout", i, err)
		}
	}
}

// TestNotTLSFailsFast checks that a first record header that is not TLS's
// (an HTTP request sent to a TLS port) reaches crypto/tls as its five
// bytes at once, so that the handshake fails at once instead of waiting for
// the body the bogus header announces.
func TestNotTLSFailsFast(t *testing.T) {
	for _, req := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x19\x03\x03\x01\x00", "PRI * HTTP/2.0\r\n"} {
		a, b := net.Pipe()
		go func() {
			b.Write([]byte(req))
			io.Copy(io.Discard, b) // keep the request's end open
		}()
		c := NewConn(a, false)
		srv := tls.Server(c, &tls.Config{Certificates: nil})
		// The deadline only stops a handshake that waits for more: its
		// error then says so (no timed assertion, the machine may be busy).
		srv.SetDeadline(time.Now().Add(time.Minute))
		if err := srv.Handshake(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%q: handshake = %v, want a failure without waiting for more input", req, err)
		}
		a.Close()
		b.Close()
	}
}
