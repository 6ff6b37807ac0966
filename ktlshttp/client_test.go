package ktlshttp

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// protoHandler answers with the request's protocol and body.
var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s", r.Proto, b)
})

// countAccepts wraps a listener with one that counts accepted connections.
func countAccepts(n *atomic.Int64) func(net.Listener, *ktls.Config) net.Listener {
	return func(l net.Listener, _ *ktls.Config) net.Listener { return acceptCounter{l, n} }
}

type acceptCounter struct {
	net.Listener
	n *atomic.Int64
}

func (l acceptCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func newTransport(pool *x509.CertPool, tx, rx ktls.Offload) *Transport {
	return &Transport{Dialer: &ktls.Dialer{Config: &ktls.Config{TLS: &tls.Config{RootCAs: pool}, TX: tx, RX: rx}}}
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
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

// checkResponse checks the protocol, body, Response.TLS and ResponseConn
// of a response and returns its connection.
func checkResponse(t *testing.T, resp *http.Response, body string, major int, alpn, want string) *ktls.Conn {
	t.Helper()
	if resp.StatusCode != 200 || resp.ProtoMajor != major || body != want {
		t.Errorf("%s %s %q, want HTTP/%d 200 %q", resp.Proto, resp.Status, body, major, want)
	}
	if resp.TLS == nil || !resp.TLS.HandshakeComplete || resp.TLS.NegotiatedProtocol != alpn {
		t.Errorf("Response.TLS = %+v, want a completed handshake with ALPN %q", resp.TLS, alpn)
	}
	kc := ResponseConn(resp)
	if kc == nil {
		t.Fatal("ResponseConn = nil")
	}
	if st := kc.ConnectionState(); st.NegotiatedProtocol != alpn {
		t.Errorf("ResponseConn's ALPN %q, want %q", st.NegotiatedProtocol, alpn)
	}
	return kc
}

// TestTransport: HTTP/2 where the server chooses "h2", HTTP/1.1 where it
// chooses "http/1.1" (on the connection dialed for HTTP/2), Response.TLS
// and ResponseConn in both cases, connections reused.
func TestTransport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alpn  []string // the server's; nil: "h2", "http/1.1"
		major int
		proto string
	}{
		{"HTTP2", nil, 2, "h2"},
		{"HTTP1", []string{"http/1.1"}, 1, "http/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var accepts atomic.Int64
			ts := startServer(t, protoHandler, countAccepts(&accepts), func(s *Server) {
				s.Config.TLS.NextProtos = tc.alpn
			})
			tr := newTransport(ts.pool, ktls.OffloadAuto, ktls.OffloadAuto)
			c := &http.Client{Transport: tr}
			defer c.CloseIdleConnections()
			want := fmt.Sprintf("HTTP/%d.%d ", tc.major, 2-tc.major) // HTTP/2.0, HTTP/1.1
			var first *ktls.Conn
			for i := range 3 {
				// The first request has a body: when the server
				// chooses HTTP/1.1 it still arrives whole.
				body := fmt.Sprintf("request %d", i)
				resp, got := do(t, c, "POST", ts.url("/"), body)
				kc := checkResponse(t, resp, got, tc.major, tc.proto, want+body)
				if first == nil {
					first = kc
				} else if kc != first {
					t.Errorf("request %d on another connection", i)
				}
			}
			if n := accepts.Load(); n != 1 {
				t.Errorf("%d connections, want 1", n)
			}
			tx, rx := first.Mode()
			t.Logf("%s: tx=%v rx=%v", tc.name, tx, rx)
		})
	}
}

// TestTransportConcurrent: parallel first requests to a server that
// chooses HTTP/1.1 share one HTTP/2 dial and all succeed.
func TestTransportConcurrent(t *testing.T) {
	for _, alpn := range [][]string{nil, {"http/1.1"}} {
		ts := startServer(t, protoHandler, nil, func(s *Server) { s.Config.TLS.NextProtos = alpn })
		c := &http.Client{Transport: newTransport(ts.pool, ktls.OffloadAuto, ktls.OffloadAuto)}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", ts.url("/"), strings.NewReader(fmt.Sprint(i)))
				resp, err := c.Do(req)
				if err != nil {
					t.Errorf("ALPN %q: request %d: %v", alpn, i, err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if !strings.HasSuffix(string(b), " "+fmt.Sprint(i)) || resp.TLS == nil || ResponseConn(resp) == nil {
					t.Errorf("ALPN %q: request %d: %q, TLS %v", alpn, i, b, resp.TLS != nil)
				}
			})
		}
		wg.Wait()
		c.CloseIdleConnections()
	}
}

