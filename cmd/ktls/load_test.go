package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// loadConfig is the scale of a load run of ktls serve or ktls proxy.
type loadConfig struct {
	conns     int // well-behaved clients, each on its own connection, all open at once
	bigEvery  int // every bigEvery-th client also moves the large file or stream
	slowEvery int // every slowEvery-th of those reads it slowly
	stallers  int // clients that open TCP and never finish a handshake
	tx, rx    ktls.Offload
}

// TestLoad runs ktls serve under 2,000 concurrent connections on loopback.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	testLoad(t, hostLoad())
}

// loadGuard bounds each wait of the load tests: it only keeps a test that
// went wrong from hanging, and is far longer than any step takes on a busy
// machine, so that no result depends on the machine's speed.
const loadGuard = 5 * time.Minute

// handshakesAtOnce is the number of handshakes the load tests' clients run
// at a time: two per CPU, which keeps the CPUs busy. The server's
// handshake timeout is a bound on wall time, as it must be against peers
// that stall; the clients must not queue more handshakes than the CPUs
// (shared with the server, the race detector and whatever else runs)
// finish within it. With 100 at a time, a handshake took longer than the
// 5 s timeout at a load average of 8 on two cores, and the server rightly
// dropped it.
func handshakesAtOnce() int { return 2 * runtime.GOMAXPROCS(0) }

// hostLoad is the scale of the load tests on the host: 2,000 connections,
// 1,000 under the race detector (which allows 8128 goroutines; each
// connection has about five), and 50 inside the lab, whose guest has 1 GiB
// of memory and an emulated CPU (the TestKernel* variants run there at that
// scale with the kernel engine).
func hostLoad() loadConfig {
	cfg := loadConfig{conns: 2000, bigEvery: 8, slowEvery: 10, stallers: 200}
	if raceEnabled() {
		cfg.conns = 1000
	}
	if os.Getenv("KTLS_LAB") == "1" {
		cfg.conns, cfg.stallers = 50, 10
	}
	return cfg
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestKernelLoad is TestLoad at the scale of the emulated lab with both
// directions in the kernel.
func TestKernelLoad(t *testing.T) {
	ktlstest.RequireKernel(t)
	testLoad(t, loadConfig{conns: 50, bigEvery: 5, slowEvery: 2, stallers: 10, tx: ktls.OffloadKernel, rx: ktls.OffloadKernel})
}

// keyLog collects the clients' key log lines.
type keyLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.b.Write(p)
}

