package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// startProxy runs the proxy on a loopback port with a debug log.
func startProxy(t *testing.T, o *proxyOptions) (addr string, logs *syncBuffer) {
	t.Helper()
	o.listen = "127.0.0.1:0"
	o.level = slog.LevelDebug
	for _, d := range []*time.Duration{&o.handshakeTimeout, &o.dialTimeout, &o.grace} {
		if *d == 0 {
			*d = 5 * time.Second
		}
	}
	if o.maxConns == 0 {
		o.maxConns = 100
	}
	if err := o.check(nil); err != nil {
		t.Fatal(err)
	}
	logs = new(syncBuffer)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- o.run(ctx, func() {}, logger, func(a net.Addr) { ready <- a.String() })
		close(ready)
	}()
	addr, ok := <-ready
	if !ok {
		t.Fatalf("proxy: %v\n%s", <-done, logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs)
		}
	})
	return addr, logs
}

// echoBackend accepts plain TCP connections and hands each to serve.
func listenBackend(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// tlsBackend accepts TLS connections (crypto/tls) and hands each to serve.
func tlsBackend(t *testing.T, serve func(net.Conn)) (string, tls.Certificate) {
	t.Helper()
	cert, err := selfSigned(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String(), cert
}

// sink reads the whole stream of c, then answers with its length and
// SHA-free digest (the bytes themselves are compared by the caller through
// got), and sends back reply.
type exchange struct {
	got   chan []byte
	reply []byte
}

func (e *exchange) serve(c net.Conn) {
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		e.got <- []byte("error: " + err.Error())
		return
	}
	e.got <- b
	c.Write(e.reply)
	closeWrite(c)
	io.Copy(io.Discard, c)
}

// dialer connects to the proxy as the client side of the test: TLS when
// the proxy terminates TLS, plain TCP with --upstream-tls.
func proxyClient(t *testing.T, addr string, upstreamTLS bool) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if upstreamTLS {
		c, err = net.Dial("tcp", addr)
	} else {
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// proxyPair starts a backend running e and a proxy to it in the mode given.
func proxyPair(t *testing.T, upstreamTLS bool, o *proxyOptions, serve func(net.Conn)) (string, *syncBuffer) {
	t.Helper()
	o.upstreamTLS = upstreamTLS
	if upstreamTLS {
		addr, cert := tlsBackend(t, serve)
		o.to = addr
		dir := t.TempDir()
		o.caFile = filepath.Join(dir, "ca.pem")
		writePEM(t, o.caFile, filepath.Join(dir, "key.pem"), cert)
		o.serverName = "localhost"
	} else {
		o.to = listenBackend(t, serve)
	}
	return startProxy(t, o)
}

// TestProxy sends data both ways through the proxy in both modes, with a
// half-close each way: the client's end of stream reaches the backend, which
// then answers and ends its stream, which reaches the client.
func TestProxy(t *testing.T) {
	for _, upstreamTLS := range []bool{false, true} {
		for _, size := range []int{0, 1, 5000, 16384, 3<<20 + 7} {
			t.Run(fmt.Sprintf("upstream-tls=%v/%d", upstreamTLS, size), func(t *testing.T) {
				up, down := random(size), random(size/2+3)
				e := &exchange{got: make(chan []byte, 1), reply: down}
				addr, logs := proxyPair(t, upstreamTLS, &proxyOptions{}, e.serve)
				checkExchange(t, proxyClient(t, addr, upstreamTLS), e, up, down)
				waitLog(t, logs, "msg=connection ")
				line := logLine(logs, "msg=connection ")
				if !strings.Contains(line, " end=clean from_client="+strconv.Itoa(size)+" to_client="+strconv.Itoa(len(down))+" ") || strings.Contains(line, " err=") {
					t.Errorf("connection line %q, want end=clean from_client=%d to_client=%d", line, size, len(down))
				}
			})
		}
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// checkExchange writes up on c and half-closes it, checks that the backend
// got exactly up, then reads the reply up to the end of stream.
func checkExchange(t *testing.T, c net.Conn, e *exchange, up, down []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(up); err != nil {
		t.Fatal(err)
	}
	if err := closeWrite(c); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-e.got:
		if !bytes.Equal(got, up) {
			t.Fatalf("backend got %d bytes (%.40q), want %d", len(got), got, len(up))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backend saw no end of stream")
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, down) {
		t.Fatalf("client got %d bytes, %v; want %d", len(got), err, len(down))
	}
}

// waitLog waits for s in the log.
func waitLog(t *testing.T, logs *syncBuffer, s string) {
	t.Helper()
	// The guard only stops a hang: under emulation on a busy machine the
	// proxy can take long to get there.
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(logs.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProxyHalfCloseFromBackend: the backend ends its stream first; the
// client reads it to the end and can still send.
func TestProxyHalfCloseFromBackend(t *testing.T) {
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			got := make(chan []byte, 1)
			addr, _ := proxyPair(t, upstreamTLS, &proxyOptions{}, func(c net.Conn) {
				defer c.Close()
				c.Write([]byte("banner"))
				closeWrite(c)
				b, _ := io.ReadAll(c)
				got <- b
			})
			c := proxyClient(t, addr, upstreamTLS)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "banner" {
				t.Fatalf("client read %q, %v", b, err)
			}
			if _, err := c.Write([]byte("after")); err != nil {
				t.Fatal(err)
			}
			closeWrite(c)
			select {
			case b := <-got:
				if string(b) != "after" {
					t.Errorf("backend got %q", b)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("backend saw no end of stream")
			}
		})
	}
}

// TestProxyLimit: with --max-conns 1 a second connection is closed at once,
// and accepted again once the first is gone.
func TestProxyLimit(t *testing.T) {
	addr, logs := proxyPair(t, true, &proxyOptions{maxConns: 1}, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
	first := proxyClient(t, addr, true)
	echo(t, first, "one")
	second := proxyClient(t, addr, true)
	second.SetDeadline(time.Now().Add(30 * time.Second))
	if n, err := second.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection over the limit: read %d bytes, %v; want it closed", n, err)
	}
	if !strings.Contains(logs.String(), "connection limit reached") {
		t.Error("no limit line in the log")
	}
	first.Close()
	waitLog(t, logs, "msg=connection ")
	echo(t, proxyClient(t, addr, true), "three")
}

func echo(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(s))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != s {
		t.Fatalf("echo %q: %q, %v", s, b, err)
	}
}

// TestProxyIdle: a quiet connection is closed after the idle timeout; one
// that moves data in one direction only is not. The trickle's pauses are a
// tenth of the timeout, so that only a stall of the machine of most of the
// timeout could cut it.
func TestProxyIdle(t *testing.T) {
	const idle = 2 * time.Second
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			addr, logs := proxyPair(t, upstreamTLS, &proxyOptions{idle: idle}, func(c net.Conn) {
				defer c.Close()
				// Trickle for 1.5 idle periods, then go quiet.
				for range 15 {
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(idle / 10)
				}
				io.Copy(io.Discard, c)
			})
			c := proxyClient(t, addr, upstreamTLS)
			c.SetDeadline(time.Now().Add(time.Minute)) // a guard against hangs only
			b, err := io.ReadAll(c)
			if string(b) != strings.Repeat("x", 15) {
				t.Errorf("read %q, %v: the trickle was cut", b, err)
			}
			checkAbnormalErr(t, c, err)
			waitLog(t, logs, "msg=connection ")
			if !strings.Contains(logs.String(), "end=idle_timeout") {
				t.Error("no idle timeout in the log")
			}
		})
	}
}

