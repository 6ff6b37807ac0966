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
				waitLog(t, logs, "msg=closed")
				if !upstreamTLS && !strings.Contains(logs.String(), "tls_in="+strconv.Itoa(size)+" tls_out="+strconv.Itoa(len(down))) {
					t.Errorf("closed line does not count %d and %d bytes", size, len(down))
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
	for i := 0; !strings.Contains(logs.String(), s); i++ {
		if i == 500 {
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
	second.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatalf("second connection over the limit read %d bytes", n)
	}
	if !strings.Contains(logs.String(), "connection limit reached") {
		t.Error("no limit line in the log")
	}
	first.Close()
	waitLog(t, logs, "msg=closed")
	echo(t, proxyClient(t, addr, true), "three")
}

func echo(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(s))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != s {
		t.Fatalf("echo %q: %q, %v", s, b, err)
	}
}

// TestProxyIdle: a quiet connection is closed after the idle timeout; one
// that moves data in one direction only is not.
func TestProxyIdle(t *testing.T) {
	const idle = 400 * time.Millisecond
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			addr, logs := proxyPair(t, upstreamTLS, &proxyOptions{idle: idle}, func(c net.Conn) {
				defer c.Close()
				// Trickle for 3 idle periods, then go quiet.
				for range 12 {
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(idle / 4)
				}
				io.Copy(io.Discard, c)
			})
			c := proxyClient(t, addr, upstreamTLS)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			b, err := io.ReadAll(c)
			d := time.Since(start)
			if string(b) != strings.Repeat("x", 12) {
				t.Errorf("read %q, %v: the trickle was cut", b, err)
			}
			if d < 3*idle || d > 3*idle+3*idle {
				t.Errorf("closed after %v, want about %v", d, 3*idle+idle)
			}
			waitLog(t, logs, "msg=closed")
			if !strings.Contains(logs.String(), "idle timeout") {
				t.Error("no idle timeout in the log")
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
		{[]string{"proxy", "--listen", ":0", "--to", "nohost"}, "--to: address nohost: missing port"},
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
// self-signed certificate is refused.
func TestProxyUpstreamVerify(t *testing.T) {
	addr, _ := tlsBackend(t, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	paddr, logs := startProxy(t, &proxyOptions{upstreamTLS: true, to: addr})
	c := proxyClient(t, paddr, true)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read: %v, want EOF", err)
	}
	waitLog(t, logs, "connection failed")
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

// TestProxyTruncated: a TLS client that ends its TCP stream without
// close_notify is passed on as a FIN and logged as truncated.
func TestProxyTruncated(t *testing.T) {
	e := &exchange{got: make(chan []byte, 1), reply: []byte("bye")}
	addr, logs := proxyPair(t, false, &proxyOptions{}, e.serve)
	c := proxyClient(t, addr, false).(*tls.Conn)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	c.NetConn().(*net.TCPConn).CloseWrite()
	if got := <-e.got; string(got) != "hi" {
		t.Errorf("backend got %q", got)
	}
	if b, err := io.ReadAll(c); string(b) != "bye" {
		t.Errorf("client read %q, %v", b, err)
	}
	waitLog(t, logs, "msg=closed")
	if !strings.Contains(logs.String(), "truncated=true") {
		t.Error("not logged as truncated")
	}
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
				c.SetDeadline(time.Now().Add(3 * time.Second))
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
