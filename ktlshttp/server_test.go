package ktlshttp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// testCert returns a self-signed certificate for 127.0.0.1 and a pool
// trusting it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ktlshttp test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

type testServer struct {
	srv    *Server
	addr   string
	pool   *x509.CertPool
	served chan error
}

// startServer serves h on a loopback port over ktls with the user-space
// engine's default policy. wrap, if not nil, wraps the listener.
func startServer(t testing.TB, h http.Handler, wrap func(net.Listener, *ktls.Config) net.Listener, opts ...func(*Server)) *testServer {
	t.Helper()
	cert, pool := testCert(t)
	cfg := &ktls.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		srv:    &Server{Server: http.Server{Handler: h, ErrorLog: testLogger(t)}, Config: cfg},
		addr:   ln.Addr().String(),
		pool:   pool,
		served: make(chan error, 1),
	}
	for _, o := range opts {
		o(ts.srv)
	}
	l := net.Listener(ln)
	if wrap != nil {
		l = wrap(ln, cfg)
	}
	go func() { ts.served <- ts.srv.Serve(l) }()
	t.Cleanup(func() {
		ts.srv.Close()
		if err := <-ts.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		// Close does not wait for the handshakes it aborts, which may
		// still log to t (a TLS handshake error): wait for them.
		ts.srv.wg.Wait()
	})
	return ts
}

func (ts *testServer) client(h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ts.pool},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{Transport: tr}
}

func (ts *testServer) url(p string) string { return "https://" + ts.addr + p }

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *log.Logger { return log.New(logWriter{t}, "server: ", 0) }

func TestProtocolsAndRequestTLS(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fmt.Fprintf(w, "%s no TLS", r.Proto)
			return
		}
		fmt.Fprintf(w, "%s %q %x", r.Proto, r.TLS.NegotiatedProtocol, r.TLS.Version)
	}), nil)
	for _, tc := range []struct {
		h2   bool
		alpn []string
		want string
	}{
		{false, nil, `HTTP/1.1 "" 304`},
		{false, []string{"http/1.1"}, `HTTP/1.1 "http/1.1" 304`},
		{true, nil, `HTTP/2.0 "h2" 304`},
	} {
		c := ts.client(tc.h2)
		c.Transport.(*http.Transport).TLSClientConfig.NextProtos = tc.alpn
		for range 3 { // several requests on one connection
			resp, body := get(t, c, ts.url("/"))
			if resp.StatusCode != 200 || body != tc.want || resp.TLS == nil {
				t.Errorf("h2=%v ALPN %q: %s %q, want 200 %q", tc.h2, tc.alpn, resp.Status, body, tc.want)
			}
		}
		c.CloseIdleConnections()
	}
}

// countingConn counts the calls of ReadFrom on a connection, to see that
// net/http's file copies reach the ktls.Conn's ReadFrom (sendfile).
type countingConn struct {
	*ktls.Conn
	n *atomic.Int64
}

func (c countingConn) ReadFrom(r io.Reader) (int64, error) {
	c.n.Add(1)
	return c.Conn.ReadFrom(r)
}

type countingListener struct {
	net.Listener
	cfg *ktls.Config
	n   *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{ktls.Server(c, l.cfg), l.n}, nil
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testTree makes DIR/root with files and symbolic links, some pointing
// outside, and DIR/outside/secret.txt. It returns the opened root.
func testTree(t *testing.T) (string, *os.Root, []byte) {
	dir := t.TempDir()
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "big.bin"), big)
	writeFile(t, filepath.Join(root, "hello.txt"), []byte("hello, world\n"))
	writeFile(t, filepath.Join(root, "sub", "page.html"), []byte("<p>sub</p>\n"))
	writeFile(t, filepath.Join(dir, "outside", "secret.txt"), []byte("SECRET\n"))
	for link, target := range map[string]string{
		"in.txt":     "hello.txt",
		"out.txt":    "../outside/secret.txt",
		"outdir":     "../outside",
		"abs.txt":    filepath.Join(dir, "outside", "secret.txt"),
		"sub/up.txt": "../../outside/secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r, big
}

