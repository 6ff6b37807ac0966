package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/record"
	"github.com/pires/go-proxyproto"
)

const proxyUsage = `Usage: ktls proxy --listen ADDR --to ADDR [flags]

Relay TCP connections between a TLS side and a plain side. By default the
proxy terminates TLS: it accepts TLS connections on --listen and connects
to the plain TCP backend --to (HOST:PORT, or unix:PATH for a Unix socket).
With --upstream-tls it works the other way: it accepts plain TCP on
--listen and connects to --to as a TLS client.

After each handshake the TLS side's directions go to the kernel when it has
kernel TLS (else to ktls's user-space record layer), and the bytes are
copied with splice(2) in each direction the kernel holds: they never enter
user space. A half-close is passed on: when one side ends its stream
(close_notify on the TLS side, FIN on the plain side) the other side's
sending direction is ended the same way, and the other direction goes on.
Any other end (a TLS stream ended without close_notify, a reset, a timeout,
a failed connection to --to) ends both directions: the TLS side gets an
internal_error alert and no close_notify, the plain side a TCP reset, so
that no peer takes a truncated stream for a complete one.

Each connection is logged on one line when it ends (level info): remote,
upstream, end (clean, truncated_by_client, truncated_by_upstream, reset,
idle_timeout, write_timeout, dial_error, handshake_error, proxy_header_error,
closed, error), from_client and to_client (bytes), duration, tls, suite, tx,
rx, err; with --client-ca, client_cn and client_san (the client certificate's
subject CN and first URI, else DNS, SAN).

Without --cert and --key, a self-signed ECDSA P-256 certificate is made at
start. SIGINT or SIGTERM stops accepting and waits --shutdown-timeout for
the connections open; a second signal stops at once.

Under systemd (Linux), the listening sockets it passes (socket activation,
LISTEN_FDS) replace --listen, and readiness is reported (NOTIFY_SOCKET:
READY=1, RELOADING=1, STOPPING=1); see ktls(1).

Flags:
`

// proxyOptions are the settings of ktls proxy.
type proxyOptions struct {
	listen, to       string
	upstreamTLS      bool
	serverName       string
	insecure         bool
	caFile           string
	tx, rx           ktls.Offload
	maxConns         int
	idle             time.Duration
	write            time.Duration
	handshakeTimeout time.Duration
	dialTimeout      time.Duration
	grace            time.Duration
	proxyProto       proxyProtoOptions
	certOptions
	clientAuth   clientAuthOptions
	upstreamCert upstreamCertOptions
	logOptions
}

// proxyFlags returns the flag set of ktls proxy; its Usage prints to w.
func proxyFlags(w io.Writer) (*flag.FlagSet, *proxyOptions) {
	o := &proxyOptions{}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.listen, "listen", "", "accept connections on `HOST:PORT` (required unless systemd passes listening sockets)")
	fs.StringVar(&o.to, "to", "", "connect each one to `HOST:PORT`, or to the Unix socket unix:PATH (required)")
	fs.BoolVar(&o.upstreamTLS, "upstream-tls", false, "accept plain TCP and connect to --to with TLS, instead of the reverse")
	addCertFlags(fs, &o.certOptions, " of the TLS listener")
	addClientAuthFlags(fs, &o.clientAuth)
	addUpstreamCertFlags(fs, &o.upstreamCert)
	fs.StringVar(&o.serverName, "server-name", "", "with --upstream-tls: the `NAME` to send (SNI) and verify (default: the host of --to)")
	fs.BoolVar(&o.insecure, "insecure", false, "with --upstream-tls: do not verify the server's certificate")
	fs.StringVar(&o.caFile, "ca", "", "with --upstream-tls: verify the server against the certificates in `FILE` (PEM) instead of the system's")
	fs.Func("tx", "where the TLS side's sending direction goes, `MODE` auto, kernel, user or off, as for serve (default auto)", offloadFlag(&o.tx))
	fs.Func("rx", "where the TLS side's receiving direction goes, `MODE` as for --tx (default auto)", offloadFlag(&o.rx))
	fs.IntVar(&o.maxConns, "max-conns", 1024, "at most `N` connections at once; more are closed at once")
	fs.DurationVar(&o.idle, "idle-timeout", 5*time.Minute, "close a connection when no data moved either way for `DURATION` (0: never)")
	fs.DurationVar(&o.write, "write-timeout", time.Minute, "close a connection when a peer has not taken the data sent to it for `DURATION` (0: only --idle-timeout bounds it)")
	fs.DurationVar(&o.handshakeTimeout, "handshake-timeout", 10*time.Second, "limit each TLS handshake to `DURATION`")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "limit each connection to --to to `DURATION`")
	fs.DurationVar(&o.grace, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, wait this `DURATION` for open connections")
	addLogFlags(fs, &o.logOptions, "info logs one line per connection")
	addProxyProtoFlags(fs, &o.proxyProto, true)
	fs.Usage = func() {
		fmt.Fprint(w, proxyUsage)
		printFlags(w, fs)
	}
	return fs, o
}

