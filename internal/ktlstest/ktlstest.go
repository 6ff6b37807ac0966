// Package ktlstest holds helpers for tests that need kernel TLS.
//
// Tests that need the kernel are named TestKernel*. On a host whose kernel
// has no TLS they skip, pointing at the kernel lab; where a skip would hide a
// missing feature (CI, the lab's guest) they fail instead.
package ktlstest

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/kernel"
)

// RequireKernel lets the test run when kernel TLS works here
// (kernel.Supported() == nil). Otherwise it skips the test, saying how to run
// it in the kernel lab, or fails it when the environment demands the kernel:
// CI=true, KTLS_REQUIRE_KERNEL=1 or KTLS_LAB=1 (set by the lab's guest init).
func RequireKernel(t testing.TB) {
	t.Helper()
	err := kernel.Supported()
	if err == nil {
		return
	}
	if required() {
		t.Fatalf("kernel TLS required here but unavailable: %v", err)
	}
	t.Skipf("no kernel TLS on this host (%v); run the kernel tests in the lab: go run ./internal/cmd/ktlslab test ./...", err)
}

func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("KTLS_REQUIRE_KERNEL") == "1" || os.Getenv("KTLS_LAB") == "1"
}

// WaitClosed waits until nothing accepts TCP connections on addr any more
// (a server's listener closed while it shuts down), and fails t if that
// has not happened within a minute: a guard against a hang, not a measure
// (a busy machine may take its time to get there).
func WaitClosed(t testing.TB, addr string) {
	t.Helper()
	for guard := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(guard) {
			t.Fatalf("%s still accepts connections", addr)
		}
	}
}
