package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// The client address the tests' PROXY headers give, and the address it
// connected to.
var (
	headerSrc = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7).To4(), Port: 4711}
	headerDst = &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1).To4(), Port: 443}
)

// TestReadProxyHeader: readProxyHeader reads each kind of header and not a
// byte past it, whatever follows it in the same read.
func TestReadProxyHeader(t *testing.T) {
	v2 := func(h *proxyproto.Header) string {
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	src6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 65535}
	dst6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::ffff:ffff"), Port: 1}
	withTLV := proxyproto.HeaderProxyFromAddrs(2, headerSrc, headerDst)
	if err := withTLV.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hdr string
		src       string // "": no address (LOCAL, UNKNOWN)
	}{
		{"v1-tcp4", "PROXY TCP4 192.0.2.7 198.51.100.1 4711 443\r\n", "192.0.2.7:4711"},
		{"v1-tcp6", "PROXY TCP6 2001:db8::1 2001:db8::ffff:ffff 65535 1\r\n", "[2001:db8::1]:65535"},
		{"v1-unknown", "PROXY UNKNOWN\r\n", ""},
		{"v1-unknown-addrs", "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", ""},
		{"v2-tcp4", v2(proxyproto.HeaderProxyFromAddrs(2, headerSrc, headerDst)), "192.0.2.7:4711"},
		{"v2-tcp6", v2(proxyproto.HeaderProxyFromAddrs(2, src6, dst6)), "[2001:db8::1]:65535"},
		{"v2-tlv", v2(withTLV), "192.0.2.7:4711"},
		{"v2-local", v2(&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The TLS record header of a ClientHello follows in the same read.
			rest := "\x16\x03\x01\x02\x00"
			r := strings.NewReader(tc.hdr + rest)
			h, err := readProxyHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			left, _ := io.ReadAll(r)
			if string(left) != rest {
				t.Errorf("left %q after the header, want %q", left, rest)
			}
			src := ""
			if a, _, ok := h.TCPAddrs(); ok && h.Command.IsProxy() {
				src = a.String()
			}
			if src != tc.src {
				t.Errorf("source %q, want %q", src, tc.src)
			}
		})
	}
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"tls", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh", proxyproto.ErrNoProxyProtocol},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", proxyproto.ErrNoProxyProtocol},
		{"v1-long", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n", proxyproto.ErrVersion1HeaderTooLong},
		{"v1-bad", "PROXY TCP4 192.0.2.7 x 4711 443\r\n", nil},
		{"v1-short", "PROXY TCP4 192.0.2.7", io.ErrUnexpectedEOF},
		{"v2-short", v2(proxyproto.HeaderProxyFromAddrs(2, headerSrc, headerDst))[:20], io.ErrUnexpectedEOF},
		{"short", "PROX", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := readProxyHeader(strings.NewReader(tc.in))
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %+v, %v; want %v", h, err, tc.want)
			}
		})
	}
}

// headerConn sends hdr with its first Write, so that a PROXY header and
// the TLS ClientHello after it go out in one write(2), as one TCP segment.
type headerConn struct {
	net.Conn
	once sync.Once
	hdr  []byte
}

func (c *headerConn) Write(p []byte) (int, error) {
	n := -1
	var err error
	c.once.Do(func() {
		n, err = c.Conn.Write(append(c.hdr[:len(c.hdr):len(c.hdr)], p...))
		n = max(0, n-len(c.hdr))
	})
	if n >= 0 {
		return n, err
	}
	return c.Conn.Write(p)
}

