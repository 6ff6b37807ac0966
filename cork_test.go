package ktls

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

// wireRecords is a net.Conn that counts the TLS records it reads, by their
// 5-byte headers.
type wireRecords struct {
	net.Conn
	n    int
	hdr  []byte
	skip int
}

func (c *wireRecords) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip, b = c.skip-k, b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr, b = append(c.hdr, b[:k]...), b[k:]
		if len(c.hdr) == 5 {
			c.n++
			c.skip, c.hdr = int(c.hdr[3])<<8|int(c.hdr[4]), c.hdr[:0]
		}
	}
	return n, err
}

// TestCork: while corked, what Write is given waits and goes out in one
// record with what follows (ReadFrom of an in-memory reader, more writes);
// Uncork and Close send what is held; ReadFrom of a source that may block
// sends it before waiting for the source.
func TestCork(t *testing.T) {
	for _, tx := range []Offload{OffloadUser, OffloadOff} {
		t.Run(tx.String(), func(t *testing.T) { testCork(t, tx) })
	}
}

// TestKernelCork is TestCork with the sending direction in the kernel: the
// held bytes go with MSG_MORE and sendfile's data joins their record; with
// an empty file they go alone, without MSG_MORE, so they are not stuck.
func TestKernelCork(t *testing.T) {
	ktlstest.RequireKernel(t)
	testCork(t, OffloadKernel)
}

func testCork(t *testing.T, tx Offload) {
	ct, st := tcpPair(t)
	wr := &wireRecords{Conn: ct}
	cl := tls.Client(wr, clientTLS())
	s := Server(st, &Config{TLS: serverTLS(), TX: tx, RX: tx})
	defer s.Close()
	cl.SetDeadline(time.Now().Add(time.Minute))
	s.SetDeadline(time.Now().Add(time.Minute))
	expect := func(what, want string, records int) {
		t.Helper()
		before := wr.n
		got := make([]byte, len(want))
		if _, err := io.ReadFull(cl, got); err != nil || string(got) != want {
			t.Fatalf("%s: read %q, %v; want %q", what, got, err, want)
		}
		// records 0: not counted.
		if n := wr.n - before; records > 0 && n != records && tx != OffloadOff {
			t.Errorf("%s: %d records, want %d", what, n, records)
		}
	}
	go s.Write([]byte("hello")) // runs the handshake
	expect("hello", "hello", 0) // after the handshake's records

	s.Cork()
	s.Write([]byte("header:"))
	s.ReadFrom(strings.NewReader("body"))
	if err := s.Uncork(); err != nil {
		t.Fatal(err)
	}
	expect("Write then ReadFrom", "header:body", 1)

	for _, size := range []int{4096, 0} {
		f := tempFile(t, make([]byte, size))
		s.Cork()
		s.Write([]byte("header:"))
		if n, err := s.ReadFrom(f); err != nil || n != int64(size) {
			t.Fatalf("ReadFrom(file of %d bytes) = %d, %v", size, n, err)
		}
		if err := s.Uncork(); err != nil {
			t.Fatal(err)
		}
		expect("Write then ReadFrom(file)", "header:"+string(make([]byte, size)), 1)
	}

	s.Cork()
	s.Write([]byte("a"))
	s.Write([]byte("b"))
	if err := s.Uncork(); err != nil {
		t.Fatal(err)
	}
	expect("two writes", "ab", 1)

	s.Cork()
	s.Write([]byte("h"))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadFrom(pr)
		done <- err
	}()
	expect("before a blocking source", "h", 1)
	pw.Write([]byte("x"))
	pw.Close()
	expect("the blocking source", "x", 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	s.Cork()
	s.Write([]byte("bye"))
	s.Close()
	expect("before close_notify", "bye", 0) // crypto/tls reads close_notify with it
	if _, err := cl.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after close_notify: %v, want EOF", err)
	}
}
