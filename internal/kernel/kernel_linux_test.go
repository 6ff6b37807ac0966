//go:build linux

package kernel_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
	"github.com/ktls-go/ktls/record"
)

// kernelTX returns a loopback pair whose first end sends through kernel TLS
// with a fresh session of suite s starting at sequence number seq, and the
// oracle that opens what arrives at the second, plain end.
func kernelTX(t *testing.T, s suite, seq uint64) (k, peer *net.TCPConn, rc syscall.RawConn, o *oracle) {
	t.Helper()
	a, b := tcpPair(t)
	rc = rawConn(t, a)
	if err := kernel.Attach(rc); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	sess := s.session(seq)
	if err := kernel.Enable(rc, kernel.TX, sess); err != nil {
		t.Fatalf("Enable TX %s: %v", s.name, err)
	}
	return a, b, rc, newOracle(t, s, sess)
}

// TestKernelTX: data written through kernel TX is, on the wire, records that
// Go's crypto/cipher opens to the same plaintext, with the installed
// sequence numbers.
func TestKernelTX(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			a, b := tcpPair(t)
			rc := rawConn(t, a)
			if err := kernel.Attach(rc); err != nil {
				t.Fatalf("Attach: %v", err)
			}
			sess := s.session(1000)
			if err := kernel.Enable(rc, kernel.TX, sess); err != nil {
				t.Fatalf("Enable TX: %v", err)
			}
			o := newOracle(t, s, sess)

			// One write(2) makes one record.
			msg := []byte("hello from kernel TLS")
			if _, err := a.Write(msg); err != nil {
				t.Fatal(err)
			}
			if got := readPlain(t, b, o, len(msg)); !bytes.Equal(got, msg) {
				t.Fatalf("got %q, want %q", got, msg)
			}
			// More than one record's worth through SendRecord: the kernel
			// splits it into records of at most 2^14 bytes.
			big := randomBytes(3*record.MaxPlaintext + 100)
			done := make(chan error, 1)
			go func() {
				_, err := kernel.SendRecord(rc, record.TypeApplicationData, big)
				done <- err
			}()
			if got := readPlain(t, b, o, len(big)); !bytes.Equal(got, big) {
				t.Fatal("large write: plaintext differs")
			}
			if err := <-done; err != nil {
				t.Fatalf("SendRecord: %v", err)
			}
			if o.seq < 1000+5 {
				t.Errorf("only %d records for %d bytes", o.seq-1000, len(msg)+len(big))
			}
		})
	}
}

// TestKernelRX: records sealed in Go are read as plaintext from the kernel,
// including records that were already queued on the socket before TLS_RX was
// set.
func TestKernelRX(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			a, b := tcpPair(t)
			rc := rawConn(t, a)
			if err := kernel.Attach(rc); err != nil {
				t.Fatalf("Attach: %v", err)
			}
			sess := s.session(77)
			o := newOracle(t, s, sess)

			// Queued before TLS_RX: two records.
			early1, early2 := []byte("queued before TLS_RX, "), randomBytes(5000)
			var wire []byte
			wire = append(wire, o.seal(23, early1)...)
			wire = append(wire, o.seal(23, early2)...)
			if _, err := b.Write(wire); err != nil {
				t.Fatal(err)
			}
			waitQueued(t, rc, len(wire))
			if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
				t.Fatalf("Enable RX: %v", err)
			}
			// After TLS_RX: a full-size record.
			late := randomBytes(record.MaxPlaintext)
			if _, err := b.Write(o.seal(23, late)); err != nil {
				t.Fatal(err)
			}
			want := append(append(append([]byte(nil), early1...), early2...), late...)
			got := make([]byte, len(want))
			a.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(a, got); err != nil {
				t.Fatalf("read through kernel RX: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("plaintext from kernel RX differs")
			}
			// RecvRecord reports application data as such.
			if _, err := b.Write(o.seal(23, []byte("via recvmsg"))); err != nil {
				t.Fatal(err)
			}
			typ, p := recv(t, rc, 100)
			if typ != record.TypeApplicationData || string(p) != "via recvmsg" {
				t.Fatalf("RecvRecord: %v %q", typ, p)
			}
			// A close from the peer is EOF: n == 0, typ == 0.
			b.CloseWrite()
			typ, p = recv(t, rc, 100)
			if typ != 0 || len(p) != 0 {
				t.Fatalf("after peer close: %v %q, want EOF", typ, p)
			}
		})
	}
}

