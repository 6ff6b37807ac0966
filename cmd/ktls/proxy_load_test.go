package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestProxyLoad runs ktls proxy (terminating TLS) under 2,000 concurrent
// connections on loopback.
func TestProxyLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	cfg := hostLoad()
	// Each connection takes four descriptors in this process: the
	// client's, the proxy's two and the backend's.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		cfg.conns = min(cfg.conns, (int(rl.Cur)-2*cfg.stallers-200)/4)
	}
	testProxyLoad(t, cfg)
}

// TestKernelProxyLoad is TestProxyLoad at the scale of the emulated lab
// with both directions of the TLS side in the kernel.
func TestKernelProxyLoad(t *testing.T) {
	ktlstest.RequireKernel(t)
	testProxyLoad(t, loadConfig{conns: 50, bigEvery: 5, slowEvery: 3, stallers: 10, tx: ktls.OffloadKernel, rx: ktls.OffloadKernel})
}

// openFDs counts the open file descriptors of this process.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting file descriptors: %v", err)
	}
	return len(fds)
}

// hashBackend serves the load test's protocol on a plain connection: the
// client sends the size n of the reply (8 bytes, big endian) and then its
// stream up to its end; the backend sends data[:n] while it reads, then the
// SHA-256 of the stream it got, and ends its own.
func hashBackend(data []byte) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(loadGuard))
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint64(hdr[:])
		if n > uint64(len(data)) {
			return
		}
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(data[:n])
			wrote <- err
		}()
		h := sha256.New()
		_, err := io.Copy(h, c)
		if werr := <-wrote; err != nil || werr != nil {
			return
		}
		c.Write(h.Sum(nil))
		closeWrite(c)
	}
}