// runProxy runs "ktls proxy args" until ctx ends or SIGINT/SIGTERM.
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := proxyFlags(stdout)
	if status, done := parseArgs("proxy", fs, args, fs.Usage, stderr, withSockets(fs, "listen", o.check)); done {
		return status
	}
	return untilSignal(ctx, stderr, o.logOptions, "ktls proxy", o.run)
}

// check validates the options.
func (o *proxyOptions) check(pos []string) error {
	switch {
	case len(pos) > 0:
		return fmt.Errorf("unexpected argument %q", pos[0])
	case o.listen == "" && passedSockets() == 0 || o.to == "":
		return errors.New("--listen and --to are required")
	case o.certOptions.check() != nil:
		return o.certOptions.check()
	case o.clientAuth.check(!o.upstreamTLS) != nil:
		return o.clientAuth.check(!o.upstreamTLS)
	case o.upstreamCert.check(o.upstreamTLS) != nil:
		return o.upstreamCert.check(o.upstreamTLS)
	case o.upstreamTLS && (o.certOptions.given() || o.acme.enabled()):
		return errors.New("--cert, --key and --acme are for the TLS listener, not with --upstream-tls")
	case !o.upstreamTLS && (o.serverName != "" || o.insecure || o.caFile != ""):
		return errors.New("--server-name, --insecure and --ca go with --upstream-tls")
	case o.insecure && o.caFile != "":
		return errors.New("--insecure and --ca exclude each other")
	case o.maxConns < 1:
		return errors.New("--max-conns must be at least 1")
	case o.idle < 0 || o.write < 0 || o.handshakeTimeout <= 0 || o.dialTimeout <= 0:
		return errors.New("timeouts must be positive (--idle-timeout and --write-timeout may be 0)")
	}
	if o.listen != "" {
		if err := checkAddr("listen", o.listen); err != nil {
			return err
		}
	}
	if err := o.proxyProto.check(o.acme.enabled()); err != nil {
		return err
	}
	if path, ok := strings.CutPrefix(o.to, "unix:"); ok {
		switch {
		case path == "":
			return errors.New("--to unix:PATH needs the path of a socket")
		case o.upstreamTLS && o.serverName == "" && !o.insecure:
			return errors.New("--to unix:PATH with --upstream-tls needs --server-name (or --insecure)")
		}
		return nil
	}
	if err := checkAddr("to", o.to); err != nil {
		return fmt.Errorf("%w; or unix:PATH", err)
	}
	if _, port, _ := net.SplitHostPort(o.to); port == "" || port == "0" {
		return fmt.Errorf("--to %q: port %q: want 1 to 65535 or a service name", o.to, port)
	}
	return nil
}

// upstream returns the network and address to dial for --to.
func (o *proxyOptions) upstream() (network, addr string) {
	if path, ok := strings.CutPrefix(o.to, "unix:"); ok {
		return "unix", path
	}
	return "tcp", o.to
}

