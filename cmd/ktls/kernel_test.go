package main

import (
	"regexp"
	"testing"

	"github.com/ktls-go/ktls"
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
