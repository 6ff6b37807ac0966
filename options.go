package ktls

import (
	"crypto/tls"

	"github.com/ktls-go/ktls/internal/kernel"
)

// setKernelOptions turns on, for direction d just put in the kernel, the
// kernel options the Config asks for: ZerocopySendfile (TX) and ExpectNoPad
// (RX, TLS 1.3 only). A refusal leaves the connection without the option and
// is counted (Statistics.KernelOptionsRefused).
func (c *Conn) setKernelOptions(d kernel.Direction, version uint16) {
	if c.config == nil {
		return
	}
	var o kernel.Option
	switch {
	case d == kernel.TX && c.config.ZerocopySendfile:
		o = kernel.ZerocopySendfile
	case d == kernel.RX && c.config.ExpectNoPad && version == tls.VersionTLS13:
		o = kernel.ExpectNoPad
	default:
		return
	}
	if kernel.SetOption(c.rc, o, true) != nil {
		counters.kernelOptionsRefused.Add(1)
	}
}