// waitQueued waits until the socket's receive queue holds n bytes.
func waitQueued(t *testing.T, rc syscall.RawConn, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var q int
		var err error
		rc.Control(func(fd uintptr) { q, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if err != nil {
			t.Fatalf("SIOCINQ: %v", err)
		}
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d bytes queued", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv is RecvRecord with a read deadline, failing the test on error.
func recv(t *testing.T, rc syscall.RawConn, size int) (record.ContentType, []byte) {
	t.Helper()
	typ, p, err := recvErr(rc, size)
	if err != nil {
		t.Fatalf("RecvRecord: %v", err)
	}
	return typ, p
}

func recvErr(rc syscall.RawConn, size int) (record.ContentType, []byte, error) {
	p := make([]byte, size)
	type res struct {
		typ record.ContentType
		n   int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		typ, n, err := kernel.RecvRecord(rc, p)
		ch <- res{typ, n, err}
	}()
	select {
	case r := <-ch:
		return r.typ, p[:r.n], r.err
	case <-time.After(20 * time.Second):
		return 0, nil, errors.New("RecvRecord: no record after 20s")
	}
}

// TestKernelControlRecords: records of other content types go out with
// TLS_SET_RECORD_TYPE and come in with TLS_GET_RECORD_TYPE, on the wire and
// between two kernel sockets; a plain read(2) of a control record fails with
// EIO; one receive never mixes record types; a zero-length control record is
// a zero-length read with its type, not EOF.
func TestKernelControlRecords(t *testing.T) {
	ktlstest.RequireKernel(t)
	alert := []byte{1, 0} // warning, close_notify
	handshake := []byte{4, 0, 0, 3, 'a', 'b', 'c'}
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			t.Run("TX", func(t *testing.T) {
				_, b, rc, o := kernelTX(t, s, 0)
				if _, err := kernel.SendRecord(rc, record.TypeHandshake, handshake); err != nil {
					t.Fatalf("SendRecord handshake: %v", err)
				}
				if _, err := kernel.SendRecord(rc, record.TypeAlert, alert); err != nil {
					t.Fatalf("SendRecord alert: %v", err)
				}
				for _, want := range []struct {
					typ byte
					p   []byte
				}{{22, handshake}, {21, alert}} {
					typ, p := openRecord(t, b, o)
					if typ != want.typ || !bytes.Equal(p, want.p) {
						t.Fatalf("wire record: type %d %x, want type %d %x", typ, p, want.typ, want.p)
					}
				}
			})
			t.Run("RX", func(t *testing.T) {
				a, b := tcpPair(t)
				rc := rawConn(t, a)
				sess := s.session(5)
				o := newOracle(t, s, sess)
				if err := kernel.Attach(rc); err != nil {
					t.Fatal(err)
				}
				if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
					t.Fatal(err)
				}
				var wire []byte
				wire = append(wire, o.seal(23, []byte("data1"))...)
				wire = append(wire, o.seal(21, alert)...)
				wire = append(wire, o.seal(23, []byte("data2"))...)
				wire = append(wire, o.seal(22, nil)...) // zero-length control record
				wire = append(wire, o.seal(22, handshake)...)
				if _, err := b.Write(wire); err != nil {
					t.Fatal(err)
				}
				if typ, p := recv(t, rc, 100); typ != 23 || string(p) != "data1" {
					t.Fatalf("first: %v %q", typ, p)
				}
				// read(2) has no room for the record type: EIO, and the
				// record stays.
				a.SetReadDeadline(time.Now().Add(20 * time.Second))
				if n, err := a.Read(make([]byte, 100)); !errors.Is(err, syscall.EIO) {
					t.Fatalf("read(2) of an alert: n=%d err=%v, want EIO", n, err)
				}
				if typ, p := recv(t, rc, 100); typ != record.TypeAlert || !bytes.Equal(p, alert) {
					t.Fatalf("alert: %v %x", typ, p)
				}
				if typ, p := recv(t, rc, 100); typ != 23 || string(p) != "data2" {
					t.Fatalf("data after alert: %v %q", typ, p)
				}
				if typ, p := recv(t, rc, 100); typ != record.TypeHandshake || len(p) != 0 {
					t.Fatalf("zero-length handshake record: %v %x, want handshake and 0 bytes", typ, p)
				}
				if typ, p := recv(t, rc, 100); typ != record.TypeHandshake || !bytes.Equal(p, handshake) {
					t.Fatalf("handshake: %v %x", typ, p)
				}
				// A control record larger than the buffer comes in parts,
				// each with its type.
				long := randomBytes(250)
				if _, err := b.Write(o.seal(22, long)); err != nil {
					t.Fatal(err)
				}
				var got []byte
				for len(got) < len(long) {
					typ, p := recv(t, rc, 100)
					if typ != record.TypeHandshake || len(p) == 0 {
						t.Fatalf("part of a long handshake record: %v, %d bytes", typ, len(p))
					}
					got = append(got, p...)
				}
				if !bytes.Equal(got, long) {
					t.Fatal("long handshake record read in parts differs")
				}
			})
			t.Run("KernelToKernel", func(t *testing.T) {
				a, b := tcpPair(t)
				ra, rb := rawConn(t, a), rawConn(t, b)
				sess := s.session(1 << 40)
				for _, rc := range []syscall.RawConn{ra, rb} {
					if err := kernel.Attach(rc); err != nil {
						t.Fatal(err)
					}
				}
				if err := kernel.Enable(ra, kernel.TX, sess); err != nil {
					t.Fatal(err)
				}
				if err := kernel.Enable(rb, kernel.RX, sess); err != nil {
					t.Fatal(err)
				}
				if _, err := kernel.SendRecord(ra, record.TypeAlert, alert); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Write([]byte("after the alert")); err != nil {
					t.Fatal(err)
				}
				if typ, p := recv(t, rb, 100); typ != record.TypeAlert || !bytes.Equal(p, alert) {
					t.Fatalf("alert: %v %x", typ, p)
				}
				if typ, p := recv(t, rb, 100); typ != 23 || string(p) != "after the alert" {
					t.Fatalf("data: %v %q", typ, p)
				}
			})
		})
	}
}

