package ktlshttp

//lint:file-ignore SA1019 x/net/http2's Transport is deprecated in favour of net/http's own HTTP/2, which runs only on a *tls.Conn; http2.Transport with DialTLSContext is the way to speak HTTP/2 on a ktls.Conn.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"

	"github.com/ktls-go/ktls"
)

// Transport is an http.RoundTripper whose HTTPS connections are
// *ktls.Conn: each direction's records go to the kernel or the user-space
// record layer as the Dialer's ktls.Config says. Use it as an
// http.Client's Transport.
//
// net/http's own Transport, given a ktls.Conn by DialTLSContext, speaks only
// HTTP/1.1 and leaves Response.TLS nil: it recognises TLS only on a
// *tls.Conn. Transport offers the ALPN protocols "h2" and "http/1.1" and
// speaks HTTP/2 (golang.org/x/net/http2) or HTTP/1.1 (a net/http Transport)
// on the connection as negotiated, and fills in Response.TLS for both.
// An authority (host:port) that once chose HTTP/1.1 is then dialed
// offering "http/1.1" only. Plain "http" URLs go to the HTTP/1.1 transport
// over TCP. Proxies are not used: every connection goes straight to the
// server.
//
// ResponseConn returns the connection a response came on, whose Mode tells
// where its records went; an httptrace.ClientTrace's GotConn sees the same
// *ktls.Conn in GotConnInfo.Conn.
//
// A Transport must not be copied after first use, and its fields must not
// be changed after first use. It is safe for concurrent use.
type Transport struct {
	// Dialer connects and runs the handshake of each connection: its
	// NetDialer, and its Config's TLS configuration (RootCAs, client
	// certificates, session cache...) and offload policy. If
	// Config.TLS.ServerName is empty, the request's host is verified.
	// Config.TLS.NextProtos is replaced by the Transport's protocols. nil
	// is the zero ktls.Dialer: system roots, OffloadAuto in both
	// directions.
	Dialer *ktls.Dialer

	// HTTP1 configures HTTP/1.1: timeouts, idle connection limits,
	// compression, header limits. The Transport uses a clone
	// (http.Transport.Clone) whose DialTLSContext, Proxy, TLSNextProto,
	// Protocols and ForceAttemptHTTP2 it sets itself. nil means a clone of
	// http.DefaultTransport.
	HTTP1 *http.Transport

	// HTTP2 configures HTTP/2 (ReadIdleTimeout, PingTimeout, frame and
	// header sizes...). The Transport sets its DialTLSContext and uses it
	// only for the HTTP/2 connections it dials; it must not be used
	// elsewhere. nil means an http2.Transport with the HTTP/1.1 transport's
	// IdleConnTimeout and DisableCompression.
	HTTP2 *http2.Transport

	// DisableHTTP2 offers only "http/1.1".
	DisableHTTP2 bool

	once   sync.Once
	h1, h2 *ktls.Dialer // offering "http/1.1", and "h2" and "http/1.1"
	t1     *http.Transport
	t2     *http2.Transport

	mu    sync.Mutex
	http1 map[string]bool // authorities that chose HTTP/1.1
}

// init builds the two transports on first use.
func (t *Transport) init() {
	t.once.Do(func() {
		d := t.Dialer
		if d == nil {
			d = &ktls.Dialer{}
		}
		t.h1 = &ktls.Dialer{NetDialer: d.NetDialer, Config: withALPN(d.Config, "http/1.1")}
		t.h2 = &ktls.Dialer{NetDialer: d.NetDialer, Config: withALPN(d.Config, http2.NextProtoTLS, "http/1.1")}

		if t.HTTP1 != nil {
			t.t1 = t.HTTP1.Clone()
		} else {
			t.t1 = http.DefaultTransport.(*http.Transport).Clone()
		}
		t.t1.Proxy = nil
		t.t1.ForceAttemptHTTP2 = false
		t.t1.Protocols = nil
		t.t1.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		t.t1.DialTLSContext = t.dialHTTP1

		t.t2 = t.HTTP2
		if t.t2 == nil {
			t.t2 = &http2.Transport{IdleConnTimeout: t.t1.IdleConnTimeout, DisableCompression: t.t1.DisableCompression}
		}
		t.t2.DialTLSContext = t.dialHTTP2
		t.http1 = make(map[string]bool)
	})
}

// withALPN returns a copy of c offering the ALPN protocols protos.
func withALPN(c *ktls.Config, protos ...string) *ktls.Config {
	c = c.Clone()
	if c == nil {
		c = &ktls.Config{}
	}
	if c.TLS == nil {
		c.TLS = &tls.Config{}
	}
	c.TLS.NextProtos = protos
	return c
}

