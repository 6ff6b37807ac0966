package kernel

// Option is an optional optimization of the kernel's record layer on one
// socket (Linux's "optional optimizations" of Documentation/networking/
// tls.rst): it changes how the kernel does its work, never what goes on the
// wire. Options are set after the direction's keys (Enable) and kept across
// a re-key.
type Option int

const (
	// ZerocopySendfile is Linux's TLS_TX_ZEROCOPY_RO (5.19): sendfile(2)
	// data goes to the NIC without the kernel's copy. It matters only with
	// NIC offload (device TLS): software kernel TLS encrypts from the page
	// cache into its own buffer anyway, and accepts and ignores it. The file
	// must not change while it is being sent: TCP may retransmit a record
	// whose pages changed since the NIC encrypted them, and the peer sees a
	// record with a bad MAC and drops the connection.
	ZerocopySendfile Option = iota + 1
	// ExpectNoPad is Linux's TLS_RX_EXPECT_NO_PAD (6.0), for TLS 1.3
	// receiving only: the kernel decrypts a record straight into the
	// reader's buffer, betting that the peer did not pad it; a padded
	// record (or one of another type) is decrypted a second time into a
	// kernel buffer (counted in TlsDecryptRetry). A peer that pads every
	// record doubles the cost of decryption, so it is for trusted peers.
	ExpectNoPad
)

// String returns the Linux name of the option.
func (o Option) String() string {
	switch o {
	case ZerocopySendfile:
		return "TLS_TX_ZEROCOPY_RO"
	case ExpectNoPad:
		return "TLS_RX_EXPECT_NO_PAD"
	}
	return "Option(?)"
}

// Direction returns the direction the option belongs to.
func (o Option) Direction() Direction {
	if o == ExpectNoPad {
		return RX
	}
	return TX
}
