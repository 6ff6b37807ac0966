// Package ktlshttp serves net/http handlers over kernel TLS: HTTP/1.1 and
// HTTP/2 on *ktls.Conn connections. Its Transport is the client side: an
// http.RoundTripper speaking HTTP/1.1 or HTTP/2 on *ktls.Conn connections.
//
// net/http starts HTTP/2 only on a *tls.Conn, so this package does what
// http.Server.ServeTLS does for crypto/tls: it
// runs the TLS handshake of every accepted connection (offering the ALPN
// protocols "h2" and "http/1.1"), hands connections that negotiated "h2" to
// golang.org/x/net/http2, and gives the others to http.Server for HTTP/1.x.
// Request.TLS is set in both cases, from the connection's ConnectionState.
// A plaintext HTTP request on the TLS port is answered "400 Bad Request" as
// net/http answers it, and its connection closed without a reset.
//
// On HTTP/1.1, net/http copies a response body (http.FileServer,
// http.ServeContent, io.Copy to the ResponseWriter) through the connection's
// ReadFrom, which a ktls.Conn turns into sendfile(2) when its transmit
// direction is in the kernel and the source is an *os.File. http.Dir and
// RootFS open *os.File values; http.FS wraps them and loses sendfile.
// Handlers that wrap the http.ResponseWriter keep that path only if the
// wrapper has a ReadFrom method passing through to the wrapped writer.
// HTTP/2 frames every DATA frame in user space and never uses sendfile.
// Around that ReadFrom the connection is corked (ktls.Conn.Cork): the
// response header waits for the body's first bytes and goes in the same
// record, so a small file is one record, not two. The Server does this by
// wrapping its Handler (set when it starts serving) and each HTTP/1.x
// ResponseWriter; the wrapper passes Flush, Hijack and Unwrap (for
// http.ResponseController) on.
//
// The smallest server:
//
//	cert, _ := tls.LoadX509KeyPair("cert.pem", "key.pem")
//	ln, _ := net.Listen("tcp", ":8443")
//	cfg := &ktls.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
//	log.Fatal(ktlshttp.Serve(ln, http.FileServer(http.Dir(".")), cfg))
package ktlshttp

//lint:file-ignore SA1019 x/net/http2's Server is deprecated in favour of net/http's own HTTP/2, which runs only on a *tls.Conn; http2.Server.ServeConn is the way to serve HTTP/2 on a ktls.Conn.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/acceptq"
)

// Serve accepts TCP connections on l and serves HTTP/1.1 and HTTP/2 requests
// over kernel TLS on them, calling h for each request (http.DefaultServeMux
// when h is nil). cfg carries the TLS configuration, which must hold a
// certificate, and the kernel offload policy. Serve always returns a non-nil
// error and closes l.
func Serve(l net.Listener, h http.Handler, cfg *ktls.Config) error {
	srv := &Server{Server: http.Server{Handler: h}, Config: cfg}
	return srv.Serve(l)
}

// ListenAndServeTLS listens on the TCP address addr and serves h over kernel
// TLS with the certificate and key in the PEM files certFile and keyFile, like
// http.ListenAndServeTLS, with the default kernel offload policy.
func ListenAndServeTLS(addr, certFile, keyFile string, h http.Handler) error {
	srv := &Server{Server: http.Server{Addr: addr, Handler: h}}
	return srv.ListenAndServeTLS(certFile, keyFile)
}

// Server is an HTTPS server whose connections are *ktls.Conn. It mirrors
// http.Server: set the embedded http.Server's fields (Handler, timeouts,
// MaxHeaderBytes, ErrorLog, BaseContext, ConnContext, ConnState) as usual and
// call Serve, ListenAndServeTLS, Shutdown or Close on the Server itself. The
// embedded TLSConfig and TLSNextProto fields are not used for the handshake:
// the TLS configuration is Config.TLS.
//
// ConnContext and ConnState are called with the *ktls.Conn of the connection,
// after its handshake, for HTTP/1.x and HTTP/2 connections alike; ConnState
// sees no StateHijacked for HTTP/2. Handlers find the connection in the
// request's context under ConnContextKey.
//
// A Server must not be copied after first use.
type Server struct {
	http.Server

	// Config holds the TLS configuration (Config.TLS) and the kernel offload
	// policy of each direction. If Config.TLS.NextProtos is empty, the
	// server offers "h2" and "http/1.1"; otherwise it offers NextProtos as
	// given, and HTTP/2 only if it is listed. A nil Config is only allowed
	// with ListenAndServeTLS or ServeTLS given a certificate.
	Config *ktls.Config

	// HTTP2 configures HTTP/2; nil means the defaults of http2.Server.
	HTTP2 *http2.Server

	// HandshakeTimeout bounds each TLS handshake. Zero means the smallest
	// positive one of ReadHeaderTimeout, ReadTimeout and WriteTimeout, as
	// net/http does for crypto/tls, and no limit if none is set.
	HandshakeTimeout time.Duration

	once    sync.Once
	initErr error
	h2      *http2.Server
	// goAway is an http.Server with no listeners or connections on which
	// http2.ConfigureServer registered its shutdown hook: each call of
	// goAway.Shutdown sends GOAWAY on every HTTP/2 connection of h2.
	goAway http.Server

	mu      sync.Mutex
	h2conns map[net.Conn]struct{} // HTTP/2 connections being served
	wg      sync.WaitGroup        // handshakes and HTTP/2 connections in progress
}