// testProxyLoad starts a plain backend and ktls proxy in front of it with
// a 30 s handshake timeout, opens cfg.stallers TCP connections that never
// finish a handshake (half of them send the start of a ClientHello), then
// cfg.conns TLS clients (a few handshakes at a time, see handshakesAtOnce)
// that wait until all of them are connected and then
// each send a stream and receive one at the same time: 256 KiB up and 1 MiB
// down for every cfg.bigEvery-th (the others 4 KiB each way), some reading
// slowly. Both streams are checked by SHA-256, no well-behaved client may
// see an error and the proxy must log every relay as ended cleanly, the
// stallers must be evicted by the handshake timeout, and the goroutines and
// open file descriptors must come back to their levels before the proxy
// started.
func testProxyLoad(t *testing.T, cfg loadConfig) {
	const (
		small, bigUp, bigDown = 4 << 10, 256 << 10, 1 << 20
		// Long enough that no well-behaved client's handshake (a few
		// at a time, see handshakesAtOnce) reaches it on a starved
		// machine or under emulation: it only has to evict stallers.
		handshakeTimeout = 30 * time.Second
	)
	data := random(bigDown)
	sums := map[int]string{}
	for _, n := range []int{small, bigUp, bigDown} {
		s := sha256.Sum256(data[:n])
		sums[n] = string(s[:])
	}

	runtime.GC()
	goroutinesBefore, fdsBefore := runtime.NumGoroutine(), openFDs(t)
	start := time.Now()
	t.Run("proxy", func(t *testing.T) {
		backend := listenBackend(t, hashBackend(data))
		addr, logs := startProxy(t, &proxyOptions{to: backend, tx: cfg.tx, rx: cfg.rx,
			maxConns: cfg.conns + cfg.stallers + 100, handshakeTimeout: handshakeTimeout, grace: 10 * time.Second})

		// Stallers first: they hold their sockets through the whole run.
		stallers := make([]net.Conn, 0, cfg.stallers)
		for i := range cfg.stallers {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("staller %d: %v", i, err)
			}
			if i%2 == 1 {
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			}
			stallers = append(stallers, c)
		}
		stalledAt := time.Now()

		var (
			up, down, errs  atomic.Int64
			connected, done sync.WaitGroup
			errMu           sync.Mutex
			firstErrs       []string
		)
		fail := func(format string, args ...any) {
			errs.Add(1)
			errMu.Lock()
			if len(firstErrs) < 10 {
				firstErrs = append(firstErrs, fmt.Sprintf(format, args...))
			}
			errMu.Unlock()
		}
		exchange := func(i int, c *tls.Conn) error {
			nUp, nDown := small, small
			if i%cfg.bigEvery == 0 {
				nUp, nDown = bigUp, bigDown
			}
			// The client writes its whole stream first and reads after:
			// the backend sends while it reads, so both ways are in
			// flight at once.
			c.SetDeadline(time.Now().Add(loadGuard))
			var hdr [8]byte
			binary.BigEndian.PutUint64(hdr[:], uint64(nDown))
			if _, err := c.Write(hdr[:]); err != nil {
				return err
			}
			if _, err := c.Write(data[:nUp]); err != nil {
				return err
			}
			// crypto/tls sends close_notify with a 5 s deadline: on a
			// busy machine the proxy may take longer to read what
			// fills the socket's buffers.
			if err := waitWritable(c.NetConn()); err != nil {
				return err
			}
			if err := c.CloseWrite(); err != nil {
				return err
			}
			up.Add(int64(nUp))
			h := sha256.New()
			var tail bytes.Buffer // the last 32 bytes are the backend's hash of up
			n := 0
			buf := make([]byte, 32<<10)
			slow := i%cfg.slowEvery == 1
			for {
				m, err := c.Read(buf)
				if m > 0 {
					tail.Write(buf[:m])
					if over := tail.Len() - 32; over > 0 {
						h.Write(tail.Next(over))
						n += over
					}
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("after %d bytes: %w", n+tail.Len(), err)
				}
				if slow {
					time.Sleep(5 * time.Millisecond)
				}
			}
			down.Add(int64(n))
			if n != nDown || string(h.Sum(nil)) != sums[nDown] {
				return fmt.Errorf("got %d bytes, want %d: wrong hash", n, nDown)
			}
			if tail.String() != sums[nUp] {
				return fmt.Errorf("the backend's hash of the %d bytes sent is wrong", nUp)
			}
			return nil
		}
		dialing := make(chan struct{}, handshakesAtOnce())
		connected.Add(cfg.conns)
		done.Add(cfg.conns)
		for i := range cfg.conns {
			go func() {
				defer done.Done()
				dialing <- struct{}{}
				d := &net.Dialer{Timeout: loadGuard}
				c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
				<-dialing
				connected.Done()
				if err != nil {
					fail("client %d: dial: %v", i, err)
					return
				}
				defer c.Close()
				connected.Wait()
				if err := exchange(i, c); err != nil {
					fail("client %d: %v", i, err)
				}
			}()
		}
		connected.Wait()
		t.Logf("%d connections open at once after %v", cfg.conns, time.Since(start).Round(time.Millisecond))
		done.Wait()
		loadTime := time.Since(start)

		// Every staller is evicted by the handshake timeout: its
		// connection ends (it may have ended long ago).
		evicted, guard := 0, time.Now().Add(loadGuard)
		for _, c := range stallers {
			c.SetReadDeadline(guard)
			_, err := io.Copy(io.Discard, c)
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				evicted++
			}
			c.Close()
		}
		evictedAfter := time.Since(stalledAt)
		t.Logf("proxy load: %d connections, %d bytes up, %d bytes down, %d errors in %v; %d of %d stallers evicted after %v",
			cfg.conns, up.Load(), down.Load(), errs.Load(), loadTime.Round(time.Millisecond),
			evicted, cfg.stallers, evictedAfter.Round(time.Millisecond))
		if errs.Load() > 0 {
			t.Errorf("%d errors for well-behaved clients; first: %s", errs.Load(), strings.Join(firstErrs, "; "))
		}
		if evicted != cfg.stallers {
			t.Errorf("%d of %d stallers evicted", evicted, cfg.stallers)
		}

		// The proxy logs one line per connection: every relay ended
		// cleanly (in the kernel: both directions there, so spliced),
		// every staller in a handshake error.
		for guard := time.Now().Add(loadGuard); strings.Count(logs.String(), "msg=connection ") < cfg.conns+cfg.stallers && time.Now().Before(guard); {
			time.Sleep(10 * time.Millisecond) // the last relays may still be logging
		}
		var lines, clean, kernel, stalled int
		for line := range strings.Lines(logs.String()) {
			if !strings.Contains(line, "msg=connection ") {
				continue
			}
			lines++
			switch {
			case strings.Contains(line, " end=clean ") && !strings.Contains(line, " err="):
				clean++
				if kernelModes.MatchString(line) {
					kernel++
				}
			case strings.Contains(line, " end=handshake_error "):
				stalled++
			}
		}
		t.Logf("proxy log: %d connection lines, %d relays ended cleanly, %d of them in the kernel both ways, %d handshake errors", lines, clean, kernel, stalled)
		if clean != cfg.conns || stalled != cfg.stallers {
			t.Errorf("%d relays ended cleanly, %d handshakes failed; want %d and %d", clean, stalled, cfg.conns, cfg.stallers)
		}
		if cfg.tx == ktls.OffloadKernel && cfg.rx == ktls.OffloadKernel && kernel != cfg.conns {
			t.Errorf("%d connections in the kernel both ways (spliced); want %d", kernel, cfg.conns)
		}
	}) // the proxy and the backend stop here (their cleanups)

	var g, fds int
	for guard := time.Now().Add(loadGuard); time.Now().Before(guard); time.Sleep(50 * time.Millisecond) {
		// Two collections close the pipes that splice(2) left in the
		// runtime's pool.
		runtime.GC()
		runtime.GC()
		if g, fds = runtime.NumGoroutine(), openFDs(t); g <= goroutinesBefore && fds <= fdsBefore {
			break
		}
	}
	t.Logf("goroutines: %d before, %d after; open fds: %d before, %d after; total %v",
		goroutinesBefore, g, fdsBefore, fds, time.Since(start).Round(time.Millisecond))
	if fds > fdsBefore {
		t.Errorf("%d file descriptors open (was %d)", fds, fdsBefore)
	}
	if g > goroutinesBefore {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left (was %d)\n%s", g, goroutinesBefore, buf[:runtime.Stack(buf, true)])
	}
}

// kernelModes matches a proxy connection line with both directions in the
// kernel.
var kernelModes = regexp.MustCompile(` tx=kernel-(sw|ifnet) rx=kernel-(sw|ifnet)`)
