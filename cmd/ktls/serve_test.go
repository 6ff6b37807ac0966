package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktls-go/ktls/internal/ktlstest"
)

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		out    string // in stdout
		err    string // in stderr
	}{
		{nil, 2, "", "Usage: ktls COMMAND"},
		{[]string{"help"}, 0, "Usage: ktls COMMAND", ""},
		{[]string{"--help"}, 0, "Usage: ktls COMMAND", ""},
		{[]string{"help", "serve"}, 0, "--follow-symlinks", ""},
		{[]string{"help", "proxy"}, 0, "Usage: ktls proxy", ""},
		{[]string{"help", "check"}, 0, "Usage: ktls check", ""},
		{[]string{"help", "stat"}, 0, "Usage: ktls stat", ""},
		{[]string{"help", "get"}, 0, "Usage: ktls get", ""},
		{[]string{"help", "bench"}, 0, "Usage: ktls bench", ""},
		{[]string{"help", "frob"}, 2, "", `unknown command "frob"`},
		{[]string{"serve", "-h"}, 0, "Usage: ktls serve", ""},
		{[]string{"serve", "--help"}, 0, "--addr HOST:PORT", ""},
		{[]string{"version"}, 0, "ktls ", ""},
		{[]string{"--version"}, 0, "ktls ", ""},
		{[]string{"serve", "--version"}, 0, "ktls ", ""},
		{[]string{"frob"}, 2, "", `unknown command "frob"`},
		{[]string{"proxy"}, 2, "", "--listen and --to are required"},
		{[]string{"serve", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"serve", "--tx", "sometimes"}, 2, "", "want auto, kernel, user or off"},
		{[]string{"serve", "--log-level", "loud"}, 2, "", `invalid value "loud" for flag -log-level`},
		{[]string{"serve", "--log-format", "xml"}, 2, "", `invalid value "xml" for flag -log-format: want text or json`},
		{[]string{"proxy", "--log-format", "xml"}, 2, "", `invalid value "xml" for flag -log-format: want text or json`},
		{[]string{"serve", "a", "b"}, 2, "", "too many arguments"},
		{[]string{"serve", "--cert", "c.pem"}, 2, "", "--cert and --key go together"},
		{[]string{"serve", "--cert", "a.pem", "--key", "a.key", "--cert", "b.pem"}, 2, "", "--cert and --key go together"},
		{[]string{"serve", "a", "--addr"}, 2, "", "flag needs an argument"},
		{[]string{"serve", "--addr", "127.0.0.1"}, 2, "", `--addr "127.0.0.1": missing port in address; want HOST:PORT`},
		{[]string{"serve", "--addr", ":99999"}, 2, "", `--addr ":99999": port 99999 out of range`},
		{[]string{"serve", "--addr", "127.0.0.1:-1"}, 2, "", `port -1 out of range`},
		{[]string{"serve", "--addr", "127.0.0.1:nosuchservice"}, 2, "", `unknown port "nosuchservice"`},
		{[]string{"serve", "--addr", "bad host:8443"}, 2, "", `bad host "bad host"`},
		{[]string{"serve", "--metrics", "9090"}, 2, "", `--metrics "9090": missing port in address`},
		{[]string{"serve", "--shutdown-timeout", "-1s"}, 2, "", "--shutdown-timeout must not be negative"},
		{[]string{"serve", "--write-timeout", "-1s"}, 2, "", "--write-timeout must not be negative"},
		{[]string{"version", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"help", "serve", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"get", "127.0.0.1:8443/x"}, 2, "", `"127.0.0.1:8443/x" has no scheme: type https://127.0.0.1:8443/x`},
		{[]string{"get", "example.com"}, 2, "", `"example.com" has no scheme: type https://example.com`},
		{[]string{"get", "http://example.com/"}, 2, "", `want an https://HOST[:PORT]/PATH URL`},
		{[]string{"stat", "--url", "127.0.0.1:9090"}, 2, "", `"127.0.0.1:9090" has no scheme: type http://127.0.0.1:9090`},
	} {
		var stdout, stderr bytes.Buffer
		status := run(context.Background(), tc.args, &stdout, &stderr)
		if status != tc.status || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("ktls %q: status %d, stdout %q, stderr %q; want %d, %q, %q",
				tc.args, status, stdout.String(), stderr.String(), tc.status, tc.out, tc.err)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, addr := range []string{":8443", "127.0.0.1:0", "[::1]:8443", "[fe80::1%eth0]:443", "localhost:https", "example.com.:65535", "my_host-1.example:80", ":"} {
		if err := checkAddr("addr", addr); err != nil {
			t.Errorf("%q: %v", addr, err)
		}
	}
	for _, addr := range []string{"", "8443", "::1:8443", "127.0.0.1:65536", "a..b:80", "-x:99999", "-h.example:80", "h h:80", "[::1]x:80", "h:nosuchservice", "h:8443x"} {
		if err := checkAddr("addr", addr); err == nil {
			t.Errorf("%q accepted", addr)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	fs, o := serveFlags(io.Discard)
	pos, err := parseInterleaved(fs, []string{"dir", "--addr", ":1", "--follow-symlinks", "--", "--x"})
	if err != nil || fmt.Sprint(pos) != "[dir --x]" || o.addr != ":1" || !o.followSymlinks {
		t.Errorf("got %q %v, addr %q follow %v", pos, err, o.addr, o.followSymlinks)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testServe struct {
	addr string
	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

// startServe runs serve on a loopback port with a debug log.
func startServe(t *testing.T, o *serveOptions) *testServe {
	t.Helper()
	o.addr = "127.0.0.1:0"
	o.level = slog.LevelDebug
	if o.grace == 0 {
		o.grace = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServe{logs: new(syncBuffer), stop: cancel, done: make(chan error, 1)}
	logger := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan string, 1)
	go func() {
		ts.done <- o.serve(ctx, func() {}, logger, func(a net.Addr) { ready <- a.String() })
		close(ready)
	}()
	a, ok := <-ready
	if !ok {
		t.Fatalf("serve: %v\n%s", <-ts.done, ts.logs)
	}
	ts.addr = a
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	return ts
}

// logged returns the value of key in the first log line with msg.
func (ts *testServe) logged(msg, key string) string {
	re := regexp.MustCompile(`msg="?` + regexp.QuoteMeta(msg) + `"? .*\b` + key + `=("[^"]*"|\S+)`)
	m := re.FindStringSubmatch(ts.logs.String())
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], `"`)
}

func (ts *testServe) client(h2 bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: h2,
	}}
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// tree makes DIR/www with files (big.bin of bigSize random bytes) and
// symbolic links, some pointing outside, and DIR/outside/secret.txt.
func tree(t *testing.T, bigSize int) (string, []byte) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	big := make([]byte, bigSize)
	rand.Read(big)
	files := map[string][]byte{
		"www/big.bin":          big,
		"www/hello.txt":        []byte("hello\n"),
		"www/site/index.html":  []byte("<h1>site</h1>\n"),
		"www/data.json":        []byte(`{"a":1}`),
		"outside/secret.txt":   []byte("SECRET\n"),
		"outside/inner/x.html": []byte("SECRET\n"),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"link.txt":       "hello.txt",
		"out.txt":        "../outside/secret.txt",
		"outdir":         "../outside",
		"site/back.html": "../../outside/secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(www, link)); err != nil {
			t.Fatal(err)
		}
	}
	return www, big
}