func TestFileServer(t *testing.T) {
	_, root, big := testTree(t)
	var n atomic.Int64
	ts := startServer(t, http.FileServer(RootFS(root)), func(l net.Listener, cfg *ktls.Config) net.Listener {
		cfg = &ktls.Config{TLS: cfg.TLS.Clone(), TX: cfg.TX, RX: cfg.RX}
		cfg.TLS.NextProtos = []string{"h2", "http/1.1"}
		return countingListener{l, cfg, &n}
	})
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := ts.client(h2)
			defer c.CloseIdleConnections()
			n.Store(0)
			resp, body := get(t, c, ts.url("/big.bin"))
			if resp.StatusCode != 200 || body != string(big) {
				t.Fatalf("big.bin: %s, %d bytes; want 200, %d bytes", resp.Status, len(body), len(big))
			}
			if got := n.Load(); h2 && got != 0 || !h2 && got == 0 {
				t.Errorf("ReadFrom called %d times on the conn", got)
			}
			resp, body = get(t, c, ts.url("/hello.txt"))
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || body != "hello, world\n" {
				t.Errorf("hello.txt: %q %q", ct, body)
			}
			resp, _ = get(t, c, ts.url("/sub/page.html"))
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("page.html: Content-Type %q", ct)
			}
			resp, body = get(t, c, ts.url("/big.bin"), "Range", "bytes=1000-1999")
			if resp.StatusCode != 206 || body != string(big[1000:2000]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(big)) {
				t.Errorf("Range: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Range"), len(body))
			}
			resp, body = get(t, c, ts.url("/big.bin"), "Range", fmt.Sprintf("bytes=%d-", len(big)-5))
			if resp.StatusCode != 206 || body != string(big[len(big)-5:]) {
				t.Errorf("suffix Range: %s, %d bytes", resp.Status, len(body))
			}
			resp, _ = get(t, c, ts.url("/hello.txt"))
			resp, body = get(t, c, ts.url("/hello.txt"), "If-Modified-Since", resp.Header.Get("Last-Modified"))
			if resp.StatusCode != 304 || body != "" {
				t.Errorf("If-Modified-Since: %s %q", resp.Status, body)
			}
			resp, body = get(t, c, ts.url("/in.txt"))
			if resp.StatusCode != 200 || body != "hello, world\n" {
				t.Errorf("symlink inside the root: %s %q", resp.Status, body)
			}
			for _, p := range []string{"/out.txt", "/outdir/secret.txt", "/abs.txt", "/sub/up.txt"} {
				resp, body := get(t, c, ts.url(p))
				if resp.StatusCode != 403 || strings.Contains(body, "SECRET") {
					t.Errorf("%s: %s %q, want 403", p, resp.Status, body)
				}
			}
			for _, p := range []string{"/nothere", "/hello.txt/x"} {
				resp, _ = get(t, c, ts.url(p))
				if resp.StatusCode != 404 {
					t.Errorf("%s: %s", p, resp.Status)
				}
			}
		})
	}
}

// TestTraversal sends request lines that net/http's client would clean.
func TestTraversal(t *testing.T) {
	_, root, _ := testTree(t)
	ts := startServer(t, http.FileServer(RootFS(root)), nil)
	for _, p := range []string{
		"/../outside/secret.txt",
		"/%2e%2e/outside/secret.txt",
		"/%2E%2E/%2e%2e/outside/secret.txt",
		"/sub/..%2f..%2foutside/secret.txt",
		"/..%5coutside%5csecret.txt",
		"/sub/../../outside/secret.txt",
		"//../outside/secret.txt",
	} {
		c, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: ts.pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		switch {
		case strings.Contains(string(body), "SECRET"):
			t.Errorf("%s: served the secret: %s", p, resp.Status)
		case resp.StatusCode != 404 && resp.StatusCode != 403 && resp.StatusCode != 400:
			t.Errorf("%s: %s, want 400, 403 or 404", p, resp.Status)
		default:
			t.Logf("%s: %s", p, resp.Status)
		}
	}
}

// TestPlainHTTPRequest sends the bytes curl sends for http:// to the TLS
// port, over crypto/tls conns (a tls.NewListener) and ktls's: the client
// reads net/http's 400 response in full and then a clean end of stream, not
// a reset (curl exit 56).
func TestPlainHTTPRequest(t *testing.T) {
	tlsListener := func(l net.Listener, cfg *ktls.Config) net.Listener { return tls.NewListener(l, cfg.TLS) }
	for _, tc := range []struct {
		name string
		wrap func(net.Listener, *ktls.Config) net.Listener
	}{{"crypto/tls", tlsListener}, {"ktls", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, http.NotFoundHandler(), tc.wrap)
			for _, req := range []string{
				"GET / HTTP/1.1\r\nHost: " + ts.addr + "\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
				"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("x", 5000),
			} {
				c, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hang
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c)
				c.Close()
				const want = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
				if err != nil || string(got) != want {
					t.Errorf("%.4s: read %q, %v; want %q and a clean EOF", req, got, err, want)
				}
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			entered := make(chan struct{})
			release := make(chan struct{})
			ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					close(entered)
					<-release
				}
				io.WriteString(w, "done")
			}), nil)
			c := ts.client(h2)
			get(t, c, ts.url("/fast")) // an idle connection to close
			slow := make(chan string, 1)
			go func() {
				resp, err := c.Get(ts.url("/slow"))
				if err != nil {
					slow <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				slow <- resp.Proto + " " + string(b)
			}()
			<-entered
			shut := make(chan error, 1)
			go func() { shut <- ts.srv.Shutdown(context.Background()) }()
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v with a request in flight", err)
			case <-time.After(200 * time.Millisecond):
			}
			ktlstest.WaitClosed(t, ts.addr) // Shutdown closes the listener first
			close(release)
			want := "HTTP/1.1 done"
			if h2 {
				want = "HTTP/2.0 done"
			}
			if got := <-slow; got != want {
				t.Errorf("in-flight request: %q, want %q", got, want)
			}
			select {
			case err := <-shut:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			if err := <-ts.served; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
			ts.served <- http.ErrServerClosed // for the cleanup
		})
	}
}

