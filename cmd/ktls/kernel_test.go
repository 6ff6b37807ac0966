package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestKernelServe runs ktls serve with both directions required in the
// kernel and checks the downloads and the per-connection log lines.
func TestKernelServe(t *testing.T) {
	ktlstest.RequireKernel(t)
	www, _ := tree(t, 2<<20)
	ts := startServe(t, &serveOptions{dir: www, tx: ktls.OffloadKernel, rx: ktls.OffloadKernel})
	if got := ts.logged("serving", "kernel_tls"); got != "available" {
		t.Errorf("start line: kernel_tls=%q", got)
	}
	for _, h2 := range []bool{false, true} {
		c := ts.client(h2)
		resp, body := get(t, c, "https://"+ts.addr+"/hello.txt")
		if resp.StatusCode != 200 || body != "hello\n" {
			t.Errorf("h2=%v: %s %q", h2, resp.Status, body)
		}
		resp, body = get(t, c, "https://"+ts.addr+"/big.bin", "Range", "bytes=0-999999")
		if resp.StatusCode != 206 || len(body) != 1000000 {
			t.Errorf("h2=%v: %s, %d bytes", h2, resp.Status, len(body))
		}
		c.CloseIdleConnections()
	}
	for _, proto := range []string{"h2", "http/1.1"} {
		re := regexp.MustCompile(`msg=connection remote=\S+ proto=` + regexp.QuoteMeta(proto) + ` .* tx=(\S+) rx=(\S+)`)
		m := re.FindStringSubmatch(ts.logs.String())
		if m == nil || m[1] != "kernel-sw" && m[1] != "kernel-ifnet" || m[2] != "kernel-sw" && m[2] != "kernel-ifnet" {
			t.Errorf("%s: connection line %q, want tx and rx in the kernel", proto, m)
			continue
		}
		t.Logf("%s: tx=%s rx=%s", proto, m[1], m[2])
	}
}

// TestKernelServeWriteTimeout: a client that stops reading is cut off with
// both directions in the kernel too (HTTP/1.1: sendfile(2) into the kernel's
// TLS socket, with its write deadline).
func TestKernelServeWriteTimeout(t *testing.T) {
	ktlstest.RequireKernel(t)
	testWriteTimeout(t, serveOptions{tx: ktls.OffloadKernel, rx: ktls.OffloadKernel})
}

// TestKernelProxy relays 8 MiB each way through the proxy with both of the
// TLS side's directions required in the kernel, in both modes, and checks
// that the proxy spliced: the bytes read and written by this process's
// read(2)/write(2) calls (/proc/self/io, which splice(2) does not count)
// are those of the test's client and backend alone, not twice as many.
func TestKernelProxy(t *testing.T) {
	ktlstest.RequireKernel(t)
	const size = 8 << 20
	for _, upstreamTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream-tls=%v", upstreamTLS), func(t *testing.T) {
			up, down := random(size), random(size+11)
			e := &exchange{got: make(chan []byte, 1), reply: down}
			addr, logs := proxyPair(t, upstreamTLS, &proxyOptions{tx: ktls.OffloadKernel, rx: ktls.OffloadKernel}, e.serve)
			c := proxyClient(t, addr, upstreamTLS)
			if !upstreamTLS { // handshake before counting
				if err := c.(*tls.Conn).Handshake(); err != nil {
					t.Fatal(err)
				}
			}
			r0, w0 := ioCounters(t)
			checkExchange(t, c, e, up, down)
			r1, w1 := ioCounters(t)
			waitLog(t, logs, "msg=connection ")
			m := regexp.MustCompile(`msg=connection .* end=clean .* tx=(\S+) rx=(\S+)`).FindStringSubmatch(logs.String())
			if m == nil || m[1] != "kernel-sw" && m[1] != "kernel-ifnet" || m[2] != "kernel-sw" && m[2] != "kernel-ifnet" {
				t.Errorf("connection line %q, want a clean end and tx and rx in the kernel", m)
			}
			moved := int64(len(up) + len(down))
			t.Logf("moved %d bytes each way; this process read %d and wrote %d bytes by read/write (client and backend alone: about %d each)",
				size, r1-r0, w1-w0, moved)
			if limit := userSpaceLimit(t, moved); r1-r0 > limit || w1-w0 > limit {
				t.Errorf("read %d, wrote %d bytes through user space for %d moved: the proxy did not splice", r1-r0, w1-w0, moved)
			}
		})
	}
}

// TestKernelGet downloads 16 MiB from ktls serve (both directions in the
// kernel) with ktls get --rx kernel into a file and checks that the body
// was spliced: besides the server's sendfile, which /proc/self/io counts
// once as read and once as written, this process read and wrote almost
// nothing through user space.
func TestKernelGet(t *testing.T) {
	ktlstest.RequireKernel(t)
	www, big := tree(t, 16<<20)
	ts := startServe(t, &serveOptions{dir: www, tx: ktls.OffloadKernel, rx: ktls.OffloadKernel})
	out := filepath.Join(t.TempDir(), "big.bin")
	r0, w0 := ioCounters(t)
	status, _, stderr := runGetCmd(t, "-k", "-v", "--rx", "kernel", "-o", out, "https://"+ts.addr+"/big.bin")
	r1, w1 := ioCounters(t)
	got, _ := os.ReadFile(out)
	if status != 0 || !bytes.Equal(got, big) {
		t.Fatalf("status %d, %d of %d bytes, stderr %q", status, len(got), len(big), stderr)
	}
	if !regexp.MustCompile(`rx=kernel-(sw|ifnet)`).MatchString(stderr) {
		t.Errorf("receiving direction not in the kernel: %q", stderr)
	}
	t.Logf("ktls get -v: %s", stderr)
	t.Logf("%d bytes: this process read %d and wrote %d bytes through user space (the server's sendfile alone: %d each)",
		len(big), r1-r0, w1-w0, len(big))
	if n, limit := int64(len(big)), userSpaceLimit(t, int64(len(big))); r1-r0 > limit || w1-w0 > limit {
		t.Errorf("read %d, wrote %d for %d bytes: the body was not spliced", r1-r0, w1-w0, n)
	}
}

// userSpaceLimit is the most bytes the tests above let this process read or
// write through user space when n bytes would cross it without splicing:
// half again as many, and n more where the kernel's splice(2) out of a TLS
// socket is unsafe (Linux before 5.16, see kernel.SpliceRXSafe), so that
// Conn.WriteTo reads what it receives with read(2) and writes it.
func userSpaceLimit(t *testing.T, n int64) int64 {
	if !kernel.SpliceRXSafe() {
		t.Logf("splice(2) out of a TLS socket is unsafe on this kernel: received data goes through user space")
		return n*3/2 + n
	}
	return n * 3 / 2
}
