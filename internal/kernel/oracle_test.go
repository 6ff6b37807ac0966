//go:build linux

package kernel_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ktls-go/ktls/record"
)

// This file is the tests' independent oracle: a minimal TLS 1.2/1.3 AEAD
// record protection written straight from RFC 5246/5288/7905/8446 with
// crypto/cipher, so that the kernel tests do not depend on package record
// being right.

// suite is one protocol version and AEAD under test.
type suite struct {
	name    string
	version uint16
	id      uint16 // IANA cipher suite
	keyLen  int
	ivLen   int // record.Session.IV: 4-byte salt for TLS 1.2 AES-GCM, else 12
	chacha  bool
	kcipher uint16 // the kernel's cipher type
}

var suites = []suite{
	{"TLS12-AES128GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 16, 4, false, 51},
	{"TLS12-AES256GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 32, 4, false, 52},
	{"TLS12-ChaCha20Poly1305", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 32, 12, true, 54},
	{"TLS13-AES128GCM", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, 16, 12, false, 51},
	{"TLS13-AES256GCM", tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384, 32, 12, false, 52},
	{"TLS13-ChaCha20Poly1305", tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256, 32, 12, true, 54},
}

// session returns a session of the suite with fresh random keys whose next
// record has sequence number seq.
func (s suite) session(seq uint64) *record.Session {
	key := make([]byte, s.keyLen)
	iv := make([]byte, s.ivLen)
	rand.Read(key)
	rand.Read(iv)
	return &record.Session{Version: s.version, CipherSuite: s.id, Key: key, IV: iv, Seq: seq}
}

// oracle seals and opens records of one direction.
type oracle struct {
	aead     cipher.AEAD
	version  uint16
	iv       []byte // 12-byte IV, or the 4-byte salt for TLS 1.2 AES-GCM
	explicit bool   // TLS 1.2 AES-GCM: an 8-byte explicit nonce precedes the ciphertext
	seq      uint64
}

func newOracle(t testing.TB, s suite, sess *record.Session) *oracle {
	t.Helper()
	var aead cipher.AEAD
	var err error
	if s.chacha {
		aead, err = chacha20poly1305.New(sess.Key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(sess.Key); err == nil {
			aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return &oracle{
		aead:     aead,
		version:  s.version,
		iv:       append([]byte(nil), sess.IV...),
		explicit: s.version == tls.VersionTLS12 && !s.chacha,
		seq:      sess.Seq,
	}
}

func (o *oracle) nonce(explicit []byte) []byte {
	if o.explicit {
		return append(append([]byte(nil), o.iv...), explicit...)
	}
	n := append([]byte(nil), o.iv...)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], o.seq)
	for i, b := range seq {
		n[4+i] ^= b
	}
	return n
}

func (o *oracle) aad12(typ byte, n int) []byte {
	a := binary.BigEndian.AppendUint64(nil, o.seq)
	a = append(a, typ, 3, 3)
	return binary.BigEndian.AppendUint16(a, uint16(n))
}

// seal returns one whole record of type typ carrying payload.
func (o *oracle) seal(typ byte, payload []byte) []byte {
	defer func() { o.seq++ }()
	if o.version == tls.VersionTLS13 {
		inner := append(append([]byte(nil), payload...), typ)
		hdr := []byte{23, 3, 3, 0, 0}
		binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+o.aead.Overhead()))
		return o.aead.Seal(hdr, o.nonce(nil), inner, hdr)
	}
	var explicit []byte
	if o.explicit {
		explicit = binary.BigEndian.AppendUint64(nil, o.seq)
	}
	body := o.aead.Seal(explicit, o.nonce(explicit), payload, o.aad12(typ, len(payload)))
	hdr := []byte{typ, 3, 3, 0, 0}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(body)))
	return append(hdr, body...)
}

// open authenticates and decrypts one whole record, returning its (inner)
// type and payload. For TLS 1.2 AES-GCM it also checks that the explicit
// nonce is the sequence number, as the kernel sends it when the crypto_info
// iv is the starting sequence number.
func (o *oracle) open(rec []byte) (byte, []byte, error) {
	if len(rec) < 5 || int(binary.BigEndian.Uint16(rec[3:])) != len(rec)-5 {
		return 0, nil, fmt.Errorf("malformed record header %x", rec[:min(5, len(rec))])
	}
	if rec[1] != 3 || rec[2] != 3 {
		return 0, nil, fmt.Errorf("record version %x, want 0303", rec[1:3])
	}
	hdr, body := rec[:5], rec[5:]
	if o.version == tls.VersionTLS13 {
		if hdr[0] != 23 {
			return 0, nil, fmt.Errorf("TLS 1.3 outer type %d, want 23", hdr[0])
		}
		pt, err := o.aead.Open(nil, o.nonce(nil), body, hdr)
		if err != nil {
			return 0, nil, fmt.Errorf("record %d: %w", o.seq, err)
		}
		o.seq++
		i := len(pt) - 1
		for i >= 0 && pt[i] == 0 {
			i--
		}
		if i < 0 {
			return 0, nil, errors.New("TLS 1.3 record without inner type")
		}
		return pt[i], pt[:i], nil
	}
	var explicit []byte
	if o.explicit {
		if len(body) < 8 {
			return 0, nil, errors.New("short TLS 1.2 record")
		}
		explicit, body = body[:8], body[8:]
		if got := binary.BigEndian.Uint64(explicit); got != o.seq {
			return 0, nil, fmt.Errorf("explicit nonce %d, want sequence number %d", got, o.seq)
		}
	}
	if len(body) < o.aead.Overhead() {
		return 0, nil, errors.New("short TLS 1.2 record")
	}
	pt, err := o.aead.Open(nil, o.nonce(explicit), body, o.aad12(hdr[0], len(body)-o.aead.Overhead()))
	if err != nil {
		return 0, nil, fmt.Errorf("record %d: %w", o.seq, err)
	}
	o.seq++
	return hdr[0], pt, nil
}

// readRecord reads one whole record from a plain TCP connection.
func readRecord(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("reading record header: %v", err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(c, rec[5:]); err != nil {
		t.Fatalf("reading record body: %v", err)
	}
	return rec
}

// openRecord reads and opens one record, failing the test on any error.
func openRecord(t testing.TB, c net.Conn, o *oracle) (byte, []byte) {
	t.Helper()
	typ, p, err := o.open(readRecord(t, c))
	if err != nil {
		t.Fatalf("wire record does not decrypt: %v", err)
	}
	if len(p) > record.MaxPlaintext {
		t.Fatalf("record of %d bytes, more than 2^14", len(p))
	}
	return typ, p
}

// readPlain reads n bytes of application data from the wire, opening records.
func readPlain(t testing.TB, c net.Conn, o *oracle, n int) []byte {
	t.Helper()
	var out []byte
	for len(out) < n {
		typ, p := openRecord(t, c, o)
		if typ != 23 {
			t.Fatalf("record type %d, want application data", typ)
		}
		out = append(out, p...)
	}
	return out
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		d.Close()
		t.Fatal(r.err)
	}
	a, b = d.(*net.TCPConn), r.c.(*net.TCPConn)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

func rawConn(t testing.TB, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// tempFile returns an open file holding data.
func tempFile(t testing.TB, data []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "sendfile")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}