// RoundTrip sends req on a connection to its host, HTTP/2 or HTTP/1.1 as
// the server chose in ALPN, and returns the response with Response.TLS set
// for https. The response's Request is req with a context of the
// Transport's own (which ResponseConn reads).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
	rc := &respConn{}
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: rc.gotConn})
	req = req.WithContext(context.WithValue(ctx, respConnKey{}, rc))

	var resp *http.Response
	var err error
	key := authority(req)
	if req.URL.Scheme == "https" && !t.DisableHTTP2 && !t.isHTTP1(key) {
		resp, err = t.t2.RoundTrip(req)
		if spare, ok := errors.AsType[*http1Conn](err); ok {
			// The server chose HTTP/1.1: use the connection for it.
			t.mu.Lock()
			t.http1[key] = true
			t.mu.Unlock()
			req = req.WithContext(context.WithValue(req.Context(), spareKey{}, spare))
			resp, err = t.t1.RoundTrip(req)
			if c := spare.take(); c != nil {
				c.Close() // the HTTP/1.1 transport had a connection already
			}
		}
	} else {
		resp, err = t.t1.RoundTrip(req)
	}
	if resp != nil && resp.TLS == nil {
		if c := rc.conn.Load(); c != nil {
			cs := c.ConnectionState()
			resp.TLS = &cs
		}
	}
	return resp, err
}

// CloseIdleConnections closes the connections, HTTP/1.1 and HTTP/2, that
// carry no request now. http.Client.CloseIdleConnections calls it.
func (t *Transport) CloseIdleConnections() {
	t.init()
	t.t1.CloseIdleConnections()
	t.t2.CloseIdleConnections()
}

// authority returns the host:port a request's connection goes to.
func authority(req *http.Request) string {
	port := req.URL.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(req.URL.Hostname(), port)
}

func (t *Transport) isHTTP1(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.http1[key]
}

// dialHTTP2 dials a connection for the HTTP/2 transport. A server that
// does not choose "h2" gets its connection passed back to RoundTrip in an
// *http1Conn error.
func (t *Transport) dialHTTP2(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
	c, err := t.h2.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	kc := c.(*ktls.Conn)
	if kc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		return nil, &http1Conn{addr: addr, c: kc}
	}
	return kc, nil
}

// dialHTTP1 dials a connection for the HTTP/1.1 transport, or hands it the
// connection dialHTTP2 got for the request.
func (t *Transport) dialHTTP1(ctx context.Context, network, addr string) (net.Conn, error) {
	if spare, ok := ctx.Value(spareKey{}).(*http1Conn); ok && spare.addr == addr {
		if c := spare.take(); c != nil {
			return c, nil
		}
	}
	return t.h1.DialContext(ctx, network, addr)
}

// http1Conn is a connection on which the server chose HTTP/1.1 when
// offered HTTP/2, on its way from the HTTP/2 dial back to RoundTrip: the
// error of the HTTP/2 transport's dial, and a value of the context given to
// the HTTP/1.1 transport.
type http1Conn struct {
	addr  string
	c     *ktls.Conn
	taken atomic.Bool
}

func (e *http1Conn) Error() string {
	return "ktlshttp: " + e.addr + " chose HTTP/1.1"
}

// take returns the connection to the first caller, nil to the others
// (requests that waited for the same HTTP/2 dial share the error).
func (e *http1Conn) take() *ktls.Conn {
	if e.taken.Swap(true) {
		return nil
	}
	return e.c
}

type spareKey struct{}

type respConnKey struct{}

// respConn notes the connection a request got.
type respConn struct {
	conn atomic.Pointer[ktls.Conn]
}

func (r *respConn) gotConn(info httptrace.GotConnInfo) {
	if c, ok := info.Conn.(*ktls.Conn); ok {
		r.conn.Store(c)
	}
}

// ResponseConn returns the connection that carried resp, a response of a
// Transport: its Mode tells where each direction's records go, its
// ConnectionState what the handshake negotiated. It returns nil for other
// responses and for "http" URLs. The connection belongs to the Transport
// (it may carry other requests, and is closed when idle): only look at it;
// do not read, write or close it.
func ResponseConn(resp *http.Response) *ktls.Conn {
	if resp == nil || resp.Request == nil {
		return nil
	}
	if rc, ok := resp.Request.Context().Value(respConnKey{}).(*respConn); ok {
		return rc.conn.Load()
	}
	return nil
}
