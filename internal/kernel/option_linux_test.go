//go:build linux

package kernel_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// release returns the running kernel's major and minor version.
func release(t *testing.T) (major, minor int) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatal(err)
	}
	return major, minor
}

// TestKernelOptions sets TLS_TX_ZEROCOPY_RO and TLS_RX_EXPECT_NO_PAD on a
// socket with both directions in the kernel and reads them back: on, then
// off. TLS_RX_EXPECT_NO_PAD is TLS 1.3's: a TLS 1.2 socket refuses it with
// EINVAL. A kernel older than the option (5.19 and 6.0) must answer
// ENOPROTOOPT, which is what ktls falls back on; any other kernel must have
// it.
func TestKernelOptions(t *testing.T) {
	ktlstest.RequireKernel(t)
	major, minor := release(t)
	since := map[kernel.Option][2]int{kernel.ZerocopySendfile: {5, 19}, kernel.ExpectNoPad: {6, 0}}
	for _, s := range []int{0, 3} { // TLS 1.2 and 1.3, AES-128-GCM
		s := suites[s]
		t.Run(s.name, func(t *testing.T) {
			a, _ := tcpPair(t)
			rc := rawConn(t, a)
			sess := s.session(0)
			if err := kernel.Attach(rc); err != nil {
				t.Fatal(err)
			}
			for _, d := range []kernel.Direction{kernel.TX, kernel.RX} {
				if err := kernel.Enable(rc, d, sess); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range []kernel.Option{kernel.ZerocopySendfile, kernel.ExpectNoPad} {
				v := since[o]
				old := major < v[0] || major == v[0] && minor < v[1]
				err := kernel.SetOption(rc, o, true)
				switch {
				case old && errors.Is(err, syscall.ENOPROTOOPT):
					t.Logf("%v: not in Linux %d.%d (since %d.%d): %v", o, major, minor, v[0], v[1], err)
					continue
				case o == kernel.ExpectNoPad && s.version != 0x0304:
					if !errors.Is(err, syscall.EINVAL) {
						t.Errorf("%v on TLS 1.2: %v, want EINVAL", o, err)
					}
					continue
				case err != nil:
					t.Fatalf("%v: %v", o, err)
				}
				for _, want := range []bool{true, false} {
					if !want {
						if err := kernel.SetOption(rc, o, false); err != nil {
							t.Fatalf("%v off: %v", o, err)
						}
					}
					if got, err := kernel.GetOption(rc, o); err != nil || got != want {
						t.Errorf("%v read back %v, %v; want %v", o, got, err, want)
					}
				}
			}
		})
	}
}
