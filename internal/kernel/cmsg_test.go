//go:build linux || freebsd

package kernel

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestCmsgLayout checks the control messages SendRecord builds and
// RecvRecord parses against the C layout: struct cmsghdr (length, level,
// type) then the payload at CMSG_DATA.
func TestCmsgLayout(t *testing.T) {
	const solTLS, setRecordType = 282, 1
	b := cmsg(solTLS, setRecordType, []byte{21})
	hdr := int(unsafe.Sizeof(unix.Cmsghdr{}))
	if len(b) != unix.CmsgSpace(1) || len(b)%int(unsafe.Sizeof(uintptr(0))) != 0 {
		t.Fatalf("length %d, want CMSG_SPACE(1) = %d", len(b), unix.CmsgSpace(1))
	}
	var l int
	if unsafe.Sizeof(unix.Cmsghdr{}.Len) == 8 {
		l = int(binary.NativeEndian.Uint64(b))
	} else {
		l = int(binary.NativeEndian.Uint32(b))
	}
	off := int(unsafe.Offsetof(unix.Cmsghdr{}.Level))
	if l != unix.CmsgLen(1) || binary.NativeEndian.Uint32(b[off:]) != solTLS || binary.NativeEndian.Uint32(b[off+4:]) != setRecordType {
		t.Fatalf("cmsghdr %x", b[:hdr])
	}
	if b[unix.CmsgLen(0)] != 21 {
		t.Fatalf("payload at %d: %x", unix.CmsgLen(0), b)
	}

	// RecvRecord's side: find the record type among other messages, and
	// FreeBSD's struct tls_get_record.
	const ipprotoTCP, tlsGetRecordCmsg = 6, 2
	oob := append(cmsg(1, 99, []byte{1, 2, 3, 4}), cmsg(solTLS, 2, []byte{22})...)
	oob = append(oob, cmsg(ipprotoTCP, tlsGetRecordCmsg, []byte{21, 3, 4, 0, 0, 2})...)
	d, ok, err := findCmsg(oob, solTLS, 2)
	if err != nil || !ok || len(d) != 1 || d[0] != 22 {
		t.Fatalf("Linux TLS_GET_RECORD_TYPE: %x %v %v", d, ok, err)
	}
	d, ok, err = findCmsg(oob, ipprotoTCP, tlsGetRecordCmsg)
	if err != nil || !ok {
		t.Fatalf("FreeBSD TLS_GET_RECORD: %v %v", ok, err)
	}
	if r, err := parseTLSGetRecord(d); err != nil || r != (getRecord{Type: 21, Version: 0x0304, Length: 2}) {
		t.Fatalf("tls_get_record %+v %v", r, err)
	}
	if _, ok, err := findCmsg(oob, solTLS, 1); ok || err != nil {
		t.Fatalf("found a message that is not there: %v %v", ok, err)
	}
	bad := append([]byte(nil), oob...)
	bad[0] = 0xf0 // cmsg_len beyond the buffer
	if _, _, err := findCmsg(bad, solTLS, 2); err == nil {
		t.Error("bad cmsg_len: no error")
	}
}
