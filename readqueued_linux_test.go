package ktls

import (
	"crypto/tls"
	"os"
	"syscall"
	"testing"

	"github.com/ktls-go/ktls/internal/ktlstest"
	"golang.org/x/sys/unix"
)

// TestKernelReadQueued checks that a Read whose record is already in the
// socket reads it with one recvmsg, without first waiting for input (a
// peek, before): that made two system calls of every record on a busy
// connection, such as an HTTP/2 server's, whose frame reader reads a few
// bytes at a time. (A Read that finds nothing waits holding no record
// buffer: TestKernelScratchReleased.)
func TestKernelReadQueued(t *testing.T) {
	ktlstest.RequireKernel(t)
	engine := engineFor(OffloadKernel, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine, KernelWithoutRekey: true}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	if _, rx := pr.k.Mode(); rx != ModeKernel {
		t.Fatalf("RX mode %v, want kernel", rx)
	}
	const records = 8
	errc := make(chan error, 1)
	go func() {
		for i := range records {
			if _, err := pr.p.Write([]byte{'a' + byte(i)}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var got []byte
	buf := make([]byte, 9) // an HTTP/2 frame header
	for len(got) < records {
		if len(pr.k.in.pending) == 0 {
			// The next record is in the socket before Read
			// starts.
			if err := awaitInput(pr.k.rc); err != nil {
				t.Fatal(err)
			}
		}
		waits := pr.k.in.waits
		n, err := pr.k.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		if pr.k.in.waits != waits {
			t.Fatalf("after %q: Read of a record already there waited for input", got)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if string(got) != "abcdefgh" {
		t.Fatalf("read %q", got)
	}
}

// awaitInput waits until a record (or the end of the stream, or an error)
// can be read from a kernel RX socket, honouring the read deadline. It
// peeks at one byte with recvmsg, as the read itself would go (poll(2) is
// not enough: Linux reports no input for records that it parsed before a
// KeyUpdate re-keyed the socket); the record stays for the read that
// follows. An error the peek meets is returned as the read would return it.
func awaitInput(rc syscall.RawConn) error {
	var perr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		var oob [64]byte
		for {
			_, _, _, _, err := unix.Recvmsg(int(fd), b[:], oob[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch err {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			case nil:
			default:
				// The error a read would have got (a bad record),
				// which the peek may have taken off the socket.
				perr = os.NewSyscallError("recvmsg", err)
			}
			return true
		}
	})
	if perr != nil {
		return perr
	}
	return err
}