// TestKernelZeroLengthSend: Linux makes no record from a sendmsg without
// data, even with a TLS_SET_RECORD_TYPE control message, so SendRecord
// refuses an empty payload with EINVAL instead of pretending to send one. If
// a kernel starts sending empty records, this test says so.
func TestKernelZeroLengthSend(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			_, b, rc, o := kernelTX(t, s, 0)
			if _, err := kernel.SendRecord(rc, record.TypeHandshake, nil); !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("SendRecord of 0 bytes: %v, want EINVAL", err)
			}
			// The kernel's own behaviour, by a raw sendmsg.
			var err error
			rc.Write(func(fd uintptr) bool {
				_, err = kernel.RawSendmsg(int(fd), nil, kernel.RecordTypeCmsg(22), 0)
				return err != unix.EAGAIN
			})
			t.Logf("raw sendmsg of 0 bytes with a handshake record type: %v", err)
			if _, err := kernel.SendRecord(rc, record.TypeApplicationData, []byte("x")); err != nil {
				t.Fatal(err)
			}
			typ, p := openRecord(t, b, o)
			if typ == 22 && len(p) == 0 {
				t.Fatal("this kernel sends zero-length records: SendRecord could allow an empty payload")
			}
			if typ != 23 || string(p) != "x" {
				t.Fatalf("got type %d %q, want the data record", typ, p)
			}
		})
	}
}

// TestKernelBadRecord: a record whose tag has one bit flipped fails the read
// with EBADMSG, after the good records before it were delivered.
func TestKernelBadRecord(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			a, b := tcpPair(t)
			rc := rawConn(t, a)
			sess := s.session(3)
			o := newOracle(t, s, sess)
			if err := kernel.Attach(rc); err != nil {
				t.Fatal(err)
			}
			if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
				t.Fatal(err)
			}
			good := o.seal(23, []byte("good"))
			bad := o.seal(23, []byte("bad"))
			bad[len(bad)-1] ^= 0x01 // last byte of the tag
			if _, err := b.Write(append(good, bad...)); err != nil {
				t.Fatal(err)
			}
			if typ, p := recv(t, rc, 100); typ != 23 || string(p) != "good" {
				t.Fatalf("good record: %v %q", typ, p)
			}
			_, _, err := recvErr(rc, 100)
			if !errors.Is(err, syscall.EBADMSG) {
				t.Fatalf("bad record: %v, want EBADMSG", err)
			}
			// The error is sticky: the stream cannot be resynchronised.
			a.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := a.Read(make([]byte, 10)); !errors.Is(err, syscall.EBADMSG) {
				t.Errorf("read after EBADMSG: %v, want EBADMSG again", err)
			}
		})
	}
}