// ConnContextKey is the context key under which a request's context holds
// the connection the request came on, a net.Conn: the *ktls.Conn, unless
// the listener's connections were TLS connections of another type.
var ConnContextKey = &contextKey{"ktls-conn"}

type contextKey struct{ name string }

func (k *contextKey) String() string { return "ktlshttp context value " + k.name }

// init sets up HTTP/2 once, makes Shutdown of the embedded http.Server send
// GOAWAY on the HTTP/2 connections, and makes ConnContext put the
// connection in the context.
func (s *Server) init() error {
	s.once.Do(func() {
		user := s.ConnContext
		s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			ctx = context.WithValue(ctx, ConnContextKey, c)
			if user != nil {
				ctx = user(ctx, c)
			}
			return ctx
		}
		s.Handler = corkHandler{s.Handler}
		s.h2 = s.HTTP2
		if s.h2 == nil {
			s.h2 = new(http2.Server)
		}
		if s.h2.IdleTimeout == 0 {
			// As http2.ConfigureServer would do with the embedded Server.
			s.h2.IdleTimeout = s.IdleTimeout
			if s.h2.IdleTimeout == 0 {
				s.h2.IdleTimeout = s.ReadTimeout
			}
		}
		s.initErr = http2.ConfigureServer(&s.goAway, s.h2)
		s.RegisterOnShutdown(s.sendGoAway)
		s.h2conns = make(map[net.Conn]struct{})
	})
	return s.initErr
}

// Serve accepts connections on l and serves them until l fails or the Server
// is shut down, when it returns http.ErrServerClosed. Connections from l that
// are plain TCP are wrapped with ktls.Server and Config. Connections that
// already are TLS connections (they have HandshakeContext and ConnectionState
// methods, as *ktls.Conn from ktls.NewListener has) are used as they are;
// Config then plays no part, and the listener's own configuration should
// offer "h2" for HTTP/2.
//
// Serve always returns a non-nil error and closes l.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(l, s.Config)
}

// ServeTLS is Serve with the certificate and key in the PEM files certFile
// and keyFile. As in http.Server.ServeTLS, they may be empty if Config.TLS
// already holds a certificate (Certificates, GetCertificate or
// GetConfigForClient).
func (s *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	cfg, err := s.withCert(certFile, keyFile)
	if err != nil {
		l.Close()
		return err
	}
	return s.serve(l, cfg)
}

// ListenAndServe listens on the TCP address s.Addr (":https" if empty) and
// serves over kernel TLS with Config, which must hold a certificate.
func (s *Server) ListenAndServe() error {
	return s.ListenAndServeTLS("", "")
}

// ListenAndServeTLS listens on the TCP address s.Addr (":https" if empty) and
// calls ServeTLS.
func (s *Server) ListenAndServeTLS(certFile, keyFile string) error {
	// Check the certificate before taking the port, as net/http does not.
	cfg, err := s.withCert(certFile, keyFile)
	if err != nil {
		return err
	}
	addr := s.Addr
	if addr == "" {
		addr = ":https"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.serve(l, cfg)
}

// Shutdown shuts the server down gracefully as http.Server.Shutdown does:
// it closes the listeners and aborts handshakes in progress, closes idle
// HTTP/1.x connections, sends GOAWAY on HTTP/2 connections, and waits for
// all connections to finish their requests or for ctx to end, when it
// returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	if err := s.Server.Shutdown(ctx); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	// An HTTP/2 connection whose handshake ended just as the listener
	// closed may have missed the first GOAWAY: send it again now and then.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			s.sendGoAway()
		}
	}
}

