package ktls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// inLab reports whether the tests run in the kernel lab (qemu under TCG,
// where crypto is slow).
var inLab = os.Getenv("KTLS_LAB") == "1"

type testPKI struct {
	server, client tls.Certificate
	pool           *x509.CertPool // trusts both
}

var pki = sync.OnceValue(func() *testPKI {
	p := &testPKI{pool: x509.NewCertPool()}
	p.server = newCert(p.pool, "localhost", x509.ExtKeyUsageServerAuth)
	p.client = newCert(p.pool, "client", x509.ExtKeyUsageClientAuth)
	return p
})

// newCert makes a self-signed ECDSA P-256 certificate and adds it to pool.
func newCert(pool *x509.CertPool, name string, usage x509.ExtKeyUsage) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{name},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{pki().server}, ClientCAs: pki().pool}
}

func clientTLS() *tls.Config {
	return &tls.Config{ServerName: "localhost", RootCAs: pki().pool}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}

// flushConn holds what is written to it until the next Read or release, so
// that a crypto/tls peer sends its last handshake flight and its first
// application data in one TCP write.
type flushConn struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte
	hold bool
}

func newFlushConn(c net.Conn) *flushConn { return &flushConn{Conn: c, hold: true} }

func (f *flushConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold {
		f.buf = append(f.buf, p...)
		return len(p), nil
	}
	return f.Conn.Write(p)
}

func (f *flushConn) flushLocked() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.Conn.Write(f.buf)
	f.buf = nil
	return err
}

func (f *flushConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	err := f.flushLocked()
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return f.Conn.Read(p)
}

// release writes what is held and stops holding.
func (f *flushConn) release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = false
	return f.flushLocked()
}

// payloads are the sizes of the matrix's writes, followed by a stream of
// many small writes.
func payloads() (sizes []int) {
	big, small := 1<<20, 2000
	if inLab {
		big, small = 256<<10, 300
	}
	sizes = []int{0, 1, 16383, 16384, 16385, big}
	r := mrand.New(mrand.NewPCG(1, 2))
	for range small {
		sizes = append(sizes, 1+r.IntN(100))
	}
	return sizes
}

// testData returns n deterministic bytes.
func testData(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// writeAll writes data in pieces of the given sizes (cycling if data is
// longer), calling after() once after the first non-empty write.
func writeSizes(w io.Writer, data []byte, sizes []int, after func() error) error {
	first := true
	for _, n := range sizes {
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
		if first && n > 0 && after != nil {
			first = false
			if err := after(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readVarying reads r to io.EOF with buffers of changing sizes.
func readVarying(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	sizes := []int{1, 7, 100, 16383, 16384, 70000, 5}
	buf := make([]byte, 70000)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:sizes[i%len(sizes)]])
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func total(sizes []int) (n int) {
	for _, s := range sizes {
		n += s
	}
	return n
}

// firstDiff describes where got and want differ.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return "got " + itoa(len(got)) + " bytes, want " + itoa(len(want)) + "; first difference at " + itoa(i)
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
