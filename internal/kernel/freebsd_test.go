package kernel

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ktls-go/ktls/record"
)

// freebsdCmsg builds one FreeBSD control message as the kernel does
// (sbcreatecontrol: cmsg_len = CMSG_LEN(len(data)), data at CMSG_DATA,
// padded to CMSG_SPACE) for an architecture with ptrSize-byte pointers.
func freebsdCmsg(ptrSize int, level, typ int, data []byte) []byte {
	hdr := freebsdCmsgAlign(freebsdCmsgHdrLen, ptrSize)
	b := make([]byte, hdr+freebsdCmsgAlign(len(data), ptrSize))
	ne := binary.NativeEndian
	ne.PutUint32(b, uint32(hdr+len(data)))
	ne.PutUint32(b[4:], uint32(level))
	ne.PutUint32(b[8:], uint32(typ))
	copy(b[hdr:], data)
	return b
}

// TestFreeBSDCmsgLayout checks CMSG_LEN and CMSG_SPACE of struct
// tls_get_record against the values of FreeBSD's sys/sys/socket.h: on
// amd64 (_ALIGNBYTES 7) the data starts at 16, CMSG_LEN(6) is 22 and
// CMSG_SPACE(6) 24; on i386 and armv7 (_ALIGNBYTES 3) at 12, 18 and 20.
func TestFreeBSDCmsgLayout(t *testing.T) {
	for _, tc := range []struct{ ptr, data, cmsgLen, space int }{{8, 16, 22, 24}, {4, 12, 18, 20}} {
		b := freebsdCmsg(tc.ptr, freebsdIPProtoTCP, freebsdTLSGetRecord, make([]byte, freebsdTLSGetRecordLen))
		if freebsdCmsgAlign(freebsdCmsgHdrLen, tc.ptr) != tc.data || freebsdCmsgLen(freebsdTLSGetRecordLen, tc.ptr) != tc.cmsgLen || len(b) != tc.space {
			t.Errorf("pointer size %d: data at %d, CMSG_LEN %d, CMSG_SPACE %d; want %d, %d, %d", tc.ptr,
				freebsdCmsgAlign(freebsdCmsgHdrLen, tc.ptr), freebsdCmsgLen(freebsdTLSGetRecordLen, tc.ptr), len(b), tc.data, tc.cmsgLen, tc.space)
		}
	}
}

// TestFreeBSDRecord feeds freebsdRecord what one recvmsg on a ktls(4)
// receive socket can return, on a 64-bit and a 32-bit layout (issue 13 item
// 12: a record must never be taken without its TLS_GET_RECORD).
func TestFreeBSDRecord(t *testing.T) {
	for _, ptr := range []int{8, 4} {
		get := func(typ byte, vminor byte, length uint16) []byte {
			return freebsdCmsg(ptr, freebsdIPProtoTCP, freebsdTLSGetRecord, []byte{typ, 3, vminor, 0, byte(length >> 8), byte(length)})
		}
		bad := func(f func(b []byte)) []byte { b := get(23, 3, 5); f(b); return b }
		for _, tc := range []struct {
			name  string
			n     int
			oob   []byte
			flags int
			typ   uint8
			eof   bool
			errno error
		}{
			{"data", 5, get(23, 3, 5), freebsdMsgEOR, 23, false, nil},
			{"tls13 alert", 2, get(21, 4, 2), freebsdMsgEOR, 21, false, nil},
			{"full record", 16384, get(23, 3, 16384), freebsdMsgEOR, 23, false, nil},
			{"zero-length record", 0, get(23, 3, 0), 0, 23, false, nil},
			{"zero-length handshake", 0, get(22, 4, 0), 0, 22, false, nil},
			{"end of stream", 0, nil, 0, 0, true, nil},
			{"payload without control message", 5, nil, freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"payload without EOR", 100, get(23, 3, 200), 0, 0, false, syscall.EMSGSIZE},
			{"control truncated", 5, get(23, 3, 5), freebsdMsgEOR | freebsdMsgCtrunc, 0, false, syscall.EMSGSIZE},
			{"length disagrees", 4, get(23, 3, 5), freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"type 0", 5, get(0, 3, 5), freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"other level", 5, bad(func(b []byte) { binary.NativeEndian.PutUint32(b[4:], 0xffff) }), freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"other type", 5, bad(func(b []byte) { binary.NativeEndian.PutUint32(b[8:], freebsdTLSSetRecordType) }), freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"short cmsg_len", 5, bad(func(b []byte) { binary.NativeEndian.PutUint32(b, uint32(freebsdCmsgLen(5, ptr))) }), freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"long cmsg_len", 5, bad(func(b []byte) { binary.NativeEndian.PutUint32(b, 1000) }), freebsdMsgEOR, 0, false, syscall.EBADMSG},
			{"short control buffer", 5, get(23, 3, 5)[:freebsdCmsgLen(freebsdTLSGetRecordLen, ptr)-1], freebsdMsgEOR, 0, false, syscall.EBADMSG},
		} {
			typ, eof, err := freebsdRecord(tc.n, tc.oob, tc.flags, ptr)
			if tc.errno != nil {
				if !errors.Is(err, tc.errno) {
					t.Errorf("ptr %d, %s: %d %v %v, want %v", ptr, tc.name, typ, eof, err, tc.errno)
				}
				continue
			}
			if err != nil || typ != tc.typ || eof != tc.eof {
				t.Errorf("ptr %d, %s: %d %v %v, want %d %v", ptr, tc.name, typ, eof, err, tc.typ, tc.eof)
			}
		}
	}
}

