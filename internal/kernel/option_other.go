//go:build !linux

package kernel

import (
	"fmt"
	"runtime"
	"syscall"
)

// SetOption fails: the options are Linux's (on FreeBSD, ktls(4) has none of
// them), with an error wrapping ENOPROTOOPT as an older Linux kernel's.
func SetOption(c syscall.RawConn, o Option, on bool) error {
	return fmt.Errorf("kernel: no %v on %s: %w", o, runtime.GOOS, syscall.ENOPROTOOPT)
}

// GetOption fails as SetOption does.
func GetOption(c syscall.RawConn, o Option) (bool, error) {
	return false, SetOption(c, o, false)
}
