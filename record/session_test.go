package record

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func seqBytes(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func testSession(version, suite uint16) *Session {
	c, _ := CipherOf(suite)
	s := &Session{Version: version, CipherSuite: suite, Key: make([]byte, c.KeyLen()), IV: make([]byte, ivLen(version, c)), Seq: 0x0102030405060708}
	for i := range s.Key {
		s.Key[i] = 0xa0 + byte(i)
	}
	for i := range s.IV {
		s.IV[i] = 0x10 + byte(i)
	}
	return s
}

func TestLinuxCryptoInfo(t *testing.T) {
	hdr := func(version, cipherType uint16) []byte {
		b := binary.NativeEndian.AppendUint16(nil, version)
		return binary.NativeEndian.AppendUint16(b, cipherType)
	}
	for _, tc := range []struct {
		version, suite uint16
		size           int
		want           func(s *Session) []byte
	}{
		{VersionTLS13, tls.TLS_AES_128_GCM_SHA256, 40, func(s *Session) []byte {
			return bytes.Join([][]byte{hdr(0x0304, 51), s.IV[4:], s.Key, s.IV[:4], seqBytes(s.Seq)}, nil)
		}},
		{VersionTLS13, tls.TLS_AES_256_GCM_SHA384, 56, func(s *Session) []byte {
			return bytes.Join([][]byte{hdr(0x0304, 52), s.IV[4:], s.Key, s.IV[:4], seqBytes(s.Seq)}, nil)
		}},
		{VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256, 56, func(s *Session) []byte {
			return bytes.Join([][]byte{hdr(0x0304, 54), s.IV, s.Key, seqBytes(s.Seq)}, nil)
		}},
		{VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 40, func(s *Session) []byte {
			return bytes.Join([][]byte{hdr(0x0303, 51), seqBytes(s.Seq), s.Key, s.IV, seqBytes(s.Seq)}, nil)
		}},
		{VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 56, func(s *Session) []byte {
			return bytes.Join([][]byte{hdr(0x0303, 52), seqBytes(s.Seq), s.Key, s.IV, seqBytes(s.Seq)}, nil)
		}},
		{VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 56, func(s *Session) []byte {
			return bytes.Join([][]byte{hdr(0x0303, 54), s.IV, s.Key, seqBytes(s.Seq)}, nil)
		}},
	} {
		s := testSession(tc.version, tc.suite)
		got, err := s.LinuxCryptoInfo()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.size || !bytes.Equal(got, tc.want(s)) {
			t.Errorf("%v: crypto_info\n%x (%d bytes)\nwant\n%x (%d bytes)", s, got, len(got), tc.want(s), tc.size)
		}
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		// Spot-check the literal little-endian bytes.
		got, _ := testSession(VersionTLS13, tls.TLS_AES_128_GCM_SHA256).LinuxCryptoInfo()
		if !bytes.HasPrefix(got, []byte{0x04, 0x03, 51, 0}) {
			t.Errorf("little-endian header %x", got[:4])
		}
	}
}

func TestSessionValidate(t *testing.T) {
	good := testSession(VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(s *Session){
		"version":     func(s *Session) { s.Version = 0x0302 },
		"suite":       func(s *Session) { s.CipherSuite = tls.TLS_RSA_WITH_AES_128_CBC_SHA },
		"mixed":       func(s *Session) { s.CipherSuite = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 },
		"key length":  func(s *Session) { s.Key = s.Key[:15] },
		"iv length":   func(s *Session) { s.IV = s.IV[:4] },
		"nil session": func(s *Session) { s.Key, s.IV = nil, nil },
	} {
		s := *good
		mutate(&s)
		err := s.Validate()
		var se *SessionError
		if !errors.Is(err, syscall.EINVAL) || !errors.As(err, &se) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := NewSealer(&s); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: NewSealer: %v", name, err)
		}
		if _, err := s.LinuxCryptoInfo(); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: LinuxCryptoInfo: %v", name, err)
		}
	}
}

func TestSessionStringAndWipe(t *testing.T) {
	s := testSession(VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
	str := s.String()
	if want := "TLS 1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 seq=72623859790382856"; str != want {
		t.Errorf("String() = %q, want %q", str, want)
	}
	if strings.Contains(strings.ToLower(str), "a0a1") || strings.Contains(str, "\xa0") {
		t.Errorf("String() leaks key: %q", str)
	}
	s.Wipe()
	if !bytes.Equal(s.Key, make([]byte, 32)) || !bytes.Equal(s.IV, make([]byte, 12)) {
		t.Errorf("Wipe left key material")
	}
	if c, ok := CipherOf(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256); ok || c != 0 {
		t.Errorf("CipherOf(CBC) = %v, %v", c, ok)
	}
	for _, id := range tls.CipherSuites() {
		_, ok := CipherOf(id.ID)
		if want := !strings.Contains(id.Name, "CBC"); ok != want {
			t.Errorf("CipherOf(%s) = %v", id.Name, ok)
		}
	}
}