// TestProxyWriteTimeout: a client that stops reading while the upstream
// sends does not hold its connection longer than --write-timeout, even
// without an idle timeout.
func TestProxyWriteTimeout(t *testing.T) {
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			addr, logs := proxyPair(t, upstreamTLS, &proxyOptions{write: time.Second}, func(c net.Conn) {
				defer c.Close()
				b := make([]byte, 64<<10)
				for {
					if _, err := c.Write(b); err != nil {
						return
					}
				}
			})
			c := proxyClient(t, addr, upstreamTLS)
			c.Write([]byte("x")) // handshake; then read nothing
			waitLog(t, logs, "msg=connection ")
			if line := logLine(logs, "msg=connection "); !strings.Contains(line, "end=write_timeout") {
				t.Errorf("connection line %q, want end=write_timeout", line)
			}
		})
	}
}

// TestProxyUnixUpstream: --to unix:PATH relays to a Unix socket, in both
// modes, half-closes included.
func TestProxyUnixUpstream(t *testing.T) {
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s")
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			o := &proxyOptions{to: "unix:" + path, upstreamTLS: upstreamTLS}
			if upstreamTLS {
				cert, err := selfSigned(nil, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
				dir := t.TempDir()
				o.caFile, o.serverName = filepath.Join(dir, "ca.pem"), "localhost"
				writePEM(t, o.caFile, filepath.Join(dir, "key.pem"), cert)
			}
			t.Cleanup(func() { ln.Close() })
			up, down := random(100000), random(70000)
			e := &exchange{got: make(chan []byte, 1), reply: down}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go e.serve(c)
				}
			}()
			addr, logs := startProxy(t, o)
			checkExchange(t, proxyClient(t, addr, upstreamTLS), e, up, down)
			waitLog(t, logs, "msg=connection ")
			if line := logLine(logs, "msg=connection "); !strings.Contains(line, "unix:"+path) || !strings.Contains(line, " end=clean ") {
				t.Errorf("connection line %q, want upstream=unix:%s end=clean", line, path)
			}
		})
	}
}

func TestProxyCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"proxy"}, "--listen and --to are required"},
		{[]string{"proxy", "--listen", ":0"}, "--listen and --to are required"},
		{[]string{"proxy", "--listen", ":0", "--to", "nohost"}, `--to "nohost": missing port in address; want HOST:PORT`},
		{[]string{"proxy", "--listen", "127.0.0.1", "--to", "h:1"}, `--listen "127.0.0.1": missing port in address; want HOST:PORT`},
		{[]string{"proxy", "--listen", ":99999", "--to", "h:1"}, `--listen ":99999": port 99999 out of range`},
		{[]string{"proxy", "--listen", ":0", "--to", "h:0"}, `--to "h:0": port "0"`},
		{[]string{"proxy", "--listen", ":0", "--to", "h:65536"}, `--to "h:65536": port 65536 out of range`},
		{[]string{"proxy", "--listen", ":0", "--to", "h:-1"}, `--to "h:-1": port -1 out of range`},
		{[]string{"proxy", "--listen", ":0", "--to", "bad host!:80"}, `--to "bad host!:80": bad host "bad host!"`},
		{[]string{"proxy", "--listen", ":0", "--to", "-h.example:80"}, `bad host "-h.example"`},
		{[]string{"proxy", "--listen", ":0", "--to", "[::1:80"}, `--to "[::1:80": missing ']' in address`},
		{[]string{"proxy", "--listen", ":0", "--to", "unix:"}, "--to unix:PATH needs the path of a socket"},
		{[]string{"proxy", "--listen", ":0", "--to", "unix:/s", "--upstream-tls"}, "needs --server-name (or --insecure)"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--write-timeout", "-1s"}, "timeouts must be positive"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "x"}, `unexpected argument "x"`},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--insecure"}, "go with --upstream-tls"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--upstream-tls", "--cert", "c", "--key", "k"}, "not with --upstream-tls"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--max-conns", "0"}, "--max-conns must be at least 1"},
		{[]string{"proxy", "--listen", ":0", "--to", "h:1", "--tx", "x"}, "want auto, kernel, user or off"},
	} {
		var stdout, stderr bytes.Buffer
		if status := run(context.Background(), tc.args, &stdout, &stderr); status != exitUsage || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("ktls %q: status %d, stderr %q; want 2, %q", tc.args, status, stderr.String(), tc.err)
		}
	}
	var stdout bytes.Buffer
	if status := run(context.Background(), []string{"help", "proxy"}, &stdout, &stdout); status != 0 || !strings.Contains(stdout.String(), "--upstream-tls") {
		t.Errorf("help proxy: %d %q", status, stdout.String())
	}
}