// TestTransportHTTPTest: the Transport against net/http's own server
// (crypto/tls) with and without HTTP/2, and plain http.
func TestTransportHTTPTest(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		srv := httptest.NewUnstartedServer(protoHandler)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		var traced atomic.Pointer[ktls.Conn]
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			kc, _ := info.Conn.(*ktls.Conn)
			traced.Store(kc)
		}}
		c := &http.Client{Transport: newTransport(pool, ktls.OffloadAuto, ktls.OffloadAuto)}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		major, alpn := 1, "http/1.1"
		if h2 {
			major, alpn = 2, "h2"
		}
		kc := checkResponse(t, resp, string(b), major, alpn, resp.Proto+" ")
		if traced.Load() != kc {
			t.Errorf("h2=%v: the caller's GotConn saw %v, want the ResponseConn", h2, traced.Load())
		}
		c.CloseIdleConnections()
		srv.Close()
	}

	srv := httptest.NewServer(protoHandler)
	defer srv.Close()
	c := &http.Client{Transport: &Transport{}}
	resp, body := do(t, c, "GET", srv.URL, "")
	if body != "HTTP/1.1 " || resp.TLS != nil || ResponseConn(resp) != nil {
		t.Errorf("http: %q, TLS %v, ResponseConn %v", body, resp.TLS, ResponseConn(resp))
	}
}

// TestTransportDisableHTTP2: DisableHTTP2 offers only "http/1.1".
func TestTransportDisableHTTP2(t *testing.T) {
	ts := startServer(t, protoHandler, nil)
	tr := newTransport(ts.pool, ktls.OffloadAuto, ktls.OffloadAuto)
	tr.DisableHTTP2 = true
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	resp, body := do(t, c, "GET", ts.url("/"), "")
	checkResponse(t, resp, body, 1, "http/1.1", "HTTP/1.1 ")
}

// TestTransportVerifies: the server's certificate is verified against the
// request's host.
func TestTransportVerifies(t *testing.T) {
	ts := startServer(t, protoHandler, nil)
	c := &http.Client{Transport: &Transport{}} // system roots
	if _, err := c.Get(ts.url("/")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Get with the system roots: %v, want a certificate error", err)
	}
}

// TestKernelTransport: with both directions required in the kernel on
// both ends, HTTP/2 and HTTP/1.1 responses arrive whole, and ResponseConn
// reports the kernel's modes.
func TestKernelTransport(t *testing.T) {
	ktlstest.RequireKernel(t)
	data := make([]byte, 1<<20+3)
	rand.Read(data)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
	for _, tc := range []struct {
		alpn  []string
		major int
	}{{nil, 2}, {[]string{"http/1.1"}, 1}} {
		ts := startServer(t, h, nil, func(s *Server) {
			s.Config.TX, s.Config.RX = ktls.OffloadKernel, ktls.OffloadKernel
			s.Config.TLS.NextProtos = tc.alpn
		})
		c := &http.Client{Transport: newTransport(ts.pool, ktls.OffloadKernel, ktls.OffloadKernel)}
		for range 2 {
			resp, body := do(t, c, "GET", ts.url("/"), "")
			if resp.ProtoMajor != tc.major || body != string(data) || resp.TLS == nil {
				t.Errorf("%s: %d bytes, TLS %v; want HTTP/%d, %d bytes", resp.Proto, len(body), resp.TLS != nil, tc.major, len(data))
			}
			kc := ResponseConn(resp)
			tx, rx := kc.Mode()
			if !tx.IsKernel() || !rx.IsKernel() {
				t.Errorf("%s: tx=%v rx=%v, want both in the kernel", resp.Proto, tx, rx)
			}
			t.Logf("%s %s: tx=%v rx=%v", resp.Proto, tls.CipherSuiteName(resp.TLS.CipherSuite), tx, rx)
		}
		c.CloseIdleConnections()
	}
}