// TestKernelSendfile: sendfile(2) of a file through kernel TX puts records
// on the wire that decrypt to the file, both as a direct sendfile call and
// through net.TCPConn.ReadFrom (what io.Copy uses).
func TestKernelSendfile(t *testing.T) {
	ktlstest.RequireKernel(t)
	data := randomBytes(200<<10 + 123)
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			t.Run("sendfile", func(t *testing.T) {
				_, b, rc, o := kernelTX(t, s, 9)
				f := tempFile(t, data)
				done := make(chan error, 1)
				go func() { done <- sendfile(rc, f, len(data)) }()
				if got := readPlain(t, b, o, len(data)); !bytes.Equal(got, data) {
					t.Fatal("sendfile: plaintext differs from the file")
				}
				if err := <-done; err != nil {
					t.Fatalf("sendfile: %v", err)
				}
			})
			t.Run("ReadFrom", func(t *testing.T) {
				a, b, _, o := kernelTX(t, s, 0)
				f := tempFile(t, data)
				done := make(chan error, 1)
				go func() {
					n, err := a.ReadFrom(f)
					if err == nil && n != int64(len(data)) {
						err = io.ErrShortWrite
					}
					done <- err
				}()
				if got := readPlain(t, b, o, len(data)); !bytes.Equal(got, data) {
					t.Fatal("ReadFrom: plaintext differs from the file")
				}
				if err := <-done; err != nil {
					t.Fatalf("ReadFrom: %v", err)
				}
			})
		})
	}
}

