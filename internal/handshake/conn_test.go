package handshake

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"testing"

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
	for _, tickets := range []int{0, 1, 3} {
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
			flight = append(flight, seal(ss, tickets)...)
			c.Write(flight[:7])
			c.Write(flight[7:])
			c.Detach()
			tx, rx, err := c.Sessions(record.VersionTLS13, suite)
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
// hello randoms on the wire, with the records after ChangeCipherSpec
// counted.
func TestTLS12(t *testing.T) {
	const suite = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	cr, sr, master := randomBytes(32), randomBytes(32), randomBytes(48)
	hello := func(typ byte, random []byte) []byte {
		body := append([]byte{typ, 0, 0, 70, 3, 3}, random...)
		return rec(record.TypeHandshake, append(body, make([]byte, 36)...))
	}
	in := append(hello(typeServerHello, sr), rec(record.TypeChangeCipherSpec, []byte{1})...)
	in = append(in, rec(record.TypeHandshake, make([]byte, 40))...) // Finished
	c := NewConn(&fakeConn{r: bytes.NewReader(in)}, true)
	c.KeyLogWriter(nil).Write(keyLogLine("CLIENT_RANDOM", cr, master))
	c.Write(hello(typeClientHello, cr))
	c.Write(append(rec(record.TypeChangeCipherSpec, []byte{1}), rec(record.TypeHandshake, make([]byte, 40))...))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	c.Detach()
	tx, rx, err := c.Sessions(record.VersionTLS12, suite)
	if err != nil {
		t.Fatal(err)
	}
	wantTX, wantRX, _ := record.TLS12Sessions(suite, master, cr, sr)
	if !bytes.Equal(tx.Key, wantTX.Key) || !bytes.Equal(rx.Key, wantRX.Key) || tx.Seq != 1 || rx.Seq != 1 {
		t.Errorf("sessions: tx %v, rx %v (keys match: %v, %v)", tx, rx, bytes.Equal(tx.Key, wantTX.Key), bytes.Equal(rx.Key, wantRX.Key))
	}
	if c.log.master != nil {
		t.Error("Sessions left the master secret behind")
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