// proxy is a running ktls proxy.
type proxy struct {
	o      *proxyOptions
	config *ktls.Config
	certs  *certStore // of the TLS listener; nil with --upstream-tls
	logger *slog.Logger
	slots  chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// run accepts connections until ctx ends, then waits for the open ones (up
// to o.grace) and closes what is left. onStop is called when shutdown
// starts; ready, if not nil, gets the (first) listening address.
func (o *proxyOptions) run(ctx context.Context, onStop func(), logger *slog.Logger, ready func(net.Addr)) error {
	p := &proxy{o: o, logger: logger, slots: make(chan struct{}, o.maxConns), conns: make(map[net.Conn]struct{})}
	p.config = &ktls.Config{TX: o.tx, RX: o.rx}
	if o.upstreamTLS {
		name := o.serverName
		if name == "" {
			name, _, _ = net.SplitHostPort(o.to)
		}
		cfg, err := clientTLS(name, o.insecure, o.caFile)
		if err != nil {
			return err
		}
		if err := o.upstreamCert.apply(ctx, cfg, logger); err != nil {
			return err
		}
		p.config.TLS = cfg
	} else {
		certs, err := loadCerts(&o.certOptions, o.listen, "--listen", logger)
		if err != nil {
			return err
		}
		certs.watch(ctx)
		cfg, err := o.clientAuth.serverConfig(ctx, certs.tlsConfig(), logger)
		if err != nil {
			return err
		}
		p.config.TLS = cfg
		p.certs = certs
	}
	kernelErr := kernel.Supported()
	if kernelErr != nil && (o.tx == ktls.OffloadKernel || o.rx == ktls.OffloadKernel) {
		return fmt.Errorf("--tx/--rx kernel: kernel TLS is unavailable: %w", kernelErr)
	}
	lns, err := listen(o.listen, logger)
	if err != nil {
		return err
	}
	for i := range lns {
		lns[i] = p.certs.listener(o.proxyProto.listener(lns[i], logger), o.handshakeTimeout)
	}
	defer closeListeners(lns)
	side := "listen"
	if o.upstreamTLS {
		side = "upstream"
	}
	attrs := []any{"listen", lns[0].Addr().String(), "to", o.to, "tls", side, "tx", o.tx.String(), "rx", o.rx.String(),
		"max_conns", o.maxConns, "idle_timeout", o.idle, "write_timeout", o.write}
	if kernelErr == nil {
		attrs = append(attrs, "kernel_tls", "available")
	} else {
		attrs = append(attrs, "kernel_tls", "unavailable", "reason", kernelErr.Error())
	}
	logger.Info("proxying", append(attrs, "version", version())...)
	if ready != nil {
		ready(lns[0].Addr())
	}

	accepted := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { accepted <- p.accept(ctx, ln) }()
	}
	select {
	case err := <-accepted:
		if err != nil {
			// A listener broke: end the others and the connections
			// they let in too.
			closeListeners(lns)
			for range len(lns) - 1 {
				<-accepted
			}
			p.closeAll()
			p.wg.Wait()
		}
		return err
	case <-ctx.Done():
	}
	onStop()
	closeListeners(lns)
	for range lns {
		<-accepted
	}
	logger.Info("shutting down", "timeout", o.grace, "open", p.open())
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.grace):
		logger.Warn("closing the connections still open", "open", p.open())
		p.closeAll()
		<-done
	}
	logger.Info("stopped")
	return nil
}

// accept accepts connections until ln is closed. Like net/http's server it
// waits and tries again when accept fails for lack of resources (EMFILE,
// ENFILE, ENOBUFS, ENOMEM, ECONNABORTED), so that open connections, and
// the handshake timeout evicting stallers, go on.
func (p *proxy) accept(ctx context.Context, ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !retryAccept(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.logger.Warn("accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		select {
		case p.slots <- struct{}{}:
		default:
			p.logger.Warn("connection limit reached, closing", "remote", c.RemoteAddr().String(), "max_conns", p.o.maxConns)
			c.Close()
			continue
		}
		p.track(c, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.slots }()
			defer p.track(c, false)
			p.handle(ctx, c)
		}()
	}
}