// sendGoAway starts the graceful shutdown of every HTTP/2 connection.
func (s *Server) sendGoAway() {
	s.goAway.Shutdown(context.Background())
}

// Close closes the listeners and all connections at once, HTTP/2 ones
// included, as http.Server.Close does. It returns the error of closing the
// listeners.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	err := s.Server.Close()
	s.mu.Lock()
	for c := range s.h2conns {
		c.Close()
	}
	s.mu.Unlock()
	return err
}

// withCert returns the TLS configuration to serve with, the certificate in
// certFile and keyFile added as http.Server.ServeTLS does.
func (s *Server) withCert(certFile, keyFile string) (*ktls.Config, error) {
	cfg := cloneConfig(s.Config)
	t := cfg.TLS
	hasCert := len(t.Certificates) > 0 || t.GetCertificate != nil || t.GetConfigForClient != nil
	if !hasCert && certFile == "" && keyFile == "" {
		return nil, errors.New("ktlshttp: no certificate: Config.TLS has none and no certificate files were given")
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// cloneConfig returns a new ktls.Config with the policies of cfg and a clone
// of its TLS configuration (never nil). A nil cfg is an empty one.
func cloneConfig(cfg *ktls.Config) *ktls.Config {
	c := cfg.Clone()
	if c == nil {
		c = new(ktls.Config)
	}
	if c.TLS == nil {
		c.TLS = new(tls.Config)
	}
	return c
}

func (s *Server) serve(l net.Listener, cfg *ktls.Config) error {
	if err := s.init(); err != nil {
		l.Close()
		return err
	}
	// Without a certificate, handshakes fail with crypto/tls's error.
	c := cloneConfig(cfg)
	if len(c.TLS.NextProtos) == 0 {
		c.TLS.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
	}
	hl := &listener{Listener: acceptq.New(l), srv: s, cfg: c}
	hl.ctx, hl.cancel = context.WithCancel(context.Background())
	hl.baseCtx = context.Background()
	if s.BaseContext != nil {
		hl.baseCtx = s.BaseContext(hl)
		if hl.baseCtx == nil {
			panic("BaseContext returned a nil context")
		}
	}
	hl.Start(hl.handshake, &s.wg)
	return s.Server.Serve(hl)
}

// tlsConn is what Serve needs from a connection: a net.Conn that runs a TLS
// handshake and reports its state afterwards, as *ktls.Conn and *tls.Conn do.
type tlsConn interface {
	net.Conn
	HandshakeContext(ctx context.Context) error
	ConnectionState() tls.ConnectionState
}

// listener is the net.Listener given to http.Server.Serve. A goroutine
// accepts TCP connections from the wrapped listener and handshakes each one in
// its own goroutine; connections that negotiated HTTP/2 are served there, the
// others are returned by Accept. The goroutines are counted in the Server's
// wg, for Shutdown.
type listener struct {
	*acceptq.Listener
	srv     *Server
	cfg     *ktls.Config
	baseCtx context.Context // from Server.BaseContext, for HTTP/2 connections

	ctx    context.Context // ends handshakes when the listener closes
	cancel context.CancelFunc
}

// Close closes the wrapped listener and aborts the handshakes in progress.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.cancel()
	return err
}

// handshake runs the TLS handshake of c and dispatches it on the negotiated
// protocol.
func (l *listener) handshake(c net.Conn) {
	tc, isTLS := c.(tlsConn)
	if !isTLS {
		tc = ktls.Server(c, l.cfg)
	}
	if d := l.srv.handshakeTimeout(); d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	if err := tc.HandshakeContext(l.ctx); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// The TCP connection: c itself, unless c is a TLS conn over it.
			raw := c
			if isTLS {
				raw = re.Conn
			}
			refuseHTTP(raw)
			err = errors.New("client sent an HTTP request to an HTTPS server")
		} else if !isTLS && l.ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// After the alert crypto/tls sent, such as a TLS 1.3
			// client's certificate_required, which that client reads
			// only after its own handshake is complete and its first
			// request sent.
			c.SetDeadline(time.Now().Add(refuseWait))
			drain(c)
		}
		tc.Close()
		if l.ctx.Err() == nil {
			l.srv.logf("http: TLS handshake error from %s: %v", c.RemoteAddr(), err)
		}
		return
	}
	tc.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS {
		l.serveHTTP2(tc)
		return
	}
	l.Pass(tc)
}