func TestServe(t *testing.T) {
	www, big := tree(t, 3<<20+3)
	ts := startServe(t, &serveOptions{dir: www})
	url := "https://" + ts.addr
	if got := ts.logged("serving", "kernel_tls"); got != "available" && got != "unavailable" {
		t.Errorf("start line: kernel_tls=%q", got)
	}
	fp := ts.logged("self-signed certificate", "sha256")
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := ts.client(h2)
			defer c.CloseIdleConnections()
			resp, body := get(t, c, url+"/big.bin")
			if resp.StatusCode != 200 || body != string(big) {
				t.Fatalf("big.bin: %s, %d bytes", resp.Status, len(body))
			}
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Errorf("proto %s, want HTTP/%d", resp.Proto, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("big.bin: Content-Type %q", ct)
			}
			if got := fingerprint(resp.TLS.PeerCertificates[0]); got != fp {
				t.Errorf("certificate fingerprint %s, logged %s", got, fp)
			}
			for p, ct := range map[string]string{
				"/hello.txt": "text/plain; charset=utf-8",
				"/site/":     "text/html; charset=utf-8",
				"/data.json": "application/json",
			} {
				resp, _ := get(t, c, url+p)
				if got := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || got != ct {
					t.Errorf("%s: %s, Content-Type %q, want %q", p, resp.Status, got, ct)
				}
			}
			resp, body = get(t, c, url+"/big.bin", "Range", "bytes=2000000-2000099")
			if resp.StatusCode != 206 || body != string(big[2000000:2000100]) {
				t.Errorf("Range: %s, %d bytes", resp.Status, len(body))
			}
			resp, _ = get(t, c, url+"/big.bin", "Range", "bytes=0-0,10-19")
			if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
				t.Errorf("multiple ranges: %s %q", resp.Status, resp.Header.Get("Content-Type"))
			}
			resp, _ = get(t, c, url+"/hello.txt")
			etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
			if etag == "" || lm == "" {
				t.Fatalf("hello.txt: ETag %q, Last-Modified %q", etag, lm)
			}
			for _, hdr := range [][]string{{"If-None-Match", etag}, {"If-Modified-Since", lm}} {
				resp, body := get(t, c, url+"/hello.txt", hdr...)
				if resp.StatusCode != 304 || body != "" {
					t.Errorf("%s: %s %q, want 304", hdr[0], resp.Status, body)
				}
			}
			resp, _ = get(t, c, url+"/hello.txt", "If-None-Match", `"other"`)
			if resp.StatusCode != 200 {
				t.Errorf("If-None-Match other: %s", resp.Status)
			}
			resp, body = get(t, c, url+"/hello.txt", "Range", "bytes=0-1", "If-Range", `"stale"`)
			if resp.StatusCode != 200 || body != "hello\n" {
				t.Errorf("If-Range stale: %s %q", resp.Status, body)
			}
			resp, body = get(t, c, url+"/hello.txt", "Range", "bytes=0-1", "If-Range", etag)
			if resp.StatusCode != 206 || body != "he" {
				t.Errorf("If-Range current: %s %q", resp.Status, body)
			}
			resp, body = get(t, c, url+"/link.txt")
			if resp.StatusCode != 200 || body != "hello\n" {
				t.Errorf("symlink inside: %s %q", resp.Status, body)
			}
			for _, p := range []string{"/out.txt", "/outdir/secret.txt", "/outdir/inner/x.html", "/site/back.html"} {
				resp, body := get(t, c, url+p)
				if resp.StatusCode != 403 || strings.Contains(body, "SECRET") {
					t.Errorf("%s: %s %q, want 403", p, resp.Status, body)
				}
			}
		})
	}
	for _, p := range []string{"/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/%2E%2E%2Foutside%2Fsecret.txt", "/site/..%2f..%2foutside/secret.txt"} {
		c, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if strings.Contains(string(body), "SECRET") || resp.StatusCode < 400 || resp.StatusCode > 404 {
			t.Errorf("%s: %s %q", p, resp.Status, body)
		}
	}
	logs := ts.logs.String()
	for _, proto := range []string{"h2", "http/1.1"} {
		re := regexp.MustCompile(`level=DEBUG msg=connection remote=\S+ proto=` + regexp.QuoteMeta(proto) + ` tls="TLS 1.3" suite=\S+ tx=(\S+) rx=(\S+)`)
		m := re.FindStringSubmatch(logs)
		if m == nil {
			t.Errorf("no connection line for %s in the log", proto)
			continue
		}
		t.Logf("%s: tx=%s rx=%s", proto, m[1], m[2])
	}
	if !strings.Contains(logs, `level=INFO msg=request remote=`) || !strings.Contains(logs, "path=/big.bin status=206") {
		t.Error("no request lines in the log")
	}
}

