package record

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"strings"
	"syscall"
	"testing"
)

// unhex decodes hex with optional white space, as the RFCs print it.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8448 section 3 (Simple 1-RTT Handshake), TLS_AES_128_GCM_SHA256.
const (
	rfc8448ServerHSSecret  = "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38"
	rfc8448ServerHSKey     = "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"
	rfc8448ServerHSIV      = "5d 31 3e b2 67 12 76 ee 13 00 0b 30"
	rfc8448ClientAppSecret = "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
	rfc8448ClientAppKey    = "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"
	rfc8448ClientAppIV     = "5b 78 92 3d ee 08 57 90 33 e5 23 d9"
	rfc8448ServerAppSecret = "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43"
	rfc8448ServerAppKey    = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"
	rfc8448ServerAppIV     = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"

	// {client} send application_data record: seq 0 under the client
	// application key; payload 00 01 .. 31 (50 octets).
	rfc8448ClientAppRecord = `17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea
		42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b
		62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4`
	// {server} send application_data record: seq 1 (the NewSessionTicket
	// was seq 0), same payload.
	rfc8448ServerAppRecord = `17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc
		32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8
		fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d`
	// {client} send alert record (close_notify), seq 1.
	rfc8448ClientAlertRecord = "17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3"
	// {server} send alert record (close_notify), seq 2.
	rfc8448ServerAlertRecord = "17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9"
)

func rfc8448Payload() []byte {
	p := make([]byte, 50)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

func TestTLS13SessionRFC8448(t *testing.T) {
	for _, tc := range []struct{ name, secret, key, iv string }{
		{"server handshake", rfc8448ServerHSSecret, rfc8448ServerHSKey, rfc8448ServerHSIV},
		{"client application", rfc8448ClientAppSecret, rfc8448ClientAppKey, rfc8448ClientAppIV},
		{"server application", rfc8448ServerAppSecret, rfc8448ServerAppKey, rfc8448ServerAppIV},
	} {
		s, err := TLS13Session(tls.TLS_AES_128_GCM_SHA256, unhex(t, tc.secret))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s.Key, unhex(t, tc.key)) || !bytes.Equal(s.IV, unhex(t, tc.iv)) {
			t.Errorf("%s: key %x iv %x, want %s / %s", tc.name, s.Key, s.IV, tc.key, tc.iv)
		}
		if s.Version != VersionTLS13 || s.Seq != 0 || s.Cipher() != CipherAES128GCM {
			t.Errorf("%s: session %v", tc.name, s)
		}
	}
}

// TestOpenRFC8448 decrypts the protected records of RFC 8448's trace and
// reproduces the client's application data record byte for byte.
func TestOpenRFC8448(t *testing.T) {
	client, _ := TLS13Session(tls.TLS_AES_128_GCM_SHA256, unhex(t, rfc8448ClientAppSecret))
	server, _ := TLS13Session(tls.TLS_AES_128_GCM_SHA256, unhex(t, rfc8448ServerAppSecret))
	server.Seq = 1 // record 0 was the NewSessionTicket

	for _, tc := range []struct {
		name   string
		s      *Session
		recs   []string
		types  []ContentType
		wantPT [][]byte
	}{
		{"client", client, []string{rfc8448ClientAppRecord, rfc8448ClientAlertRecord},
			[]ContentType{TypeApplicationData, TypeAlert}, [][]byte{rfc8448Payload(), {1, 0}}},
		{"server", server, []string{rfc8448ServerAppRecord, rfc8448ServerAlertRecord},
			[]ContentType{TypeApplicationData, TypeAlert}, [][]byte{rfc8448Payload(), {1, 0}}},
	} {
		o, err := NewOpener(tc.s)
		if err != nil {
			t.Fatal(err)
		}
		for i, rec := range tc.recs {
			typ, pt, err := o.Open(unhex(t, rec))
			if err != nil {
				t.Fatalf("%s record %d: %v", tc.name, i, err)
			}
			if typ != tc.types[i] || !bytes.Equal(pt, tc.wantPT[i]) {
				t.Errorf("%s record %d: %v %x, want %v %x", tc.name, i, typ, pt, tc.types[i], tc.wantPT[i])
			}
		}
		if o.Seq() != tc.s.Seq+2 {
			t.Errorf("%s: seq %d after two records", tc.name, o.Seq())
		}
	}

	sl, _ := NewSealer(client)
	rec, err := sl.Seal(nil, TypeApplicationData, rfc8448Payload())
	if err != nil {
		t.Fatal(err)
	}
	rec, _ = sl.Seal(rec, TypeAlert, []byte{1, 0})
	want := append(unhex(t, rfc8448ClientAppRecord), unhex(t, rfc8448ClientAlertRecord)...)
	if !bytes.Equal(rec, want) {
		t.Errorf("sealed\n%x\nwant\n%x", rec, want)
	}
}