// sendfile sends n bytes of f with sendfile(2), waiting in the poller.
func sendfile(rc syscall.RawConn, f *os.File, n int) error {
	var off int64
	var serr error
	err := rc.Write(func(fd uintptr) bool {
		for int(off) < n {
			m, err := unix.Sendfile(int(fd), int(f.Fd()), &off, n-int(off))
			switch {
			case err == unix.EAGAIN:
				return false
			case err == unix.EINTR:
				continue
			case err != nil:
				serr = os.NewSyscallError("sendfile", err)
				return true
			case m == 0:
				serr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// TestKernelSocketInfo: sock_diag reports no ULP on a plain socket, base
// configuration after Attach, and software TX and RX with the version and
// cipher after Enable.
func TestKernelSocketInfo(t *testing.T) {
	ktlstest.RequireKernel(t)
	for _, s := range kernelSuites(t) {
		t.Run(s.name, func(t *testing.T) {
			a, _ := tcpPair(t)
			rc := rawConn(t, a)
			info, err := kernel.SocketInfo(rc)
			if err != nil {
				t.Fatalf("SocketInfo of a plain socket: %v", err)
			}
			if info != (kernel.Info{}) {
				t.Errorf("plain socket: %+v, want zero", info)
			}
			if err := kernel.Attach(rc); err != nil {
				t.Fatal(err)
			}
			if info, err = kernel.SocketInfo(rc); err != nil {
				t.Fatal(err)
			}
			if info.TX != kernel.ConfBase || info.RX != kernel.ConfBase || info.Version != 0 {
				t.Errorf("after Attach: %+v, want TX and RX base, no version", info)
			}
			sess := s.session(0)
			if err := kernel.Enable(rc, kernel.TX, sess); err != nil {
				t.Fatal(err)
			}
			if info, err = kernel.SocketInfo(rc); err != nil {
				t.Fatal(err)
			}
			if info.TX != kernel.ConfSW || info.RX != kernel.ConfBase {
				t.Errorf("after TX: %+v, want TX sw, RX base", info)
			}
			if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
				t.Fatal(err)
			}
			if info, err = kernel.SocketInfo(rc); err != nil {
				t.Fatal(err)
			}
			want := kernel.Info{Version: s.version, Cipher: s.kcipher, TX: kernel.ConfSW, RX: kernel.ConfSW}
			if info != want {
				t.Errorf("after TX and RX: %+v, want %+v", info, want)
			}
		})
	}
}

// TestKernelStats: /proc/net/tls_stat counters move when sockets get keys
// and when a record fails to decrypt.
func TestKernelStats(t *testing.T) {
	ktlstest.RequireKernel(t)
	before, err := kernel.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, name := range []string{"TlsCurrTxSw", "TlsCurrRxSw", "TlsTxSw", "TlsRxSw", "TlsDecryptError"} {
		if _, ok := before[name]; !ok {
			t.Errorf("no %s in %v", name, before)
		}
	}
	s := suites[3]
	a, b := tcpPair(t)
	rc := rawConn(t, a)
	sess := s.session(0)
	o := newOracle(t, s, sess)
	if err := kernel.Attach(rc); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Enable(rc, kernel.TX, sess); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
		t.Fatal(err)
	}
	bad := o.seal(23, []byte("x"))
	bad[len(bad)-1] ^= 0x80
	if _, err := b.Write(bad); err != nil {
		t.Fatal(err)
	}
	if _, _, err := recvErr(rc, 10); !errors.Is(err, syscall.EBADMSG) {
		t.Fatalf("bad record: %v, want EBADMSG", err)
	}
	after, err := kernel.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"TlsCurrTxSw", "TlsCurrRxSw", "TlsTxSw", "TlsRxSw", "TlsDecryptError"} {
		if after[name] < before[name]+1 {
			t.Errorf("%s: %d before, %d after; want it to grow", name, before[name], after[name])
		}
	}
	var moved []string
	for k, v := range after {
		if v != before[k] {
			moved = append(moved, k)
		}
	}
	t.Logf("counters that moved: %s", strings.Join(moved, " "))
}

// TestKernelErrors: the errors the kernel gives for misuse wrap the errno.
func TestKernelErrors(t *testing.T) {
	ktlstest.RequireKernel(t)
	a, _ := tcpPair(t)
	rc := rawConn(t, a)
	sess := suites[0].session(0)
	if err := kernel.Enable(rc, kernel.TX, sess); err == nil {
		t.Error("Enable without Attach succeeded")
	} else {
		t.Logf("Enable without Attach: %v", err)
	}
	if err := kernel.Attach(rc); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Attach(rc); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second Attach: %v, want EEXIST", err)
	}
	if _, _, err := kernel.RecvRecord(rc, nil); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("RecvRecord with no buffer: %v, want EINVAL", err)
	}
	bad := *sess
	bad.Key = bad.Key[:5]
	if err := kernel.Enable(rc, kernel.TX, &bad); err == nil {
		t.Error("Enable with a 5-byte key succeeded")
	}
	if err := kernel.Enable(rc, kernel.Direction(7), sess); err == nil {
		t.Error("Enable with a bad direction succeeded")
	}
}

// TestKernelDeadline: RecvRecord waits in Go's poller, so a read deadline
// ends it with os.ErrDeadlineExceeded and Close ends it with net.ErrClosed.
func TestKernelDeadline(t *testing.T) {
	ktlstest.RequireKernel(t)
	a, _ := tcpPair(t)
	rc := rawConn(t, a)
	sess := suites[3].session(0)
	if err := kernel.Attach(rc); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := kernel.RecvRecord(rc, make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("RecvRecord past the deadline: %v", err)
	}
	a.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := kernel.RecvRecord(rc, make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("RecvRecord after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end RecvRecord")
	}
}

