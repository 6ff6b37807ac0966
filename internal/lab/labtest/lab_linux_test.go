package labtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func requireLab(t *testing.T) {
	t.Helper()
	if os.Getenv("KTLS_LAB") != "1" {
		t.Skip("not in the kernel lab (KTLS_LAB unset): run go run ./internal/cmd/ktlslab test ./internal/lab/labtest")
	}
}

func TestKernelLabEnvironment(t *testing.T) {
	requireLab(t)
	if os.Getpid() == 1 {
		t.Error("test runs as PID 1")
	}
	b, err := os.ReadFile("testdata/hello.txt")
	if err != nil || string(b) != "ktlslab testdata\n" {
		t.Errorf("testdata/hello.txt = %q, %v", b, err)
	}
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	t.Logf("kernel %s", bytes.TrimSpace(release))
	for _, d := range []string{"/proc/self", "/sys/class", "/dev/null", os.TempDir()} {
		if _, err := os.Stat(d); err != nil {
			t.Error(err)
		}
	}
}

// loopbackPair returns both ends of a TCP connection over 127.0.0.1.
func loopbackPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestKernelLabLoopback(t *testing.T) {
	requireLab(t)
	c, s := loopbackPair(t)
	msg := []byte("hello over loopback")
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := net.ResolveTCPAddr("tcp", "localhost:1"); err != nil {
		t.Errorf("resolve localhost: %v", err)
	}
}

func control(t *testing.T, c *net.TCPConn, fn func(fd int) error) error {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	return ferr
}

func TestKernelLabModules(t *testing.T) {
	requireLab(t)
	ulps, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
	if !strings.Contains(string(ulps), "tls") {
		t.Errorf("tcp_available_ulp = %q, want tls", ulps)
	}
	for _, m := range []string{"tls", "tcp_diag", "inet_diag"} {
		if _, err := os.Stat("/sys/module/" + m); err != nil {
			t.Errorf("module %s not loaded: %v", m, err)
		}
	}
}

const (
	solTLS = 282
	tlsTX  = 1
	tlsRX  = 2
)

// kernelBefore reports whether the running kernel's version is below
// major.minor.
func kernelBefore(t *testing.T, major, minor int) bool {
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(release), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return ma < major || ma == major && mi < minor
}

// TestKernelLabCiphers attaches the TLS ULP and installs TX and RX keys for
// each cipher, which needs the crypto modules the lab loads. Linux has
// ChaCha20-Poly1305 in its TLS from 5.11: before, the kernel must refuse it
// with EINVAL (the lab's 5.10).
func TestKernelLabCiphers(t *testing.T) {
	requireLab(t)
	for _, tc := range []struct {
		name          string
		cipher        uint16
		iv, key, salt int
		since         [2]int // first kernel version with the cipher
	}{
		{"AES-128-GCM", 51, 8, 16, 4, [2]int{4, 13}},
		{"AES-256-GCM", 52, 8, 32, 4, [2]int{5, 1}},
		{"AES-128-CCM", 53, 8, 16, 4, [2]int{5, 2}},
		{"ChaCha20-Poly1305", 54, 12, 32, 0, [2]int{5, 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := loopbackPair(t)
			err := control(t, c, func(fd int) error {
				if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP, "tls"); err != nil {
					return err
				}
				info := []byte{0x04, 0x03, byte(tc.cipher), byte(tc.cipher >> 8)} // TLS 1.3, little-endian
				info = append(info, make([]byte, tc.iv+tc.key+tc.salt+8)...)
				for i := 4; i < len(info); i++ {
					info[i] = byte(i)
				}
				for _, dir := range []int{tlsTX, tlsRX} {
					if err := unix.SetsockoptString(fd, solTLS, dir, string(info)); err != nil {
						return err
					}
				}
				ulp, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP)
				if err == nil && ulp != "tls" {
					t.Errorf("TCP_ULP = %q", ulp)
				}
				return err
			})
			if kernelBefore(t, tc.since[0], tc.since[1]) {
				if err != syscall.EINVAL {
					t.Fatalf("kernel before %d.%d: %v, want EINVAL", tc.since[0], tc.since[1], err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v (errno %d)", err, err.(syscall.Errno))
			}
		})
	}
}