// serveHTTP2 serves an HTTP/2 connection until it ends, with the contexts and
// ConnState calls net/http gives its own HTTP/2 connections.
func (l *listener) serveHTTP2(c tlsConn) {
	s := l.srv
	s.mu.Lock()
	select {
	case <-l.Done():
		s.mu.Unlock()
		c.Close()
		return
	default:
	}
	s.h2conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.h2conns, c)
		s.mu.Unlock()
	}()

	ctx := s.ConnContext(context.WithValue(l.baseCtx, http.ServerContextKey, &s.Server), c)
	if ctx == nil {
		panic("ConnContext returned nil")
	}
	if s.ConnState != nil {
		s.ConnState(c, http.StateNew)
	}
	s.h2.ServeConn(c, &http2.ServeConnOpts{Context: ctx, BaseConfig: &s.Server})
	c.Close()
	if s.ConnState != nil {
		s.ConnState(c, http.StateClosed)
	}
}

// handshakeTimeout is HandshakeTimeout or what net/http uses for crypto/tls.
func (s *Server) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout != 0 {
		return s.HandshakeTimeout
	}
	var d time.Duration
	for _, t := range []time.Duration{s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// refuseHTTP answers a plaintext HTTP request on c, the TCP connection, as
// net/http does, and ends the connection cleanly (drain), for at most
// refuseWait.
func refuseHTTP(c net.Conn) {
	c.SetDeadline(time.Now().Add(refuseWait))
	if _, err := io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"); err != nil {
		return
	}
	drain(c)
}

// drain ends the stream of c, the TCP connection, cleanly after a last
// answer (an HTTP 400, a TLS alert): it sends a FIN and reads what the
// client sent until the client closes its side (at most refuseDrain bytes,
// until c's deadline), since closing a socket with unread data would send a
// reset, which may destroy the answer before the client reads it.
func drain(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		io.Copy(io.Discard, io.LimitReader(c, refuseDrain))
	}
}

// Bounds of the wait for the client to close (refuseHTTP, drain).
const (
	refuseWait  = 2 * time.Second
	refuseDrain = 256 << 10
)

// looksLikeHTTP reports whether a TLS record header is the start of a
// plaintext HTTP request, as net/http checks.
func looksLikeHTTP(hdr [5]byte) bool {
	return slices.Contains([]string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"}, string(hdr[:]))
}

// corkHandler is the Server's handler: h, with the http.ResponseWriter of an
// HTTP/1.x request on a *ktls.Conn (a corker) wrapped in a corkWriter.
type corkHandler struct{ h http.Handler }

func (ch corkHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := ch.h
	if h == nil {
		h = http.DefaultServeMux
	}
	if c, ok := r.Context().Value(ConnContextKey).(corker); ok && r.ProtoMajor == 1 {
		if rw, ok := w.(http1Writer); ok {
			w = &corkWriter{http1Writer: rw, c: c}
		}
	}
	h.ServeHTTP(w, r)
}

// http1Writer is what net/http's HTTP/1.x ResponseWriter implements and
// corkWriter passes on.
type http1Writer interface {
	http.ResponseWriter
	io.ReaderFrom
	io.StringWriter
	http.Flusher
	http.Hijacker
	http.CloseNotifier
}

// corkWriter corks the connection (ktls.Conn.Cork) around ReadFrom, which
// net/http uses to send a file body: it writes the response header (with the
// body's first 512 bytes, read to sniff the content type) to the connection
// and then hands the rest to the connection's ReadFrom (sendfile(2) in the
// kernel). Corked, the header waits for the body and both go in one record:
// a small file makes one record and one write, not two. The connection is
// uncorked before ReadFrom returns, so nothing stays held (a HEAD request or
// an empty file send their header at the end of the handler, as without the
// cork; a handler's Flush is never corked). Unwrap gives the ResponseWriter
// to http.ResponseController.
type corkWriter struct {
	http1Writer
	c corker
}

// corker is the part of *ktls.Conn that corkWriter uses.
type corker interface {
	Cork()
	Uncork() error
}

func (w *corkWriter) ReadFrom(r io.Reader) (n int64, err error) {
	w.c.Cork()
	defer func() {
		if uerr := w.c.Uncork(); err == nil {
			err = uerr
		}
	}()
	return w.http1Writer.ReadFrom(r)
}

func (w *corkWriter) Unwrap() http.ResponseWriter { return w.http1Writer }
