package kernel

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestFreeBSDConstants checks the plain-Go FreeBSD constants and cmsg
// layout against x/sys/unix's, generated from FreeBSD's headers, where it
// has them (it lacks the ktls(4) ones).
func TestFreeBSDConstants(t *testing.T) {
	ptr := int(unsafe.Sizeof(uintptr(0)))
	if freebsdMsgEOR != unix.MSG_EOR || freebsdMsgCtrunc != unix.MSG_CTRUNC || freebsdIPProtoTCP != unix.IPPROTO_TCP ||
		freebsdCmsgHdrLen != unsafe.Sizeof(unix.Cmsghdr{}) ||
		freebsdCmsgLen(freebsdTLSGetRecordLen, ptr) != unix.CmsgLen(freebsdTLSGetRecordLen) ||
		freebsdCmsgAlign(freebsdCmsgHdrLen, ptr)+freebsdCmsgAlign(freebsdTLSGetRecordLen, ptr) != unix.CmsgSpace(freebsdTLSGetRecordLen) {
		t.Error("FreeBSD constants or cmsg layout differ from x/sys/unix")
	}
}
