package ktls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

// ioSize is the size of the ReadFrom / WriteTo transfers: not a multiple of
// the record size.
func ioSize() int {
	if inLab {
		return 300<<10 + 123
	}
	return 2<<20 + 123
}

// engineConn returns a handshaken ktls server (both directions on engine)
// and its crypto/tls client.
func engineConn(t *testing.T, engine Offload) *pair {
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: engine, RX: engine}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	if tx, rx := pr.k.Mode(); tx != wantMode(engine) || rx != wantMode(engine) {
		t.Fatalf("Mode() = %v, %v; want %v", tx, rx, wantMode(engine))
	}
	return pr
}

// TestReadFromFile sends a file with ReadFrom (user space: the copy loop).
func TestReadFromFile(t *testing.T) {
	if n := testReadFromFile(t, OffloadUser); n != 0 {
		t.Errorf("sendfile sent %d bytes in user-space mode", n)
	}
}

// TestKernelSendfile sends a file with ReadFrom and checks that all of it
// went through sendfile(2) on the kTLS socket.
func TestKernelSendfile(t *testing.T) {
	ktlstest.RequireKernel(t)
	if n, want := testReadFromFile(t, OffloadKernel), int64(ioSize()-100); n != want {
		t.Errorf("sendfile sent %d bytes, want %d", n, want)
	}
}

// TestKernelSendfileNestedLimit: a file behind two io.LimitedReaders (a
// wrapper that sends a body in steps, each limited, of a reader ServeContent
// already limited) still goes through sendfile(2), and each limit counts
// what was sent.
func TestKernelSendfileNestedLimit(t *testing.T) {
	ktlstest.RequireKernel(t)
	data := testData(ioSize(), 4)
	f := tempFile(t, data)
	want := data[:len(data)/2]
	inner := &io.LimitedReader{R: f, N: int64(len(data) - 100)}
	outer := &io.LimitedReader{R: inner, N: int64(len(want))}
	pr := engineConn(t, OffloadKernel)
	got := sendToPeer(t, pr, len(want), func() (int64, error) { return pr.k.ReadFrom(outer) })
	if !bytes.Equal(got, want) {
		t.Errorf("file -> peer: %s", firstDiff(got, want))
	}
	if outer.N != 0 || inner.N != int64(len(data)-100-len(want)) {
		t.Errorf("limits left: outer %d, inner %d; want 0, %d", outer.N, inner.N, len(data)-100-len(want))
	}
	if n := pr.k.sendfileBytes.Load(); n != int64(len(want)) {
		t.Errorf("sendfile sent %d bytes, want %d", n, len(want))
	}
}