// TestProxyUpstreamVerify: without --ca or --insecure the backend's
// self-signed certificate is refused, and the client's connection reset.
func TestProxyUpstreamVerify(t *testing.T) {
	addr, _ := tlsBackend(t, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	paddr, logs := startProxy(t, &proxyOptions{upstreamTLS: true, to: addr})
	c := proxyClient(t, paddr, true)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Read(make([]byte, 1))
	checkAbnormalErr(t, c, err)
	waitLog(t, logs, "end=handshake_error")
	if !strings.Contains(logs.String(), "certificate") {
		t.Errorf("log does not say why")
	}
}

// ioCounters returns rchar and wchar of /proc/self/io: the bytes this
// process moved through read(2)/write(2) and the like (not splice).
func ioCounters(t *testing.T) (rchar, wchar int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("splice cannot be counted here: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "rchar":
			rchar = n
		case "wchar":
			wchar = n
		}
	}
	return rchar, wchar
}

// TestProxyInteractive: a reply of exactly one full record (16 KiB) reaches
// the client at once, while the backend keeps the connection open.
func TestProxyInteractive(t *testing.T) {
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			addr, _ := proxyPair(t, upstreamTLS, &proxyOptions{}, func(c net.Conn) {
				defer c.Close()
				b := make([]byte, 16384)
				for {
					if _, err := io.ReadFull(c, b[:1]); err != nil {
						return
					}
					c.Write(b)
				}
			})
			c := proxyClient(t, addr, upstreamTLS)
			for range 3 {
				// A reply held back waits for this deadline.
				c.SetDeadline(time.Now().Add(30 * time.Second))
				c.Write([]byte("?"))
				if _, err := io.ReadFull(c, make([]byte, 16384)); err != nil {
					t.Fatalf("reply: %v", err)
				}
			}
		})
	}
}

func TestRetryAccept(t *testing.T) {
	for _, c := range []struct {
		err   error
		retry bool
	}{
		{&net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{&net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}, true},
		{net.ErrClosed, false},
		{errors.New("other"), false},
	} {
		if got := retryAccept(c.err); got != c.retry {
			t.Errorf("retryAccept(%v) = %v, want %v", c.err, got, c.retry)
		}
	}
}

// upstreamEnd is one way for the upstream to end a connection: after
// sending "partial" and seeing the client read it, it does end(c); or
// refused is set and nothing listens.
type upstreamEnd struct {
	name    string
	tlsOnly bool // only a TLS upstream can end this way (close without close_notify)
	refused bool
	idle    time.Duration // the proxy's idle timeout
	end     func(c net.Conn)
}

var upstreamEnds = []upstreamEnd{
	{name: "reset", end: func(c net.Conn) { reset(c) }},
	{name: "truncated", tlsOnly: true, end: func(c net.Conn) { closeWrite(c.(*tls.Conn).NetConn()) }},
	{name: "refused", refused: true},
	{name: "timeout", idle: time.Second, end: func(c net.Conn) { io.Copy(io.Discard, c) }},
}