// TestTLS13NextSecret checks the "traffic upd" derivation against the
// TLS_AES_256_GCM_SHA384 vector s2n-tls took from OpenSSL's KeyUpdate.
func TestTLS13NextSecret(t *testing.T) {
	secret := unhex(t, "4bc28934ddd802b00f479e14a72d7725dab45d32b3b145f29e4c5b56677560eb5236b168c71c5c75aa52f3e20ee89bfb")
	want := unhex(t, "ee85dd54781bd4d8a100589a9fe6ac9a3797b811e977f549cd531be2441d7c63e2b9729d145c11d84af35957727565a4")
	got, err := TLS13NextSecret(tls.TLS_AES_256_GCM_SHA384, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("next secret %x, want %x", got, want)
	}
	if _, err := TLS13NextSecret(tls.TLS_AES_128_GCM_SHA256, secret); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("48-byte secret for a SHA-256 suite: %v", err)
	}
}

// TestPRF12 checks the TLS 1.2 PRF against the SHA-256 and SHA-384 vectors
// posted to the IETF TLS list (msg03416) and used by BearSSL, mbedTLS and
// others.
func TestPRF12(t *testing.T) {
	for _, tc := range []struct {
		name               string
		sha384             bool
		secret, seed, want string
	}{
		{"SHA-256", false, "9bbe436ba940f017b17652849a71db35", "a0ba9f936cda311827a6f796ffd5198c",
			"e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af" +
				"0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701" +
				"87347b66"},
		{"SHA-384", true, "b80b733d6ceefcdc71566ea48e5567df", "cd665cf6a8447dd6ff8b27555edb7465",
			"7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0" +
				"e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425" +
				"9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee691c8f3a26854308d5eaa3be85e099070" +
				"3d73e56f"},
	} {
		want := unhex(t, tc.want)
		got := make([]byte, len(want))
		h := sha256.New
		if tc.sha384 {
			h = sha512.New384
		}
		prf12(h, got, unhex(t, tc.secret), "test label", unhex(t, tc.seed))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: PRF\n%x\nwant\n%x", tc.name, got, want)
		}
	}
}

func TestTLS12SessionsLayout(t *testing.T) {
	master := bytes.Repeat([]byte{0x0b}, 48)
	cr, sr := bytes.Repeat([]byte{0x11}, 32), bytes.Repeat([]byte{0x22}, 32)
	for _, tc := range []struct {
		suite         uint16
		sha384        bool
		keyLen, ivLen int
	}{
		{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, false, 16, 4},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, true, 32, 4},
		{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, false, 32, 12},
	} {
		c, s, err := TLS12Sessions(tc.suite, master, cr, sr)
		if err != nil {
			t.Fatal(err)
		}
		// key_block = client key, server key, client IV, server IV.
		h := sha256.New
		if tc.sha384 {
			h = sha512.New384
		}
		kb := make([]byte, 2*tc.keyLen+2*tc.ivLen)
		prf12(h, kb, master, "key expansion", sr, cr)
		want := bytes.Join([][]byte{c.Key, s.Key, c.IV, s.IV}, nil)
		if !bytes.Equal(kb, want) {
			t.Errorf("%s: key block split wrongly", tls.CipherSuiteName(tc.suite))
		}
		for _, sess := range []*Session{c, s} {
			if err := sess.Validate(); err != nil || sess.Seq != 0 {
				t.Errorf("%v: %v", sess, err)
			}
		}
	}
	if _, _, err := TLS12Sessions(tls.TLS_AES_128_GCM_SHA256, master, cr, sr); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("TLS 1.3 suite accepted for TLS 1.2: %v", err)
	}
	if _, _, err := TLS12Sessions(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, master, cr, sr); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("CBC suite accepted: %v", err)
	}
	if _, _, err := TLS12Sessions(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, master[:47], cr, sr); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("short master secret accepted: %v", err)
	}
	if _, err := TLS13Session(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, make([]byte, 32)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("TLS 1.2 suite accepted for TLS 1.3: %v", err)
	}
}
