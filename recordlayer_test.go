package ktls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// Record-layer probes of issue 13 (items 11d, 11e and 11g): records a
// hostile peer builds by hand, played with their exact bytes against both
// engines. Where Linux's TLS layer answers differently from crypto/tls and
// RFC 8446, the kernel tests pin what the kernel does (README.md, "What runs
// where"), so that a kernel that changes is noticed.

// suites12 is one TLS 1.2 client offer per AEAD (RSA and ECDSA variants, so
// that whatever the test certificate, that AEAD is chosen).
var suites12 = []struct {
	name   string
	suites []uint16
	gcm    bool // AES-GCM: an 8-byte explicit nonce precedes the ciphertext
}{
	{"AES-128-GCM", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
	{"AES-256-GCM", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, true},
	{"ChaCha20-Poly1305", []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, false},
}

func TestShortRecords(t *testing.T) { testShortRecords(t, OffloadUser) }

func TestKernelShortRecords(t *testing.T) {
	ktlstest.RequireKernel(t)
	testShortRecords(t, OffloadKernel)
}

// testShortRecords sends, after a good record, an application_data record
// whose body (n zero bytes) is shorter than the AEAD's minimum: the TLS 1.2
// explicit nonce (AES-GCM) plus the 16-byte tag. crypto/tls answers each with
// bad_record_mac for every suite and both versions; so must ktls, on both
// engines (items 11d and 11e).
//
// Linux's tls_rx_msg_size (net/tls/tls_sw.c) first waits for a whole
// prepend (the header plus, for TLS 1.2 AES-GCM, the 8-byte explicit
// nonce), then answers a length below the cipher overhead with EBADMSG. A
// TLS 1.2 AES-GCM record of fewer than 13 bytes in all is therefore held
// until more bytes arrive: the kernel test pins that wait (a Read times
// out), then sends 8 more bytes and gets the error.
func testShortRecords(t *testing.T, engine Offload) {
	type tcase struct {
		name    string
		peer    func(t *testing.T) (*Conn, *rawPeer)
		minBody int
		prepend int // bytes the kernel waits for before it reads the header
	}
	var cases []tcase
	for _, s := range suites12 {
		c := tcase{name: "TLS12-" + s.name, minBody: 16, prepend: 5}
		if s.gcm {
			c.minBody, c.prepend = 24, 13
		}
		c.peer = func(t *testing.T) (*Conn, *rawPeer) { return newRawPeer12(t, engine, true, s.suites...) }
		cases = append(cases, c)
	}
	cases = append(cases, tcase{name: "TLS13", minBody: 16, prepend: 5,
		peer: func(t *testing.T) (*Conn, *rawPeer) { return newRawPeer(t, engine, true) }})
	for _, c := range cases {
		for _, n := range []int{0, 1, 7, 8, 15, 16, 23} {
			if n >= c.minBody {
				continue
			}
			t.Run(c.name+"-"+itoa(n), func(t *testing.T) {
				k, rp := c.peer(t)
				rp.send(record.TypeApplicationData, []byte("good"))
				buf := make([]byte, 100)
				if m, err := k.Read(buf); err != nil || string(buf[:m]) != "good" {
					t.Fatalf("first Read = %q, %v", buf[:m], err)
				}
				short := append([]byte{23, 3, 3, 0, byte(n)}, make([]byte, n)...)
				if _, err := rp.conn.Write(short); err != nil {
					t.Fatal(err)
				}
				if engine == OffloadKernel && len(short) < c.prepend {
					// Pinned kernel behaviour: the record is held.
					k.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					if m, err := k.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("kernel answered a %d-byte record at once (%d bytes, %v): update README.md (What runs where) and this test", len(short), m, err)
					}
					k.SetReadDeadline(time.Now().Add(20 * time.Second))
					if _, err := rp.conn.Write(make([]byte, 8)); err != nil {
						t.Fatal(err)
					}
				}
				_, err := k.Read(buf)
				if !errors.Is(err, syscall.EBADMSG) {
					t.Fatalf("Read = %v, want EBADMSG", err)
				}
				rp.wantAlert(record.AlertBadRecordMAC)
			})
		}
	}
	// The peer closes after a record the kernel holds: tls_rx_rec_wait
	// returns 0 at RCV_SHUTDOWN, so the kernel engine reports the end of the
	// stream (ErrTruncated, no alert, as crypto/tls does for a stream cut
	// inside a record), where the user-space engine, which sees the header,
	// answers bad_record_mac.
	t.Run("TLS12-AES-128-GCM-1-then-FIN", func(t *testing.T) {
		k, rp := newRawPeer12(t, engine, true, suites12[0].suites...)
		if _, err := rp.conn.Write([]byte{23, 3, 3, 0, 1, 0}); err != nil {
			t.Fatal(err)
		}
		if err := rp.conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_, err := k.Read(make([]byte, 100))
		if engine == OffloadKernel {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Read = %v, want ErrTruncated: update README.md (What runs where) and this test", err)
			}
			return
		}
		if !errors.Is(err, syscall.EBADMSG) {
			t.Fatalf("Read = %v, want EBADMSG", err)
		}
		rp.wantAlert(record.AlertBadRecordMAC)
	})
}