// TestTLSEnableLayout checks tlsEnable against the field offsets and size of
// FreeBSD's struct tls_enable (sys/sys/ktls.h) as a C compiler lays it out:
// LP64 (amd64, arm64) and ILP32 (i386, armv7). Run with GOARCH=386 too.
func TestTLSEnableLayout(t *testing.T) {
	var e tlsEnable
	got := []uintptr{
		unsafe.Offsetof(e.cipherKey), unsafe.Offsetof(e.iv), unsafe.Offsetof(e.authKey),
		unsafe.Offsetof(e.cipherAlgorithm), unsafe.Offsetof(e.cipherKeyLen), unsafe.Offsetof(e.ivLen),
		unsafe.Offsetof(e.authAlgorithm), unsafe.Offsetof(e.authKeyLen), unsafe.Offsetof(e.flags),
		unsafe.Offsetof(e.tlsVMajor), unsafe.Offsetof(e.tlsVMinor), unsafe.Offsetof(e.recSeq),
		unsafe.Sizeof(e),
	}
	//    cipher_key iv auth_key cipher_algorithm cipher_key_len iv_len auth_algorithm auth_key_len flags vmajor vminor rec_seq sizeof
	want := map[uintptr][]uintptr{
		8: {0, 8, 16, 24, 28, 32, 36, 40, 44, 48, 49, 50, 64},
		4: {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 37, 38, 48},
	}[unsafe.Sizeof(uintptr(0))]
	if !slices.Equal(got, want) {
		t.Errorf("struct tls_enable offsets and size %v, want %v", got, want)
	}
}

func TestNewTLSEnable(t *testing.T) {
	for _, tc := range []struct {
		version, suite uint16
		alg            int32
		minor          uint8
		keyLen, ivLen  int32
	}{
		{record.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 25, 3, 16, 4},
		{record.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 25, 3, 32, 4},
		{record.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 41, 3, 32, 12},
		{record.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, 25, 4, 16, 12},
		{record.VersionTLS13, tls.TLS_AES_256_GCM_SHA384, 25, 4, 32, 12},
		{record.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256, 41, 4, 32, 12},
	} {
		s := &record.Session{Version: tc.version, CipherSuite: tc.suite, Key: make([]byte, tc.keyLen), IV: make([]byte, tc.ivLen), Seq: 0x0102030405060708}
		e, err := newTLSEnable(s)
		if err != nil {
			t.Fatal(err)
		}
		want := tlsEnable{
			cipherKey: &s.Key[0], iv: &s.IV[0], cipherAlgorithm: tc.alg, cipherKeyLen: tc.keyLen, ivLen: tc.ivLen,
			tlsVMajor: 3, tlsVMinor: tc.minor, recSeq: [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
		}
		if e != want {
			t.Errorf("%v: %+v, want %+v", s, e, want)
		}
		s.IV = s.IV[1:]
		if _, err := newTLSEnable(s); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%v with a bad IV: %v", s, err)
		}
	}
}

// TestFreeBSDProbe checks that the probe tries each direction of each
// version and AEAD until one is taken, and that its error names the
// settings to change (issue 13 item 14).
func TestFreeBSDProbe(t *testing.T) {
	var tried []string
	seen := map[uint16]bool{}
	err := freebsdProbe(func(d Direction, s *record.Session) error {
		if err := s.Validate(); err != nil {
			t.Errorf("probe session %v: %v", s, err)
		}
		seen[s.CipherSuite] = true
		tried = append(tried, d.String()+" "+s.String())
		if d == RX && s.CipherSuite == tls.TLS_CHACHA20_POLY1305_SHA256 {
			return nil
		}
		if d == TX {
			return freebsdEnableError(d, syscall.ENXIO)
		}
		return freebsdEnableError(d, syscall.EOPNOTSUPP)
	})
	if err != nil || len(tried) != 12 || len(seen) != 6 {
		t.Fatalf("probe = %v after %d attempts (%v) over %d suites; want nil after all 12", err, len(tried), tried, len(seen))
	}
	err = freebsdProbe(func(d Direction, s *record.Session) error {
		if d == TX {
			return freebsdEnableError(d, os.NewSyscallError("setsockopt TCP_TXTLS_ENABLE", syscall.ENXIO))
		}
		return freebsdEnableError(d, os.NewSyscallError("setsockopt TCP_RXTLS_ENABLE", syscall.ENOTSUP))
	})
	if !errors.Is(err, syscall.ENXIO) || !errors.Is(err, syscall.ENOTSUP) {
		t.Fatalf("probe error %v does not wrap the errnos", err)
	}
	for _, name := range []string{"kern.ipc.mb_use_ext_pgs", "kern.ipc.tls.enable", "ktls_ocf", "TLS_CHACHA20_POLY1305_SHA256"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("probe error does not name %s: %v", name, err)
		}
	}
	if err := freebsdEnableError(TX, syscall.EALREADY); !errors.Is(err, syscall.EALREADY) || !strings.Contains(err.Error(), "re-key") {
		t.Errorf("EALREADY: %v", err)
	}
	if err := freebsdEnableError(TX, syscall.EINVAL); err != syscall.EINVAL {
		t.Errorf("EINVAL changed: %v", err)
	}
}
