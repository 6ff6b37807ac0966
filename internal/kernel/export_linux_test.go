package kernel

import "golang.org/x/sys/unix"

// Raw sendmsg for the tests in package kernel_test, to observe the kernel's
// own behaviour where SendRecord refuses.
var RawSendmsg = sendmsg

// RecordTypeCmsg is the TLS_SET_RECORD_TYPE control message for typ.
func RecordTypeCmsg(typ byte) []byte { return cmsg(unix.SOL_TLS, tlsSetRecordType, []byte{typ}) }
