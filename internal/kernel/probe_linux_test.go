package kernel_test

import (
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestKernelProbeRepeated runs Supported's probe many times, concurrently:
// it must succeed every time (it once attached to a socket whose peer could
// already be gone, and failed with ENOTCONN now and then).
func TestKernelProbeRepeated(t *testing.T) {
	ktlstest.RequireKernel(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if err := kernel.Probe(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestKernelRekeyProbe checks that Rekey's answer matches the kernel: an
// error wrapping EBUSY where a second TLS_TX is refused.
func TestKernelRekeyProbe(t *testing.T) {
	ktlstest.RequireKernel(t)
	err := kernel.Rekey()
	t.Logf("Rekey() = %v", err)
	if err != nil && !errors.Is(err, syscall.EBUSY) {
		t.Errorf("Rekey() = %v, want nil or EBUSY", err)
	}
}