// headerClient returns an HTTPS client whose connections start with a PROXY
// header of version (1 or 2) giving headerSrc.
func headerClient(t *testing.T, version byte, h2 bool) *http.Client {
	hdr, err := proxyproto.HeaderProxyFromAddrs(version, headerSrc, headerDst).Format()
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &headerConn{Conn: c, hdr: hdr}, nil
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestServeProxyProtocol: with --accept-proxy-protocol, requests whose
// connection starts with a v1 or v2 header, sent in the same segment as the
// ClientHello, are served and logged with the header's client address;
// connections without a header fail.
func TestServeProxyProtocol(t *testing.T) {
	testServeProxyProtocol(t, 0, 0)
}

// TestKernelServeProxyProtocol: after a PROXY header both directions still
// go to the kernel.
func TestKernelServeProxyProtocol(t *testing.T) {
	ktlstest.RequireKernel(t)
	testServeProxyProtocol(t, ktls.OffloadKernel, ktls.OffloadKernel)
}

func testServeProxyProtocol(t *testing.T, tx, rx ktls.Offload) {
	www, _ := tree(t, 1<<10)
	ts := startServe(t, &serveOptions{dir: www, tx: tx, rx: rx, proxyProto: proxyProtoOptions{accept: true}})
	for _, version := range []byte{1, 2} {
		for _, h2 := range []bool{false, true} {
			resp, body := get(t, headerClient(t, version, h2), "https://"+ts.addr+"/hello.txt")
			if resp.StatusCode != 200 || body != "hello\n" {
				t.Errorf("v%d h2=%v: %s %q", version, h2, resp.Status, body)
			}
		}
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, "msg=request remote="+headerSrc.String()+" "); n != 4 {
		t.Errorf("%d request lines with remote=%s, want 4", n, headerSrc)
	}
	conns := regexp.MustCompile(`msg=connection remote=(\S+) .* tx=(\S+) rx=(\S+)`).FindAllStringSubmatch(logs, -1)
	if len(conns) != 4 {
		t.Errorf("%d connection lines, want 4", len(conns))
	}
	for _, m := range conns {
		if m[1] != headerSrc.String() {
			t.Errorf("connection line with remote=%s", m[1])
		}
		if tx == ktls.OffloadKernel && (!strings.HasPrefix(m[2], "kernel-") || !strings.HasPrefix(m[3], "kernel-")) {
			t.Errorf("connection line: tx=%s rx=%s, want both in the kernel", m[2], m[3])
		}
		t.Logf("remote=%s tx=%s rx=%s", m[1], m[2], m[3])
	}
	// No header: the handshake fails.
	c, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		c.Close()
		t.Error("a connection without a PROXY header was served")
	}
	waitLog(t, ts.logs, "PROXY protocol header: "+proxyproto.ErrNoProxyProtocol.Error())
}

// serveWith returns serve's options for flags args and DIR www.
func serveWith(t *testing.T, www string, args ...string) *serveOptions {
	t.Helper()
	fs, o := serveFlags(io.Discard)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := o.check([]string{www}); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestProxyProtocolFlags checks the flags' errors.
func TestProxyProtocolFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--proxy-protocol-from", "127.0.0.1"},
		{"--accept-proxy-protocol", "--proxy-protocol-from", "127.0.0.1,x"},
		{"--accept-proxy-protocol", "--proxy-protocol-from", "10.0.0.0/33"},
	} {
		fs, o := serveFlags(io.Discard)
		if err := fs.Parse(args); err == nil && o.check(nil) == nil {
			t.Errorf("serve %q: no error", args)
		}
	}
	for _, args := range [][]string{
		{"--listen", ":1", "--to", ":2", "--send-proxy-protocol", "v3"},
		{"--listen", ":1", "--to", ":2", "--proxy-protocol-from", "::1"},
	} {
		fs, o := proxyFlags(io.Discard)
		if err := fs.Parse(args); err == nil && o.check(nil) == nil {
			t.Errorf("proxy %q: no error", args)
		}
	}
}

// TestProxyProtocolFrom: connections from outside --proxy-protocol-from
// are closed before anything is read; those from inside are served.
func TestProxyProtocolFrom(t *testing.T) {
	www, _ := tree(t, 1<<10)
	c := headerClient(t, 2, false)
	ts := startServe(t, serveWith(t, www, "--accept-proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8, 192.0.2.1,::1"))
	if _, err := c.Get("https://" + ts.addr + "/hello.txt"); err == nil {
		t.Error("a connection from 127.0.0.1 was served")
	}
	waitLog(t, ts.logs, "connection from outside --proxy-protocol-from closed")

	ts = startServe(t, serveWith(t, www, "--accept-proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8,127.0.0.0/8"))
	if resp, body := get(t, c, "https://"+ts.addr+"/hello.txt"); resp.StatusCode != 200 || body != "hello\n" {
		t.Errorf("%s %q", resp.Status, body)
	}
}