// TestKernelFeatures probes the optional features of this kernel and logs
// which it has; it fails only on an answer that is neither yes nor "not
// supported".
func TestKernelFeatures(t *testing.T) {
	ktlstest.RequireKernel(t)
	a, _ := tcpPair(t)
	rc := rawConn(t, a)
	s := suites[3]
	sess := s.session(0)
	if err := kernel.Attach(rc); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Enable(rc, kernel.TX, sess); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
		t.Fatal(err)
	}
	opt := func(name string, o, v int) bool {
		var err error
		rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_TLS, o, v) })
		t.Logf("feature %s: %s", name, yesNo(err))
		return err == nil
	}
	zc := opt("TLS_TX_ZEROCOPY_RO", 3, 1)
	nopad := opt("TLS_RX_EXPECT_NO_PAD", 4, 1)
	info, err := kernel.SocketInfo(rc)
	if err != nil {
		t.Fatal(err)
	}
	// Linux reports zero-copy sendfile only for device offload (TLS_HW).
	if wantZC := zc && info.TX == kernel.ConfHW; info.ZeroCopyTX != wantZC || info.RXNoPad != nopad {
		t.Errorf("SocketInfo %+v; want ZeroCopyTX %v, RXNoPad %v", info, wantZC, nopad)
	}
	rc.Control(func(fd uintptr) { err = unix.SetsockoptString(int(fd), unix.SOL_TLS, 5, "\x00\x10") }) // u16 4096, little-endian
	t.Logf("feature TLS_TX_MAX_PAYLOAD_LEN: %s", yesNo(err))
	next := *sess
	next.Key = randomBytes(len(sess.Key))
	err = kernel.Enable(rc, kernel.TX, &next)
	t.Logf("feature TLS 1.3 TX rekey (second TLS_TX): %s", yesNo(err))
	if err != nil && !errors.Is(err, syscall.EBUSY) {
		t.Errorf("second TLS_TX: %v, want success or EBUSY", err)
	}
}

func yesNo(err error) string {
	if err == nil {
		return "yes"
	}
	return "no (" + err.Error() + ")"
}

// TestKernelRekey: TLS 1.3 KeyUpdate. On kernels that re-key (Linux 6.14 and
// later) setting TLS_TX again switches the keys between two records, and
// after a received KeyUpdate the kernel holds back the next records
// (EKEYEXPIRED) until TLS_RX is set again. Older kernels answer the second
// TLS_TX / TLS_RX with EBUSY; the test checks that and says the kernel lacks
// re-keying.
func TestKernelRekey(t *testing.T) {
	ktlstest.RequireKernel(t)
	keyUpdate := []byte{24, 0, 0, 1, 0} // KeyUpdate, update_not_requested
	for _, s := range kernelSuites(t) {
		if s.version != tls.VersionTLS13 {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			t.Run("TX", func(t *testing.T) {
				a, b, rc, o := kernelTX(t, s, 3)
				if _, err := a.Write([]byte("old key")); err != nil {
					t.Fatal(err)
				}
				if _, err := kernel.SendRecord(rc, record.TypeHandshake, keyUpdate); err != nil {
					t.Fatal(err)
				}
				next := s.session(0)
				if err := kernel.Enable(rc, kernel.TX, next); err != nil {
					if !errors.Is(err, syscall.EBUSY) {
						t.Fatalf("second TLS_TX: %v, want success or EBUSY", err)
					}
					t.Logf("kernel lacks TLS 1.3 TX rekey: %v", err)
					return
				}
				if _, err := a.Write([]byte("new key")); err != nil {
					t.Fatal(err)
				}
				if typ, p := openRecord(t, b, o); typ != 23 || string(p) != "old key" {
					t.Fatalf("first record: %d %q", typ, p)
				}
				if typ, p := openRecord(t, b, o); typ != 22 || !bytes.Equal(p, keyUpdate) {
					t.Fatalf("KeyUpdate record: %d %x", typ, p)
				}
				if typ, p := openRecord(t, b, newOracle(t, s, next)); typ != 23 || string(p) != "new key" {
					t.Fatalf("record under the new key: %d %q", typ, p)
				}
			})
			t.Run("RX", func(t *testing.T) {
				a, b := tcpPair(t)
				rc := rawConn(t, a)
				sess, next := s.session(8), s.session(0)
				o, on := newOracle(t, s, sess), newOracle(t, s, next)
				if err := kernel.Attach(rc); err != nil {
					t.Fatal(err)
				}
				if err := kernel.Enable(rc, kernel.RX, sess); err != nil {
					t.Fatal(err)
				}
				wire := o.seal(23, []byte("old key"))
				wire = append(wire, o.seal(22, keyUpdate)...)
				wire = append(wire, on.seal(23, []byte("new key"))...)
				if _, err := b.Write(wire); err != nil {
					t.Fatal(err)
				}
				if typ, p := recv(t, rc, 100); typ != 23 || string(p) != "old key" {
					t.Fatalf("first record: %v %q", typ, p)
				}
				if typ, p := recv(t, rc, 100); typ != 22 || !bytes.Equal(p, keyUpdate) {
					t.Fatalf("KeyUpdate record: %v %x", typ, p)
				}
				_, _, err := recvErr(rc, 100)
				if errors.Is(err, syscall.EBADMSG) {
					// The kernel does not know KeyUpdate: it opened the next
					// record with the old key.
					if err := kernel.Enable(rc, kernel.RX, next); !errors.Is(err, syscall.EBUSY) {
						t.Fatalf("second TLS_RX on a kernel without rekey: %v, want EBUSY", err)
					}
					t.Log("kernel lacks TLS 1.3 RX rekey: the record after KeyUpdate fails with EBADMSG, a second TLS_RX with EBUSY")
					return
				}
				if !errors.Is(err, syscall.EKEYEXPIRED) {
					t.Fatalf("read after KeyUpdate: %v, want EKEYEXPIRED", err)
				}
				if err := kernel.Enable(rc, kernel.RX, next); err != nil {
					t.Fatalf("TLS_RX with the next key: %v", err)
				}
				if typ, p := recv(t, rc, 100); typ != 23 || string(p) != "new key" {
					t.Fatalf("record under the new key: %v %q", typ, p)
				}
			})
		})
	}
}