// retryAccept reports whether an accept error is a passing shortage of
// resources rather than a closed or broken listener.
func retryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (p *proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *proxy) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// closeAll closes the accepted connections, which ends their relays.
func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// handle sets up both sides of one accepted connection, relays, and logs
// one line for it at level info when it ends: the client's address (with
// --accept-proxy-protocol, the one its PROXY header gives), the
// upstream, how it ended (see the end* constants), the bytes that came
// from the client and went to it, the duration, the TLS version and suite
// and where each direction of the TLS side ran (tx, rx: the TLS side's
// sending and receiving directions), and the error that ended it.
func (p *proxy) handle(ctx context.Context, c net.Conn) {
	start := time.Now()
	c, client, local, err := acceptHeader(c, p.o.handshakeTimeout)
	attrs := []slog.Attr{slog.String("remote", client.String()), slog.String("upstream", p.o.to)}
	var r relayResult
	var kc *ktls.Conn
	var plain net.Conn
	end := endProxyHeader
	if err != nil {
		c.Close()
	} else {
		kc, plain, end, err = p.connect(ctx, c, p.o.proxyProto.header(client, local))
	}
	if err != nil {
		r.end, r.err = end, err
	} else {
		defer kc.Close()
		defer plain.Close()
		tlsSide := "client"
		if p.o.upstreamTLS {
			tlsSide = "upstream"
		}
		r = relay(kc, plain, tlsSide, timeouts{idle: p.o.idle, write: p.o.write})
	}
	// in is what came in on the TLS side, out what went out on it.
	fromClient, toClient := r.in, r.out
	if p.o.upstreamTLS {
		fromClient, toClient = r.out, r.in
	}
	attrs = append(attrs, slog.String("end", r.end), slog.Int64("from_client", fromClient), slog.Int64("to_client", toClient),
		slog.Duration("duration", time.Since(start)))
	if kc != nil {
		st := kc.ConnectionState()
		tx, rx := kc.Mode()
		attrs = append(attrs, slog.String("tls", tls.VersionName(st.Version)), slog.String("suite", tls.CipherSuiteName(st.CipherSuite)),
			slog.String("tx", tx.String()), slog.String("rx", rx.String()))
		if !p.o.upstreamTLS {
			attrs = append(attrs, clientAttrs(st)...)
		}
	}
	if r.err != nil {
		attrs = append(attrs, slog.Any("err", r.err))
	}
	p.logger.LogAttrs(ctx, slog.LevelInfo, "connection", attrs...)
}

// connect makes the TLS side and the plain side of the accepted conn c,
// sending hdr (if not nil) to the upstream first.
// When it fails, it has closed c so that the client cannot take the end
// for a clean one (see abortTLS, abortPlain), and end says how it failed.
func (p *proxy) connect(ctx context.Context, c net.Conn, hdr *proxyproto.Header) (kc *ktls.Conn, plain net.Conn, end string, err error) {
	network, addr := p.o.upstream()
	if p.o.upstreamTLS {
		dctx, cancel := context.WithTimeout(ctx, p.o.dialTimeout)
		defer cancel()
		var d net.Dialer
		up, err := d.DialContext(dctx, network, addr)
		if err == nil {
			err = sendHeader(up, hdr)
		}
		if err != nil {
			if up != nil {
				up.Close()
			}
			abortPlain(c)
			return nil, nil, endDial, err
		}
		kc := ktls.Client(up, p.config)
		hctx, cancel := context.WithTimeout(ctx, p.o.handshakeTimeout)
		defer cancel()
		if err := kc.HandshakeContext(hctx); err != nil {
			up.Close()
			abortPlain(c)
			return nil, nil, endHandshake, fmt.Errorf("upstream handshake: %w", err)
		}
		return kc, c, "", nil
	}
	kc = ktls.Server(c, p.config)
	hctx, cancel := context.WithTimeout(ctx, p.o.handshakeTimeout)
	defer cancel()
	if err := kc.HandshakeContext(hctx); err != nil {
		if ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			drain(c)
		}
		c.Close()
		return nil, nil, endHandshake, fmt.Errorf("handshake: %w", err)
	}
	d := net.Dialer{Timeout: p.o.dialTimeout}
	plain, err = d.DialContext(ctx, network, addr)
	if err == nil {
		err = sendHeader(plain, hdr)
	}
	if err != nil {
		if plain != nil {
			plain.Close()
		}
		abortTLS(kc)
		return nil, nil, endDial, err
	}
	return kc, plain, "", nil
}

// How a connection ended, as its log line says (end=).
const (
	endClean     = "clean"           // both streams ended cleanly: close_notify on the TLS side, FIN on the plain side
	endTruncated = "truncated_by_"   // + "client" or "upstream": a TLS stream ended without close_notify
	endReset     = "reset"           // a peer reset its connection (ECONNRESET, EPIPE)
	endIdle      = "idle_timeout"    // no data moved either way for --idle-timeout
	endWrite     = "write_timeout"   // a peer did not take the data sent to it for --write-timeout
	endClosed    = "closed"          // closed by the proxy (shutdown)
	endError     = "error"           // any other error
	endDial      = "dial_error"      // the connection to --to failed
	endHandshake = "handshake_error" // a TLS handshake failed or timed out
)