// headerBackend accepts connections that start with a PROXY header, sends
// the client address each gives on addrs, and echoes the rest (over TLS
// with cert if tlsCert).
func headerBackend(t *testing.T, tlsCert *tls.Certificate, addrs chan<- string) string {
	return listenBackend(t, func(c net.Conn) {
		defer c.Close()
		h, err := readProxyHeader(c)
		if err != nil {
			addrs <- "error: " + err.Error()
			return
		}
		src, _, _ := h.TCPAddrs()
		addrs <- fmt.Sprintf("v%d %s", h.Version, src)
		if tlsCert != nil {
			c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*tlsCert}})
		}
		io.Copy(c, c)
	})
}

// TestProxySendProxyProtocol: ktls proxy with --accept-proxy-protocol and
// --send-proxy-protocol passes the client address of the header it got
// (v1 or v2, in the same segment as what follows) on to --to in a header
// of the version asked for, before TLS with --upstream-tls, and logs it.
func TestProxySendProxyProtocol(t *testing.T) { testProxySendProxyProtocol(t, 0, 0) }

// TestKernelProxyProtocol: after a PROXY header both directions of the
// proxy's TLS side still go to the kernel.
func TestKernelProxyProtocol(t *testing.T) {
	ktlstest.RequireKernel(t)
	testProxySendProxyProtocol(t, ktls.OffloadKernel, ktls.OffloadKernel)
}

func testProxySendProxyProtocol(t *testing.T, tx, rx ktls.Offload) {
	for _, upstreamTLS := range []bool{false, true} {
		for _, send := range []byte{1, 2} {
			t.Run(fmt.Sprintf("upstream-tls=%v/send=v%d", upstreamTLS, send), func(t *testing.T) {
				addrs := make(chan string, 1)
				o := &proxyOptions{upstreamTLS: upstreamTLS, tx: tx, rx: rx, proxyProto: proxyProtoOptions{accept: true, send: send}}
				if upstreamTLS {
					cert, err := selfSigned(nil, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					o.to = headerBackend(t, &cert, addrs)
					dir := t.TempDir()
					o.caFile = filepath.Join(dir, "ca.pem")
					writePEM(t, o.caFile, filepath.Join(dir, "key.pem"), cert)
					o.serverName = "localhost"
				} else {
					o.to = headerBackend(t, nil, addrs)
				}
				addr, logs := startProxy(t, o)
				hdr, err := proxyproto.HeaderProxyFromAddrs(3-send, headerSrc, headerDst).Format()
				if err != nil {
					t.Fatal(err)
				}
				raw, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				var c net.Conn = &headerConn{Conn: raw, hdr: hdr}
				if !upstreamTLS {
					c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				}
				defer c.Close()
				echo(t, c, "ping")
				if got, want := <-addrs, fmt.Sprintf("v%d %s", send, headerSrc); got != want {
					t.Errorf("backend got %q, want %q", got, want)
				}
				c.Close()
				waitLog(t, logs, "msg=connection ")
				l := logLine(logs, "msg=connection ")
				if !strings.Contains(l, "remote="+headerSrc.String()+" ") {
					t.Errorf("log line %q, want remote=%s", l, headerSrc)
				}
				if tx == ktls.OffloadKernel && !regexp.MustCompile(`tx=kernel-\S+ rx=kernel-`).MatchString(l) {
					t.Errorf("log line %q, want tx and rx in the kernel", l)
				}
				t.Log(l)
			})
		}
	}
}

// TestProxyProtocolMissing: ktls proxy --accept-proxy-protocol ends a
// connection without a header, logging end=proxy_header_error.
func TestProxyProtocolMissing(t *testing.T) {
	dialed := make(chan struct{}, 1)
	addr, logs := startProxy(t, &proxyOptions{upstreamTLS: true, insecure: true, proxyProto: proxyProtoOptions{accept: true},
		to: listenBackend(t, func(c net.Conn) { dialed <- struct{}{}; c.Close() })})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes", n)
	}
	waitLog(t, logs, "msg=connection ")
	if l := logLine(logs, "msg=connection "); !strings.Contains(l, "end="+endProxyHeader) {
		t.Errorf("log line %q, want end=%s", l, endProxyHeader)
	}
	select {
	case <-dialed:
		t.Error("the upstream was dialed")
	default:
	}
}