func TestServeFollowSymlinks(t *testing.T) {
	www, _ := tree(t, 10)
	ts := startServe(t, &serveOptions{dir: www, followSymlinks: true})
	c := ts.client(true)
	defer c.CloseIdleConnections()
	resp, body := get(t, c, "https://"+ts.addr+"/outdir/secret.txt")
	if resp.StatusCode != 200 || body != "SECRET\n" {
		t.Errorf("--follow-symlinks: %s %q", resp.Status, body)
	}
	for _, p := range []string{"/nothere", "/hello.txt/x"} {
		resp, _ = get(t, c, "https://"+ts.addr+p)
		if resp.StatusCode != 404 {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}
}

func TestServeCertFiles(t *testing.T) {
	www, _ := tree(t, 10)
	cert, err := selfSigned([]string{"example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, keyFile, cert)
	ts := startServe(t, &serveOptions{dir: www, certOptions: certOptions{certFiles: []string{certFile}, keyFiles: []string{keyFile}}})
	if got, want := ts.logged("certificate", "sha256"), fingerprint(cert.Leaf); got != want {
		t.Errorf("logged fingerprint %q, want %q", got, want)
	}
	c, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(cert.Leaf) {
		t.Error("server does not use the --cert certificate")
	}
}

// TestServeShutdown cancels the server while a download is in flight: the
// download completes and serve returns nil; new connections are refused.
func TestServeShutdown(t *testing.T) {
	www, big := tree(t, 8<<20+3) // more than the socket buffers hold
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			// The grace must cover the rest of the download, which a
			// busy machine (-race, load 12) took more than 5 s for.
			ts := startServe(t, &serveOptions{dir: www, grace: 2 * time.Minute})
			c := ts.client(h2)
			defer c.CloseIdleConnections()
			resp, err := c.Get("https://" + ts.addr + "/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			head := make([]byte, 1<<16)
			if _, err := io.ReadFull(resp.Body, head); err != nil {
				t.Fatal(err)
			}
			ts.stop()
			// The listener closes first, with the download still going.
			ktlstest.WaitClosed(t, ts.addr)
			select {
			case err := <-ts.done:
				t.Fatalf("serve returned %v with a download in flight", err)
			default:
			}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(append(head, rest...), big) {
				t.Errorf("download during shutdown: %v, %d bytes", err, len(head)+len(rest))
			}
			select {
			case err := <-ts.done:
				ts.done <- err // for the cleanup
			case <-time.After(time.Minute): // a guard against a hang
				t.Fatal("serve did not return")
			}
			if !strings.Contains(ts.logs.String(), "msg=stopped") {
				t.Error("no stopped line in the log")
			}
		})
	}
}

// TestServeCurl fetches with the curl binary, pinning the logged key.
func TestServeCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		// Not a skip: the kernel lab, where skips fail, has no curl.
		t.Log("no curl in PATH: nothing to check")
		return
	}
	www, big := tree(t, 1<<20)
	ts := startServe(t, &serveOptions{dir: www})
	pin := ts.logged("self-signed certificate", "pin")
	for _, proto := range []string{"--http1.1", "--http2"} {
		out, err := exec.Command(curl, "-sS", "-k", "--pinnedpubkey", pin, proto, "-o", "/dev/null",
			"-w", "%{http_code} %{http_version} %{size_download}", "https://"+ts.addr+"/big.bin").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v: %s", proto, err, out)
		}
		v := map[string]string{"--http1.1": "1.1", "--http2": "2"}[proto]
		if want := fmt.Sprintf("200 %s %d", v, len(big)); string(out) != want {
			t.Errorf("curl %s: %q, want %q", proto, out, want)
		}
	}
	// Plain HTTP to the TLS port: a 400 and a clean close, not curl's exit
	// 56 (connection reset).
	out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+ts.addr+"/hello.txt").CombinedOutput()
	if err != nil || string(out) != "400" {
		t.Errorf("curl http://: %v: %s", err, out)
	}
	out, err = exec.Command(curl, "-sS", "-k", "--pinnedpubkey", "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"https://"+ts.addr+"/hello.txt").CombinedOutput()
	if err == nil {
		t.Errorf("curl with a wrong pin succeeded: %s", out)
	}
}