// testLoad opens cfg.stallers connections that never finish a handshake
// (half of them send the start of a ClientHello), then cfg.conns clients
// that each fetch the 4 KiB file, wait until all of them are connected
// (with a HEAD request every 30 s against the server's idle timeout), and
// fetch the 1 MiB file (every cfg.bigEvery-th, some reading slowly) or
// the small one again. Every body's hash must be right, no well-behaved
// client may see an error, the stallers must be evicted by the handshake
// timeout, the goroutines must come back to their level before the server
// started, and the server's debug log must hold none of the clients'
// secrets.
func testLoad(t *testing.T, cfg loadConfig) {
	dir := t.TempDir()
	small, big := make([]byte, 4<<10), make([]byte, 1<<20)
	rand.Read(small)
	rand.Read(big)
	for name, b := range map[string][]byte{"small.bin": small, "big.bin": big} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	want := map[string]string{"/small.bin": sum(small), "/big.bin": sum(big)}

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	goroutinesBefore, heapBefore := runtime.NumGoroutine(), ms.HeapInuse
	start := time.Now()
	var ts *testServe
	t.Run("serve", func(t *testing.T) {
		ts = startServe(t, &serveOptions{dir: dir, tx: cfg.tx, rx: cfg.rx, grace: 10 * time.Second})

		// Stallers first: they hold their sockets through the whole run.
		stallers := make([]net.Conn, 0, cfg.stallers)
		for i := range cfg.stallers {
			c, err := net.Dial("tcp", ts.addr)
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
			kl                    keyLog
			requests, errs, bytes atomic.Int64
			connected, fetched    sync.WaitGroup
			errMu                 sync.Mutex
			firstErrs             []string
		)
		fail := func(format string, args ...any) {
			errs.Add(1)
			errMu.Lock()
			if len(firstErrs) < 10 {
				firstErrs = append(firstErrs, fmt.Sprintf(format, args...))
			}
			errMu.Unlock()
		}
		fetch := func(c *http.Client, path string, slow bool) {
			resp, err := c.Get("https://" + ts.addr + path)
			if err != nil {
				fail("GET %s: %v", path, err)
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			var n int64
			if slow {
				buf := make([]byte, 32<<10)
				for {
					m, err := resp.Body.Read(buf)
					h.Write(buf[:m])
					n += int64(m)
					if err == io.EOF {
						break
					}
					if err != nil {
						fail("GET %s: body: %v", path, err)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			} else if n, err = io.Copy(h, resp.Body); err != nil {
				fail("GET %s: body: %v", path, err)
				return
			}
			requests.Add(1)
			bytes.Add(n)
			if resp.StatusCode != 200 || hex.EncodeToString(h.Sum(nil)) != want[path] {
				fail("GET %s: %s, %d bytes, wrong hash", path, resp.Status, n)
			}
		}
		dialing := make(chan struct{}, handshakesAtOnce())
		connected.Add(cfg.conns)
		fetched.Add(cfg.conns)
		allConnected := make(chan struct{})
		go func() { connected.Wait(); close(allConnected) }()
		for i := range cfg.conns {
			go func() {
				defer fetched.Done()
				tr := &http.Transport{
					TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, KeyLogWriter: &kl},
					MaxConnsPerHost:     1,
					TLSHandshakeTimeout: loadGuard,
					ForceAttemptHTTP2:   i%3 == 0,
				}
				defer tr.CloseIdleConnections()
				c := &http.Client{Transport: tr, Timeout: loadGuard}
				dialing <- struct{}{}
				fetch(c, "/small.bin", false)
				<-dialing
				connected.Done()
				// While the others connect, which takes minutes on a
				// busy machine, a HEAD request now and then keeps the
				// connection from the server's 2-minute idle timeout.
				for waiting := true; waiting; {
					select {
					case <-allConnected:
						waiting = false
					case <-time.After(30 * time.Second):
						resp, err := c.Head("https://" + ts.addr + "/small.bin")
						if err != nil {
							fail("HEAD /small.bin: %v", err)
							return
						}
						resp.Body.Close()
					}
				}
				if i%cfg.bigEvery == 0 {
					fetch(c, "/big.bin", i/cfg.bigEvery%cfg.slowEvery == 0)
				} else {
					fetch(c, "/small.bin", false)
				}
			}()
		}
		connected.Wait()
		t.Logf("%d connections open at once after %v", cfg.conns, time.Since(start).Round(time.Millisecond))
		fetched.Wait()
		loadTime := time.Since(start)

		// Every staller is evicted by the 10 s handshake timeout: its
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
		t.Logf("load: %d connections, %d requests, %d bytes, %d errors in %v; %d of %d stallers evicted after %v",
			cfg.conns, requests.Load(), bytes.Load(), errs.Load(), loadTime.Round(time.Millisecond),
			evicted, cfg.stallers, evictedAfter.Round(time.Millisecond))
		if errs.Load() > 0 {
			t.Errorf("%d errors for well-behaved clients; first: %s", errs.Load(), strings.Join(firstErrs, "; "))
		}
		if want := int64(2 * cfg.conns); requests.Load() != want {
			t.Errorf("%d requests done, want %d", requests.Load(), want)
		}
		if evicted != cfg.stallers {
			t.Errorf("%d of %d stallers evicted", evicted, cfg.stallers)
		}
		// No secret of any client reaches the server's debug log, in hex
		// (any case) or raw: every hex run in the log and every 8-byte
		// window of it are looked up among the secrets.
		logs := ts.logs.String()
		kl.mu.Lock()
		lines := kl.b.String()
		kl.mu.Unlock()
		hexSecrets, rawPrefixes := map[string]bool{}, map[string]bool{}
		for line := range strings.Lines(lines) {
			if f := strings.Fields(line); len(f) == 3 {
				hexSecrets[strings.ToLower(f[2])] = true
				raw, _ := hex.DecodeString(f[2])
				rawPrefixes[string(raw[:8])] = true
			}
		}
		secrets := len(hexSecrets)
		for _, run := range regexp.MustCompile(`[0-9a-fA-F]{32,}`).FindAllString(logs, -1) {
			for s := range hexSecrets {
				if strings.Contains(strings.ToLower(run), s) {
					t.Fatal("a client secret appears in hex in the server log")
				}
			}
		}
		for i := 0; i+8 <= len(logs); i++ {
			if rawPrefixes[logs[i:i+8]] {
				t.Fatal("a client secret appears raw in the server log")
			}
		}
		t.Logf("checked %d secrets against %d bytes of debug log", secrets, len(logs))
	}) // the server stops here (startServe's cleanup)

	var g int
	for guard := time.Now().Add(loadGuard); time.Now().Before(guard); time.Sleep(50 * time.Millisecond) {
		if g = runtime.NumGoroutine(); g <= goroutinesBefore {
			break
		}
	}
	runtime.GC()
	runtime.GC() // the second one empties the sync.Pools
	runtime.ReadMemStats(&ms)
	t.Logf("goroutines: %d before, %d after; heap in use: %d KiB before, %d KiB after; total %v",
		goroutinesBefore, g, heapBefore>>10, ms.HeapInuse>>10, time.Since(start).Round(time.Millisecond))
	// What is left is the test's own: the files, the key log, the server's
	// log; not the connections' buffers.
	if ms.HeapInuse > heapBefore+48<<20 {
		t.Errorf("heap in use grew from %d KiB to %d KiB", heapBefore>>10, ms.HeapInuse>>10)
	}
	if g > goroutinesBefore {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left (was %d)\n%s", g, goroutinesBefore, buf[:runtime.Stack(buf, true)])
	}
}
