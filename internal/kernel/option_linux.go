package kernel

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux's optional optimizations (include/uapi/linux/tls.h); x/sys/unix
// does not have them.
const (
	tlsTXZerocopyRO  = 3 // TLS_TX_ZEROCOPY_RO
	tlsRXExpectNoPad = 4 // TLS_RX_EXPECT_NO_PAD
)

func (o Option) linux() (int, error) {
	switch o {
	case ZerocopySendfile:
		return tlsTXZerocopyRO, nil
	case ExpectNoPad:
		return tlsRXExpectNoPad, nil
	}
	return 0, fmt.Errorf("kernel: unknown option %d: %w", int(o), syscall.EINVAL)
}

// SetOption turns option o on or off (setsockopt SOL_TLS, a 32-bit 0 or 1)
// on a socket whose direction o.Direction() is in the kernel. A kernel
// without the option (Linux before 5.19 for ZerocopySendfile, 6.0 for
// ExpectNoPad) answers ENOPROTOOPT; ExpectNoPad on a TLS 1.2 direction
// answers EINVAL.
func SetOption(c syscall.RawConn, o Option, on bool) error {
	opt, err := o.linux()
	if err != nil {
		return err
	}
	var v uint32
	if on {
		v = 1
	}
	return control(c, func(fd int) error {
		if err := setsockopt(fd, unix.SOL_TLS, opt, unsafe.Pointer(&v), unsafe.Sizeof(v)); err != nil {
			return os.NewSyscallError("setsockopt "+o.String(), err)
		}
		return nil
	})
}

// GetOption reads option o back (getsockopt SOL_TLS).
func GetOption(c syscall.RawConn, o Option) (bool, error) {
	opt, err := o.linux()
	if err != nil {
		return false, err
	}
	var v uint32
	err = control(c, func(fd int) error {
		n := uint32(unsafe.Sizeof(v))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_TLS, uintptr(opt), uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			return os.NewSyscallError("getsockopt "+o.String(), e)
		}
		return nil
	})
	return v != 0, err
}