// readFromWriter is a ResponseWriter with ReadFrom, as net/http's is.
type readFromWriter struct {
	http.ResponseWriter
	calls int
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.calls++
	return io.Copy(io.Discard, r)
}

// TestStatusWriterReadFrom checks that the request logger keeps file bodies
// on the ReadFrom (sendfile) path.
func TestStatusWriterReadFrom(t *testing.T) {
	inner := &readFromWriter{}
	w := &statusWriter{ResponseWriter: inner}
	n, err := io.Copy(w, io.LimitReader(bytes.NewReader(make([]byte, 5000)), 4000))
	if n != 4000 || err != nil || inner.calls != 1 || w.n != 4000 {
		t.Errorf("io.Copy: %d %v, %d ReadFrom calls, counted %d", n, err, inner.calls, w.n)
	}
}

func writePEM(t *testing.T, certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	k := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(certFile, c, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeWriteTimeout: a client that stops reading a large file is cut
// off once nothing could be written to it for --write-timeout, over
// HTTP/1.1 (the sendfile path) and HTTP/2 (a stream stuck at a zero
// window), and the server's connection and file are let go.
func TestServeWriteTimeout(t *testing.T) {
	testWriteTimeout(t, serveOptions{})
}

// testWriteTimeout is TestServeWriteTimeout with the options o.
func testWriteTimeout(t *testing.T, o serveOptions) {
	www, big := tree(t, 32<<20) // more than the socket buffers and HTTP/2 windows hold
	o.dir, o.writeTimeout = www, time.Second
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			o := o
			ts := startServe(t, &o)
			c := ts.client(h2)
			defer c.CloseIdleConnections()
			resp, err := c.Get("https://" + ts.addr + "/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// Stop reading until the server gives up: its access-log line
			// comes when the handler returns.
			for deadline := time.Now().Add(time.Minute); !strings.Contains(ts.logs.String(), "path=/big.bin"); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the server still writes to a client that stopped reading")
				}
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil || n >= int64(len(big)) {
				t.Errorf("read %d of %d bytes, %v; want the download cut off", n, len(big), err)
			}
			t.Logf("cut off after %d bytes: %v", n, err)
			// The server goes on serving.
			c2 := ts.client(h2)
			defer c2.CloseIdleConnections()
			if resp, body := get(t, c2, "https://"+ts.addr+"/hello.txt"); resp.StatusCode != 200 || body != "hello\n" {
				t.Errorf("after the cut: %s %q", resp.Status, body)
			}
		})
	}
}

// TestServeWriteDeadlineIdle: on a keep-alive connection idle for longer
// than --write-timeout, net/http's own answer to a bad request (400) still
// gets out: the write deadline of the last response does not linger
// (net/http lifts it after each response).
func TestServeWriteDeadlineIdle(t *testing.T) {
	www, _ := tree(t, 10)
	ts := startServe(t, &serveOptions{dir: www, writeTimeout: 100 * time.Millisecond})
	c, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	time.Sleep(300 * time.Millisecond) // past the deadline of that response
	io.WriteString(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(time.Minute)) // a guard against a hang
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 400 {
		t.Errorf("bad request after an idle time: %v, %v; want 400", resp, err)
	}
}
