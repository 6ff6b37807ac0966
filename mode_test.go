package ktls

import (
	"errors"
	"runtime"
	"syscall"
	"testing"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

func TestSetTXModeArgs(t *testing.T) {
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadUser, RX: OffloadUser}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	for _, m := range []Mode{ModeNone, ModeUser, ModeKernelTOE, Mode(42)} {
		if err := pr.k.SetTXMode(m); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("SetTXMode(%v) = %v, want EINVAL", m, err)
		}
	}
	for _, m := range []Mode{ModeKernel, ModeKernelDevice} {
		if err := pr.k.SetTXMode(m); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SetTXMode(%v) with TX in user space = %v, want ErrUnsupported", m, err)
		}
	}
	echo(t, pr)
}

func TestKernelSetTXMode(t *testing.T) {
	ktlstest.RequireKernel(t)
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadKernel, RX: OffloadKernel, KernelWithoutRekey: true}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	err := pr.k.SetTXMode(ModeKernel)
	if runtime.GOOS == "linux" && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetTXMode(ModeKernel) on Linux = %v, want ErrUnsupported", err)
	}
	t.Logf("SetTXMode(ModeKernel) = %v", err)
	echo(t, pr)
}