// relayResult is what relay moved: in is the TLS side's incoming
// plaintext (copied to the plain side), out the plain side's bytes
// (sent on the TLS side).
type relayResult struct {
	in, out int64
	end     string // how the relay ended: endClean or the first other end
	err     error
}

var (
	// errIdle ends a relay that saw no data for the idle timeout.
	errIdle = errors.New("idle timeout")
	// errWrite ends a relay whose peer did not take data for the write
	// timeout.
	errWrite = errors.New("write timeout: the peer does not read")
	// errAborted ends the direction of a relay that the other one ended.
	errAborted = errors.New("relay aborted")
)

// relay copies between kc and plain in both directions until both have
// ended. A clean end of one side's stream is passed on as one: the TLS
// side's close_notify becomes a CloseWrite (FIN) of plain, plain's FIN a
// close_notify, and the other direction goes on. Any other end of either
// direction (a TLS stream ended without close_notify, a reset, a timeout,
// an error) ends both abnormally, so that neither peer can take a
// truncated stream for a complete one: the plain side is reset
// (abortPlain) and the TLS side gets a fatal alert and no close_notify
// (abortTLS). tlsSide names the peer on the TLS side, "client" or
// "upstream", for r.end.
//
// kc.WriteTo and kc.ReadFrom splice each direction the kernel holds when
// plain is a TCP connection; in user space ReadFrom seals each read in
// place and sends it at once.
func relay(kc *ktls.Conn, plain net.Conn, tlsSide string, t timeouts) relayResult {
	var (
		last    atomic.Int64 // time of the last data moved, in Unix nanoseconds
		aborted atomic.Bool
		r       relayResult
		wg      sync.WaitGroup
		once    sync.Once
	)
	last.Store(time.Now().UnixNano())
	// abort ends both directions: closing plain ends the copies' reads from
	// and writes to it, expired deadlines those on kc (pump sets no new
	// ones once aborted is set), so that kc is left to this goroutine to
	// end with an alert once both copies have returned.
	abort := func(end string, err error) {
		once.Do(func() {
			r.end, r.err = end, err
			aborted.Store(true)
			abortPlain(plain)
			kc.SetDeadline(time.Now())
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := pump(func() (int64, error) { return kc.WriteTo(plain) }, kc, plain, t, &last, &aborted)
		r.in = n
		if err == nil {
			err = closeWrite(plain)
		}
		if err != nil {
			abort(endOf(err, tlsSide), fmt.Errorf("tls to plain: %w", err))
		}
	}()
	n, err := pump(func() (int64, error) { return kc.ReadFrom(plain) }, plain, kc, t, &last, &aborted)
	r.out = n
	if err == nil {
		err = closeNotify(kc, t)
	}
	if err != nil {
		abort(endOf(err, ""), fmt.Errorf("plain to tls: %w", err))
	}
	wg.Wait()
	if r.end == "" {
		r.end = endClean
	} else {
		abortTLS(kc)
	}
	return r
}

// closeNotify ends kc's sending direction with close_notify, which ktls
// (as crypto/tls) sends with a write deadline of 5 s: it first waits,
// within the write timeout, until the peer has taken enough of the data
// sent before for the record to go out at once, so that a slow reader
// with a few seconds of data still in flight is not cut at its very end.
func closeNotify(kc *ktls.Conn, t timeouts) error {
	var deadline time.Time
	if wlimit := cmp.Or(t.write, t.idle); wlimit > 0 {
		deadline = time.Now().Add(wlimit)
	}
	kc.SetWriteDeadline(deadline)
	if err := waitWritable(kc.NetConn()); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errWrite
		}
		return err
	}
	return kc.CloseWrite()
}