// seal13 protects inner (a TLS 1.3 inner plaintext: payload, content type,
// padding) under s at sequence number seq as a record whose header carries
// outer as its type, and whose additional data was built with adType: a
// peer's hand-made record.
func seal13(t *testing.T, s *record.Session, seq uint64, outer, adType byte, inner []byte) []byte {
	t.Helper()
	var aead cipher.AEAD
	var err error
	if s.Cipher() == record.CipherChaCha20Poly1305 {
		aead, err = chacha20poly1305.New(s.Key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(s.Key); err == nil {
			aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Clone(s.IV)
	for i := range 8 {
		nonce[4+i] ^= byte(seq >> (56 - 8*i))
	}
	n := len(inner) + aead.Overhead()
	ad := []byte{adType, 3, 3, byte(n >> 8), byte(n)}
	return aead.Seal([]byte{outer, 3, 3, byte(n >> 8), byte(n)}, nonce, inner, ad)
}

func TestContentTypes13(t *testing.T) { testContentTypes13(t, OffloadUser) }

func TestKernelContentTypes13(t *testing.T) {
	ktlstest.RequireKernel(t)
	testContentTypes13(t, OffloadKernel)
}

// testContentTypes13 sends TLS 1.3 records whose outer content type is not
// application_data, and records without an inner content type (item 11g).
// RFC 8446 section 5.1 and 5.4 ask for unexpected_message in every case; the
// user-space engine refuses the outer type before decrypting
// (record.ParseHeader) and an empty or all-zero inner plaintext after.
//
// The kernel engine cannot, and the test pins what Linux does
// (net/tls/tls_sw.c, net/tls/tls.h):
//   - tls_rx_msg_size reads the outer type (strp->mark) but never checks
//     it, and tls_make_aad builds TLS 1.3 additional data with type 23
//     whatever the header says: a record with another outer type whose
//     additional data says 23 is accepted as the inner type says;
//   - a record whose additional data carries the edited type fails
//     authentication: EBADMSG, bad_record_mac;
//   - tls_padding_length returns EBADMSG when the inner plaintext has no
//     non-zero byte: bad_record_mac, indistinguishable from a forgery.
//
// The outer header never reaches user space under TLS_RX, so ktls cannot
// check it without keeping RX in user space.
func testContentTypes13(t *testing.T, engine Offload) {
	type want struct {
		data  string        // accepted: Read returns this
		errno syscall.Errno // else Read's error wraps this (0: any error)
		alert record.Alert  // and the peer gets this alert
	}
	type tcase struct {
		name         string
		outer, ad    byte
		inner        []byte
		user, kernel want
	}
	refused := want{errno: syscall.EINVAL, alert: record.AlertUnexpectedMessage}
	forged := want{errno: syscall.EBADMSG, alert: record.AlertBadRecordMAC}
	noType := want{errno: syscall.EBADMSG, alert: record.AlertUnexpectedMessage}
	data := append([]byte("data"), byte(record.TypeApplicationData))
	var cases []tcase
	for _, typ := range []byte{0, 20, 21, 22, 24, 25, 255} {
		cases = append(cases,
			tcase{"outer-" + itoa(int(typ)) + "-ad-23", typ, 23, data, refused, want{data: "data"}},
			tcase{"outer-" + itoa(int(typ)) + "-ad-" + itoa(int(typ)), typ, typ, data, refused, forged})
	}
	cases = append(cases,
		tcase{"inner-all-zero", 23, 23, make([]byte, 10), noType, forged},
		tcase{"inner-empty", 23, 23, nil, noType, forged})
	// An inner type TLS 1.3 does not carry: the kernel passes it up in
	// TLS_GET_RECORD_TYPE and the Conn refuses it, as the record layer does.
	for _, typ := range []byte{20, 24, 99} {
		cases = append(cases, tcase{"inner-type-" + itoa(int(typ)), 23, 23, []byte{'x', typ}, noType,
			want{alert: record.AlertUnexpectedMessage}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := c.user
			if engine == OffloadKernel {
				w = c.kernel
			}
			k, rp := newRawPeer(t, engine, true)
			rp.send(record.TypeApplicationData, []byte("good"))
			buf := make([]byte, 100)
			if m, err := k.Read(buf); err != nil || string(buf[:m]) != "good" {
				t.Fatalf("first Read = %q, %v", buf[:m], err)
			}
			if _, err := rp.conn.Write(seal13(t, rp.session(rp.txSecret), 1, c.outer, c.ad, c.inner)); err != nil {
				t.Fatal(err)
			}
			m, err := k.Read(buf)
			if w.data != "" {
				if err != nil || string(buf[:m]) != w.data {
					t.Fatalf("Read = %q, %v; want %q accepted", buf[:m], err, w.data)
				}
				return
			}
			if err == nil || w.errno != 0 && !errors.Is(err, w.errno) {
				t.Fatalf("Read = %q, %v; want %v", buf[:m], err, w.errno)
			}
			rp.wantAlert(w.alert)
		})
	}
}

// TestOneErrTruncated checks that there is one truncation sentinel: the
// user-space record layer's error for a stream cut inside a record and the
// Conn's error for one cut between records both match it, and it still
// matches io.ErrUnexpectedEOF and syscall.EMSGSIZE.
func TestOneErrTruncated(t *testing.T) {
	if ErrTruncated != record.ErrTruncated {
		t.Fatal("ktls.ErrTruncated and record.ErrTruncated are two errors")
	}
	sl, err := record.NewSealer(&record.Session{Version: record.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, Key: make([]byte, 16), IV: make([]byte, 12)})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := sl.Seal(nil, record.TypeApplicationData, []byte("cut"))
	o, _ := record.NewOpener(&record.Session{Version: record.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, Key: make([]byte, 16), IV: make([]byte, 12)})
	_, _, err = record.NewReader(bytes.NewReader(rec[:len(rec)-1]), o).ReadRecord()
	for _, target := range []error{ErrTruncated, io.ErrUnexpectedEOF, syscall.EMSGSIZE} {
		if !errors.Is(err, target) || !errors.Is(ErrTruncated, target) {
			t.Errorf("%v / %v: not %v", err, ErrTruncated, target)
		}
	}
}
