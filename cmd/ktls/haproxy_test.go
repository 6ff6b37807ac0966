package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clientIP is the loopback address the HAProxy tests' clients connect
// from, so that it differs from HAProxy's own (127.0.0.1).
var clientIP = net.IPv4(127, 0, 0, 2)

// startHAProxy runs haproxy in the foreground with the configuration cfg,
// in which %d is replaced by a free loopback port to listen on, and waits
// until it accepts connections there; it returns the address. Without
// haproxy in PATH the test fails when CI=true (test.sh installs it), passes
// in the kernel lab's guest (which has none, and where a skip would fail),
// and is skipped elsewhere.
func startHAProxy(t *testing.T, cfg string) (addr string, ok bool) {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	switch {
	case err == nil:
	case os.Getenv("KTLS_LAB") == "1":
		t.Log("no haproxy in the lab's guest: nothing to check")
		return "", false
	case os.Getenv("CI") == "true":
		t.Fatalf("haproxy is required with CI=true (apt-get install haproxy): %v", err)
	default:
		t.Skipf("no haproxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	conf := "global\n\tmaxconn 100\ndefaults\n\ttimeout connect 10s\n\ttimeout client 1m\n\ttimeout server 1m\n" +
		strings.ReplaceAll(cfg, "%d", port)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := new(syncBuffer)
	cmd := exec.Command(haproxy, "-db", "-f", file)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy.cfg:\n%s\nhaproxy output:\n%s", conf, out)
		}
	})
	// The guard only stops a hang on a very busy machine.
	for deadline := time.Now().Add(time.Minute); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, true
		}
		select {
		case err := <-exited:
			t.Fatalf("haproxy exited: %v\n%s\n%s", err, conf, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not accept on %s: %v\n%s", addr, err, out)
		}
	}
}

// fromClientIP returns an HTTPS client that connects from clientIP.
func fromClientIP(t *testing.T, h2 bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: clientIP}}
	tr := &http.Transport{
		DialContext:       d.DialContext,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: h2,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestHAProxyInFront: HAProxy (mode tcp) with send-proxy or send-proxy-v2
// in front of ktls serve --accept-proxy-protocol: GETs through it are
// served and logged with the client's address, not HAProxy's.
func TestHAProxyInFront(t *testing.T) {
	www, _ := tree(t, 1<<10)
	for _, send := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(send, func(t *testing.T) {
			ts := startServe(t, serveWith(t, www, "--accept-proxy-protocol", "--proxy-protocol-from", "127.0.0.1"))
			addr, ok := startHAProxy(t, fmt.Sprintf("frontend f\n\tmode tcp\n\tbind 127.0.0.1:%%d\n\tdefault_backend b\n"+
				"backend b\n\tmode tcp\n\tserver s %s %s\n", ts.addr, send))
			if !ok {
				return
			}
			for _, h2 := range []bool{false, true} {
				resp, body := get(t, fromClientIP(t, h2), "https://"+addr+"/hello.txt")
				if resp.StatusCode != 200 || body != "hello\n" {
					t.Errorf("h2=%v: %s %q", h2, resp.Status, body)
				}
			}
			logs := ts.logs.String()
			if n := strings.Count(logs, "msg=request remote="+clientIP.String()+":"); n != 2 {
				t.Errorf("%d request lines with remote=%s, want 2", n, clientIP)
			}
			if strings.Contains(logs, "msg=request remote=127.0.0.1:") {
				t.Errorf("a request line with HAProxy's address")
			}
		})
	}
}

// TestHAProxyBehind: ktls proxy --send-proxy-protocol v1 or v2 in front of
// HAProxy (mode http, accept-proxy), which answers with the client address
// it took from the header: the TLS client's.
func TestHAProxyBehind(t *testing.T) {
	addr, ok := startHAProxy(t, "frontend f\n\tmode http\n\tbind 127.0.0.1:%d accept-proxy\n"+
		"\thttp-request return status 200 content-type text/plain lf-string \"%[src]\"\n")
	if !ok {
		return
	}
	for _, send := range []byte{1, 2} {
		t.Run(fmt.Sprintf("v%d", send), func(t *testing.T) {
			paddr, _ := startProxy(t, &proxyOptions{to: addr, proxyProto: proxyProtoOptions{send: send}})
			resp, body := get(t, fromClientIP(t, false), "https://"+paddr+"/")
			if resp.StatusCode != 200 || body != clientIP.String() {
				t.Errorf("%s %q, want 200 %q", resp.Status, body, clientIP)
			}
		})
	}
}