// TestCurl checks the server with the curl binary, over HTTP/1.1 and HTTP/2.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		// Not a skip: the kernel lab, where skips fail, has no curl.
		t.Log("no curl in PATH: nothing to check")
		return
	}
	_, root, big := testTree(t)
	ts := startServer(t, http.FileServer(RootFS(root)), nil)
	for _, proto := range []string{"--http1.1", "--http2"} {
		out, err := exec.Command(curl, "-sS", "-k", proto, "-o", "/dev/null",
			"-w", "%{http_code} %{http_version} %{size_download}", ts.url("/big.bin")).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v: %s", proto, err, out)
		}
		v := map[string]string{"--http1.1": "1.1", "--http2": "2"}[proto]
		if want := fmt.Sprintf("200 %s %d", v, len(big)); string(out) != want {
			t.Errorf("curl %s: %q, want %q", proto, out, want)
		}
	}
}

// TestHooks checks that handlers, ConnContext and ConnState see the
// *ktls.Conn on HTTP/1.1 and HTTP/2, and that Close ends HTTP/2 connections.
func TestHooks(t *testing.T) {
	type key struct{}
	var mu sync.Mutex
	states := map[net.Conn][]http.ConnState{}
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(ConnContextKey).(*ktls.Conn)
		mark, _ := r.Context().Value(key{}).(string)
		if !ok || mark != "marked" {
			http.Error(w, fmt.Sprintf("conn %T, mark %q", r.Context().Value(ConnContextKey), mark), 500)
			return
		}
		tx, rx := c.Mode()
		fmt.Fprintf(w, "%s tx=%v rx=%v", r.Proto, tx, rx)
	}), nil, func(s *Server) {
		s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.(*ktls.Conn); !ok {
				t.Errorf("ConnContext got a %T", c)
			}
			return context.WithValue(ctx, key{}, "marked")
		}
		s.ConnState = func(c net.Conn, st http.ConnState) {
			mu.Lock()
			states[c] = append(states[c], st)
			mu.Unlock()
		}
	})
	for _, h2 := range []bool{false, true} {
		c := ts.client(h2)
		resp, body := get(t, c, ts.url("/"))
		if resp.StatusCode != 200 {
			t.Errorf("h2=%v: %s %s", h2, resp.Status, body)
		}
		t.Logf("h2=%v: %s", h2, body)
	}
	ts.srv.Close()
	// Wait for the StateClosed calls, which come from the connections'
	// goroutines (a busy machine may take its time).
	closed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range states {
			if s[len(s)-1] != http.StateClosed {
				return false
			}
		}
		return true
	}
	for guard := time.Now().Add(30 * time.Second); !closed() && time.Now().Before(guard); {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for c, s := range states {
		if _, ok := c.(*ktls.Conn); !ok {
			t.Errorf("ConnState got a %T", c)
		}
		if s[0] != http.StateNew || s[len(s)-1] != http.StateClosed {
			t.Errorf("states %v, want new ... closed", s)
		}
	}
	if len(states) != 2 {
		t.Errorf("ConnState saw %d connections, want 2", len(states))
	}
}

func TestServeTLSCertFiles(t *testing.T) {
	cert, pool := testCert(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)

	srv := &Server{Server: http.Server{Handler: http.NotFoundHandler()}}
	if err := srv.ListenAndServe(); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("ListenAndServe without a certificate: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, certFile, keyFile) }()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.ProtoMajor != 2 {
		t.Errorf("%s %s", resp.Proto, resp.Status)
	}
	c.CloseIdleConnections()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("ServeTLS: %v", err)
	}
}

// TestHandshakeAlertNoReset: a TLS 1.3 client without the certificate the
// server requires finishes its handshake before the server refuses it, so
// the rest of its flight (Finished) is still unread when the server fails.
// The server ends the stream after its alert (certificate_required) with a
// FIN, not a reset, which could come before the client (curl) reads the
// alert.
func TestHandshakeAlertNoReset(t *testing.T) {
	ts := startServer(t, http.NotFoundHandler(), nil, func(s *Server) {
		s.Config.TLS.ClientAuth = tls.RequireAnyClientCert
	})
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hang
	c := tls.Client(raw, &tls.Config{RootCAs: ts.pool, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS13})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("read %v, want the certificate_required alert", err)
	}
	if n, err := raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after the alert: %d bytes, %v; want the end of the stream (FIN)", n, err)
	}
}