// sendToPeer runs send (n bytes from pr.k) and CloseWrite in a goroutine
// and returns what pr's peer read to the end.
func sendToPeer(t *testing.T, pr *pair, n int, send func() (int64, error)) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		m, err := send()
		if err == nil && m != int64(n) {
			err = fmt.Errorf("sent %d bytes, want %d", m, n)
		}
		if err == nil {
			err = pr.k.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(pr.p)
	if err != nil {
		t.Errorf("peer read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("ReadFrom: %v", err)
	}
	return got
}

// testReadFromFile sends a file (from offset 100) with ReadFrom and returns
// the bytes sendfile sent.
func testReadFromFile(t *testing.T, engine Offload) int64 {
	data := testData(ioSize(), 3)
	f := tempFile(t, data)
	if _, err := f.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	pr := engineConn(t, engine)
	// io.Copy: File.WriteTo hands ReadFrom a wrapper of f.
	got := sendToPeer(t, pr, len(data)-100, func() (int64, error) { return io.Copy(pr.k, f) })
	if !bytes.Equal(got, data[100:]) {
		t.Errorf("file -> peer: %s", firstDiff(got, data[100:]))
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != int64(len(data)) {
		t.Errorf("file offset after ReadFrom = %d, want %d", off, len(data))
	}
	return pr.k.sendfileBytes.Load()
}

// TestReadFromTCP sends what a TCP connection yields with ReadFrom.
func TestReadFromTCP(t *testing.T) { testReadFromTCP(t, OffloadUser) }

// TestKernelSplice sends what a TCP connection yields with ReadFrom (splice
// into the kTLS socket) and receives into a TCP connection with WriteTo
// (splice out of it, and recvmsg for the close_notify at the end).
func TestKernelSplice(t *testing.T) {
	ktlstest.RequireKernel(t)
	t.Run("ReadFrom", func(t *testing.T) { testReadFromTCP(t, OffloadKernel) })
	t.Run("WriteTo", func(t *testing.T) { testWriteToTCP(t, OffloadKernel) })
	t.Run("WriteToAfterRead", testKernelWriteToAfterRead)
}

// testKernelWriteToAfterRead reads the start of the first record with Read,
// then the rest of the stream with WriteTo into a TCP connection: the
// receiving direction must give every byte once and in order, whether
// WriteTo splices (Linux 5.16 and later) or reads (before, where
// tls_sw_splice_read repeats or skips data).
func testKernelWriteToAfterRead(t *testing.T) {
	data := testData(ioSize(), 7)
	dst, dstPeer := tcpPair(t)
	pr := engineConn(t, OffloadKernel)
	go func() {
		pr.p.Write(data)
		pr.p.CloseWrite()
	}()
	head := make([]byte, 100)
	if _, err := io.ReadFull(pr.k, head); err != nil {
		t.Fatalf("Read: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := pr.k.WriteTo(dst)
		dst.CloseWrite()
		errc <- err
	}()
	// At most one byte too many, so that repeated data fails the test
	// rather than filling the memory.
	rest, err := io.ReadAll(io.LimitReader(dstPeer, int64(len(data)-len(head)+1)))
	if err != nil {
		t.Errorf("read: %v", err)
	}
	dstPeer.Close()
	if err := <-errc; err != nil {
		t.Errorf("WriteTo: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, data) {
		t.Errorf("Read + WriteTo: %d bytes of %d; %s", len(got), len(data), firstDiff(got, data))
	}
}

func testReadFromTCP(t *testing.T, engine Offload) {
	data := testData(ioSize(), 4)
	src, srcPeer := tcpPair(t)
	go func() {
		srcPeer.Write(data)
		srcPeer.Close()
	}()
	pr := engineConn(t, engine)
	errc := make(chan error, 1)
	go func() {
		_, err := pr.k.ReadFrom(src)
		if err == nil {
			err = pr.k.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(pr.p)
	if err != nil {
		t.Errorf("peer read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("ReadFrom: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("tcp -> peer: %s", firstDiff(got, data))
	}
}

// TestWriteTo receives into a buffer and into a TCP connection with
// WriteTo.
func TestWriteTo(t *testing.T) {
	testWriteToBuffer(t, OffloadUser)
	testWriteToTCP(t, OffloadUser)
}

// TestKernelWriteTo receives into a buffer with WriteTo: plain reads of the
// kTLS socket, which fail with EIO at the close_notify.
func TestKernelWriteTo(t *testing.T) {
	ktlstest.RequireKernel(t)
	testWriteToBuffer(t, OffloadKernel)
}

func testWriteToBuffer(t *testing.T, engine Offload) {
	data := testData(ioSize(), 5)
	pr := engineConn(t, engine)
	go func() {
		pr.p.Write(data)
		pr.p.CloseWrite()
	}()
	var buf bytes.Buffer
	n, err := pr.k.WriteTo(&buf)
	if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("WriteTo = %d, %v; %s", n, err, firstDiff(buf.Bytes(), data))
	}
}

func testWriteToTCP(t *testing.T, engine Offload) {
	data := testData(ioSize(), 6)
	dst, dstPeer := tcpPair(t)
	pr := engineConn(t, engine)
	go func() {
		pr.p.Write(data)
		pr.p.CloseWrite()
	}()
	errc := make(chan error, 1)
	go func() {
		n, err := pr.k.WriteTo(dst)
		if err == nil && n != int64(len(data)) {
			err = io.ErrShortWrite
		}
		dst.CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(io.LimitReader(dstPeer, int64(len(data)+1))) // see testKernelWriteToAfterRead
	if err != nil {
		t.Errorf("read: %v", err)
	}
	dstPeer.Close()
	if err := <-errc; err != nil {
		t.Errorf("WriteTo: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("peer -> tcp: %s", firstDiff(got, data))
	}
}

// TestReadFromReset has the peer reset the connection while ReadFrom sends
// a file: ReadFrom must return the error (ECONNRESET or EPIPE), not a short
// count and nil.
func TestReadFromReset(t *testing.T) { testReadFromReset(t, OffloadUser) }

// TestKernelSendfileReset is TestReadFromReset through sendfile(2).
func TestKernelSendfileReset(t *testing.T) {
	ktlstest.RequireKernel(t)
	testReadFromReset(t, OffloadKernel)
}

func testReadFromReset(t *testing.T, engine Offload) {
	// Far more than the socket buffers hold: a sparse file costs nothing.
	name := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 1 << 30
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	pr := engineConn(t, engine)
	type res struct {
		n   int64
		err error
	}
	done := make(chan res, 1)
	go func() {
		n, err := io.Copy(pr.k, f)
		done <- res{n, err}
	}()
	if _, err := io.ReadFull(pr.p, make([]byte, 100000)); err != nil {
		t.Fatal(err)
	}
	pr.fc.Conn.(*net.TCPConn).SetLinger(0)
	pr.fc.Conn.Close()
	r := <-done
	if r.n >= size || !errors.Is(r.err, syscall.ECONNRESET) && !errors.Is(r.err, syscall.EPIPE) {
		t.Fatalf("ReadFrom after the peer's reset = %d, %v; want a short count and ECONNRESET or EPIPE", r.n, r.err)
	}
	if engine == OffloadKernel && pr.k.sendfileBytes.Load() == 0 {
		t.Error("sendfile(2) not used")
	}
}

// TestKernelWriteToConn: a Conn echoes to itself with io.Copy (WriteTo into
// its own ReadFrom, kernel RX socket as the source), as a relay between two
// kernel-TLS Conns does. The peer's close_notify must end the copy cleanly:
// the source is copied through user space, since SIOCINQ does not count the
// records the kernel has parsed (it took close_notify for a cut stream).
func TestKernelWriteToConn(t *testing.T) {
	ktlstest.RequireKernel(t)
	pr := newPair(t, true, &Config{TLS: serverTLS(), TX: OffloadKernel, RX: OffloadKernel, KernelWithoutRekey: true}, clientTLS())
	pr.fc.release()
	pr.handshake(t)
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(pr.k, pr.k)
		copied <- err
	}()
	msg := bytes.Repeat([]byte("echo "), 10000)
	if _, err := pr.p.Write(msg); err != nil {
		t.Fatal(err)
	}
	// close_notify and then the TCP FIN, as a ktls.Conn's CloseWrite sends.
	if err := pr.p.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := pr.fc.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(pr.p, int64(len(msg))))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d of %d bytes, %v", len(got), len(msg), err)
	}
	if err := <-copied; err != nil {
		t.Fatalf("io.Copy(c, c) = %v, want nil after the peer's close_notify", err)
	}
}