// TestKernelSocketInfoUnprivileged: without CAP_NET_ADMIN older kernels hide
// the TLS attributes from sock_diag (newer ones show them); SocketInfo then
// says so with EPERM instead of reporting "none".
func TestKernelSocketInfoUnprivileged(t *testing.T) {
	ktlstest.RequireKernel(t)
	a, _ := tcpPair(t)
	rc := rawConn(t, a)
	if err := kernel.Attach(rc); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Enable(rc, kernel.TX, suites[0].session(0)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Capabilities belong to a thread: drop CAP_NET_ADMIN on this one
		// and let it die with the goroutine (no UnlockOSThread).
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		info, err := kernel.SocketInfo(rc)
		switch want := (kernel.Info{Version: tls.VersionTLS12, Cipher: 51, TX: kernel.ConfSW, RX: kernel.ConfBase}); {
		case errors.Is(err, syscall.EPERM):
			t.Logf("without CAP_NET_ADMIN: %v", err)
			err = nil
		case err == nil && info == want:
			t.Log("without CAP_NET_ADMIN: this kernel shows the TLS state to everyone")
		default:
			err = fmt.Errorf("SocketInfo without CAP_NET_ADMIN: %+v, %v; want EPERM or %+v", info, err, want)
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// kernelSuites returns the suites of the kernel's TLS (ktlstest.KernelSuite),
// after checking that the kernel refuses each of the others with EINVAL
// (ChaCha20-Poly1305 before Linux 5.11), the answer on which OffloadAuto's
// per-suite fallback to the user-space record layer relies.
func kernelSuites(t *testing.T) []suite {
	t.Helper()
	var have []suite
	for _, s := range suites {
		switch err := ktlstest.KernelSuite(s.version, s.id); {
		case err == nil:
			have = append(have, s)
		case errors.Is(err, syscall.EINVAL):
			t.Logf("%s: not in this kernel's TLS (%v): tested as refused", s.name, err)
		default:
			t.Errorf("%s: %v, want nil or EINVAL", s.name, err)
		}
	}
	return have
}

// TestKernelMissingSuites: a suite the kernel's TLS lacks is refused with
// EINVAL in both directions, and the socket stays usable for a suite it has
// (what OffloadAuto's per-suite fallback does).
func TestKernelMissingSuites(t *testing.T) {
	ktlstest.RequireKernel(t)
	have := kernelSuites(t)
	for _, s := range suites {
		if ktlstest.KernelSuite(s.version, s.id) == nil {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			a, _ := tcpPair(t)
			rc := rawConn(t, a)
			if err := kernel.Attach(rc); err != nil {
				t.Fatal(err)
			}
			for _, d := range []kernel.Direction{kernel.TX, kernel.RX} {
				if err := kernel.Enable(rc, d, s.session(0)); !errors.Is(err, syscall.EINVAL) {
					t.Errorf("Enable %v: %v, want EINVAL", d, err)
				}
			}
			if len(have) > 0 {
				if err := kernel.Enable(rc, kernel.TX, have[0].session(0)); err != nil {
					t.Errorf("Enable TX %s after the refusal: %v", have[0].name, err)
				}
			}
		})
	}
	t.Logf("kernel's TLS has %d of %d suites", len(have), len(suites))
}