// reset closes c's TCP connection with a RST (SO_LINGER 0), under TLS if c
// is a *tls.Conn, so no close_notify is sent.
func reset(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// refusedAddr returns a loopback address nothing listens on: a socket is
// bound to it, without listen(2), until the test ends, so that connections
// are refused and the port is not handed out again (a port found free and
// closed at once was once given to the proxy's own listener, which then
// connected to itself).
func refusedAddr(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// checkAbnormalErr checks the error that ended the stream read from c: an
// internal_error alert and no close_notify when c is a TLS conn, a reset
// when it is a plain one.
func checkAbnormalErr(t *testing.T, c net.Conn, err error) {
	t.Helper()
	if _, ok := c.(*tls.Conn); ok {
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: internal error") {
			t.Errorf("TLS peer: end of stream %v, want an internal_error alert", err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("plain peer: end of stream %v, want a reset", err)
	}
}

// TestProxyUpstreamEnds: when the upstream resets, ends its TLS stream
// without close_notify, refuses the connection or stops sending until the
// idle timeout, the client is told that the stream broke: a TLS client
// gets an alert and no close_notify, a plain one a reset. Only a clean end
// (FIN, close_notify) may look like one.
func TestProxyUpstreamEnds(t *testing.T) { testProxyUpstreamEnds(t, 0, 0) }

func testProxyUpstreamEnds(t *testing.T, tx, rx ktls.Offload) {
	const partial = "partial"
	for _, upstreamTLS := range []bool{false, true} {
		for _, ue := range upstreamEnds {
			if ue.tlsOnly && !upstreamTLS {
				continue
			}
			t.Run(fmt.Sprintf("upstream-tls=%v/%s", upstreamTLS, ue.name), func(t *testing.T) {
				o := &proxyOptions{idle: ue.idle, tx: tx, rx: rx}
				var (
					addr string
					logs *syncBuffer
					read = make(chan struct{}) // the client has read partial
				)
				if ue.refused {
					o.upstreamTLS, o.insecure, o.to = upstreamTLS, upstreamTLS, refusedAddr(t)
					addr, logs = startProxy(t, o)
				} else {
					addr, logs = proxyPair(t, upstreamTLS, o, func(c net.Conn) {
						defer c.Close()
						if _, err := c.Write([]byte(partial)); err == nil {
							<-read
							ue.end(c)
						}
					})
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					// The reset of a refused plain client may come
					// before its connection is up.
					if ue.refused && upstreamTLS {
						checkAbnormalErr(t, nil, err)
						return
					}
					t.Fatal(err)
				}
				defer c.Close()
				if !upstreamTLS {
					c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				}
				c.SetDeadline(time.Now().Add(time.Minute)) // a guard against hangs only
				if !ue.refused {
					b := make([]byte, len(partial))
					if _, err := io.ReadFull(c, b); err != nil {
						t.Fatalf("read %q, %v", b, err)
					}
					close(read)
				}
				b, err := io.ReadAll(c)
				if len(b) > 0 {
					t.Errorf("read %q more", b)
				}
				checkAbnormalErr(t, c, err)
				waitLog(t, logs, " end=")
				t.Logf("%s", logLine(logs, " end="))
			})
		}
	}
}

// TestProxyClientEnds: a client that ends without close_notify (TLS) or
// with a reset (plain) is not passed on as a clean end either: a plain
// upstream gets a reset, a TLS upstream no close_notify.
func TestProxyClientEnds(t *testing.T) { testProxyClientEnds(t, 0, 0) }

func testProxyClientEnds(t *testing.T, tx, rx ktls.Offload) {
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			accepted, got := make(chan struct{}), make(chan error, 1)
			addr, logs := proxyPair(t, upstreamTLS, &proxyOptions{tx: tx, rx: rx}, func(c net.Conn) {
				defer c.Close()
				close(accepted)
				b, err := io.ReadAll(c)
				if string(b) != "hi" {
					err = fmt.Errorf("read %q: %w", b, err)
				}
				checkAbnormalErr(t, c, err)
				got <- err
			})
			c := proxyClient(t, addr, upstreamTLS)
			if _, err := c.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			// Once the proxy is connected: kernel TLS cannot be set up
			// on a TCP connection whose peer has closed its side.
			<-accepted
			if upstreamTLS {
				reset(c)
			} else {
				// The end of the TCP stream without close_notify.
				closeWrite(c.(*tls.Conn).NetConn())
			}
			select {
			case <-got:
			case <-time.After(time.Minute): // a guard against hangs only
				t.Fatal("the upstream saw no end of stream")
			}
			waitLog(t, logs, " end=")
			t.Logf("%s", logLine(logs, " end="))
		})
	}
}

// logLine returns the first line of the log that holds s.
func logLine(logs *syncBuffer, s string) string {
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestKernelProxyEnds is TestProxyUpstreamEnds and TestProxyClientEnds
// with both directions of the TLS side in the kernel, where the proxy
// splices.
func TestKernelProxyEnds(t *testing.T) {
	ktlstest.RequireKernel(t)
	t.Run("upstream", func(t *testing.T) { testProxyUpstreamEnds(t, ktls.OffloadKernel, ktls.OffloadKernel) })
	t.Run("client", func(t *testing.T) { testProxyClientEnds(t, ktls.OffloadKernel, ktls.OffloadKernel) })
}
