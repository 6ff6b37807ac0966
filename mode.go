package ktls

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/ktls-go/ktls/internal/kernel"
)

// SetTXMode switches the sending direction, when the kernel carries it,
// between software (ModeKernel) and device (ModeKernelDevice) offload, as
// FreeBSD's ktls(4) allows by setting TCP_TXTLS_MODE (TCP_TLS_MODE_SW or
// TCP_TLS_MODE_IFNET). It runs the handshake first if needed. Another mode
// gives an error wrapping EINVAL; a sending direction not in the kernel, or
// a kernel without the switch (Linux chooses device offload itself), an
// error wrapping errors.ErrUnsupported; the kernel's refusal (for example
// no device able to take the session) an error wrapping its errno. Mode
// reports the mode in effect.
func (c *Conn) SetTXMode(m Mode) error {
	var conf kernel.Conf
	switch m {
	case ModeKernel:
		conf = kernel.ConfSW
	case ModeKernelDevice:
		conf = kernel.ConfHW
	default:
		return fmt.Errorf("ktls: SetTXMode(%v): only ModeKernel or ModeKernelDevice: %w", m, syscall.EINVAL)
	}
	if err := c.Handshake(); err != nil {
		return err
	}
	if !c.txMode.IsKernel() || c.rc == nil {
		return fmt.Errorf("ktls: SetTXMode: the sending direction is %v, not in the kernel: %w", c.txMode, errors.ErrUnsupported)
	}
	c.lockOut()
	defer c.unlockOut()
	if err := kernel.SetTXMode(c.rc, conf); err != nil {
		return fmt.Errorf("ktls: SetTXMode(%v): %w", m, err)
	}
	return nil
}