// endOf classifies the error that ended a direction of a relay; tlsSide is
// the peer on the TLS side when the direction reads from it.
func endOf(err error, tlsSide string) string {
	switch {
	case errors.Is(err, ktls.ErrTruncated) && tlsSide != "":
		return endTruncated + tlsSide
	case errors.Is(err, errIdle):
		return endIdle
	case errors.Is(err, errWrite):
		return endWrite
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return endReset
	case errors.Is(err, net.ErrClosed):
		return endClosed
	}
	return endError
}

// abortTLS ends the TLS side of a connection that did not end cleanly,
// when nothing else uses kc: it sends a fatal internal_error alert and
// ends the TCP stream (FIN) before Close, so that no close_notify can go
// out. The peer sees an error, never a clean end: the alert (crypto/tls:
// "remote error: tls: internal error"), or, where the alert could not be
// sent, the end of the stream without close_notify (ktls.ErrTruncated; some
// stacks, crypto/tls among them, accept that as the end at a record
// boundary).
func abortTLS(kc *ktls.Conn) {
	kc.SetWriteDeadline(time.Now().Add(alertTimeout))
	kc.WriteRecord(record.TypeAlert, []byte{alertFatal, byte(record.AlertInternalError)})
	closeWrite(kc.NetConn())
	kc.Close()
}

const (
	// alertFatal is the level of a fatal alert (RFC 8446, Section 6).
	alertFatal = 2
	// alertTimeout bounds the sending of an alert, as crypto/tls bounds
	// that of close_notify.
	alertTimeout = 5 * time.Second
)

// abortPlain ends the plain side of a connection that did not end
// cleanly. A TCP connection is reset (SO_LINGER 0: RST), as a FIN would be
// taken for the clean end of the stream. (A Unix socket has no reset: its
// peer reads the end of the stream.)
func abortPlain(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// drain ends the stream of c after the alert of a failed handshake (such
// as a TLS 1.3 client's certificate_required, which that client reads only
// after its own handshake is complete): it sends a FIN and reads what the
// client sends until it closes its side (at most drainBytes, for at most
// alertTimeout), since closing c with unread data would send a reset,
// which may destroy the alert before the client reads it.
func drain(c net.Conn) {
	c.SetDeadline(time.Now().Add(alertTimeout))
	if closeWrite(c) == nil {
		io.Copy(io.Discard, io.LimitReader(c, drainBytes))
	}
}

// drainBytes bounds what drain reads.
const drainBytes = 256 << 10

// closeWrite shuts down the writing side of c (TCP FIN).
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// timeouts are the limits of a relay (0: none). idle ends it when no data
// moved either way for that long; write when a peer has not taken the data
// sent to it for that long (a reader that stopped), which idle also bounds
// when write is 0.
type timeouts struct{ idle, write time.Duration }

// pump runs copy (one direction, from src to dst) until it returns without
// error at the end of src's stream, or until aborted is set. With
// timeouts, src gets a read deadline a quarter of the shorter one ahead,
// so that copy returns now and then while src is quiet, and dst a write
// deadline of the write timeout (else the idle one): only a write that
// made no progress all that time (a blocked write outlives the read
// deadline) returns after it, errWrite (errIdle). pump also gives up when
// no data moved either way (last) for the idle timeout.
func pump(copy func() (int64, error), src, dst net.Conn, t timeouts, last *atomic.Int64, aborted *atomic.Bool) (int64, error) {
	wlimit, werr := t.write, errWrite
	if wlimit == 0 {
		wlimit, werr = t.idle, errIdle
	}
	tick := t.idle
	if tick == 0 || wlimit > 0 && wlimit < tick {
		tick = wlimit
	}
	tick /= 4
	var total int64
	for {
		start := time.Now()
		if tick > 0 {
			src.SetReadDeadline(start.Add(tick))
			dst.SetWriteDeadline(start.Add(wlimit))
		}
		// After the deadlines: abort sets aborted before it expires
		// them, so either this sees aborted or copy sees expired
		// deadlines.
		if aborted.Load() {
			return total, errAborted
		}
		n, err := copy()
		total += n
		now := time.Now()
		if n > 0 {
			last.Store(now.UnixNano())
		}
		if aborted.Load() {
			return total, errAborted
		}
		if err == nil || tick == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
		if now.Sub(start) >= wlimit {
			return total, werr
		}
		if t.idle > 0 && now.Sub(time.Unix(0, last.Load())) >= t.idle {
			return total, errIdle
		}
	}
}
