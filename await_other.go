//go:build !linux && !freebsd

package ktls

import "syscall"

// awaitInput does nothing where the kernel carries no receiving
// direction.
func awaitInput(syscall.RawConn) error { return nil }
