package ktls

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestKernelPeerClosedBeforeHandOff hands off a connection whose peer has
// already sent its data, close_notify and FIN: Linux attaches TLS only to
// an ESTABLISHED socket and answers ENOTCONN in CLOSE_WAIT. With
// OffloadAuto the connection goes on in user space and nothing is lost;
// with OffloadKernel the handshake fails with an error wrapping ENOTCONN.
func TestKernelPeerClosedBeforeHandOff(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, policy := range []Offload{OffloadAuto, OffloadKernel} {
		t.Run(policy.String(), func(t *testing.T) {
			closed := make(chan struct{})
			cfg := serverTLS()
			var pr *pair
			// A TLS 1.3 server calls VerifyConnection before it reads the
			// client's Finished, which the client has sent by then: wait
			// there until the client has closed and its FIN has arrived.
			cfg.VerifyConnection = func(tls.ConnectionState) error {
				<-closed
				return waitState(pr.kside.(syscall.Conn), tcpCloseWait)
			}
			pr = newPair(t, true, &Config{TLS: cfg, TX: policy, RX: policy, KernelWithoutRekey: true}, clientTLS())
			pr.fc.release()
			perr := make(chan error, 1)
			go func() {
				err := pr.p.Handshake()
				if err == nil {
					_, err = pr.p.Write([]byte("hello"))
				}
				if err == nil {
					err = pr.p.CloseWrite() // close_notify
				}
				if err == nil {
					err = pr.fc.Conn.(*net.TCPConn).CloseWrite() // FIN
				}
				close(closed)
				perr <- err
			}()
			herr := pr.k.Handshake()
			if err := <-perr; err != nil {
				t.Fatalf("peer: %v", err)
			}
			if policy == OffloadKernel {
				if !errors.Is(herr, syscall.ENOTCONN) {
					t.Fatalf("handshake = %v, want an error wrapping ENOTCONN", herr)
				}
				t.Log(herr)
				return
			}
			if herr != nil {
				t.Fatalf("handshake: %v", herr)
			}
			if tx, rx := pr.k.Mode(); tx != ModeUser || rx != ModeUser {
				t.Errorf("Mode() = %v, %v; want user, user", tx, rx)
			}
			got, err := io.ReadAll(pr.k)
			if err != nil || string(got) != "hello" {
				t.Errorf("read %q, %v; want \"hello\", nil", got, err)
			}
		})
	}
}

// tcpCloseWait is TCP_CLOSE_WAIT of the kernel's TCP states.
const tcpCloseWait = 8

// waitState waits up to 10 s for the TCP state of c to be state.
func waitState(c syscall.Conn, state uint8) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var got uint8
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			var info *unix.TCPInfo
			if info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); gerr == nil {
				got = info.State
			}
		}); err != nil {
			return err
		}
		if gerr != nil {
			return gerr
		}
		if got == state {
			return nil
		}
	}
	return errors.New("TCP state not reached")
}
