package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// runGetCmd runs ktls get with args and returns the status and outputs.
func runGetCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), append([]string{"get"}, args...), &stdout, &stderr)
	return status, stdout.String(), stderr.String()
}

func TestGet(t *testing.T) {
	www, big := tree(t, 5<<20+1)
	ts := startServe(t, &serveOptions{dir: www})
	base := "https://" + ts.addr
	out := filepath.Join(t.TempDir(), "big.bin")

	status, stdout, stderr := runGetCmd(t, "-k", "-o", out, base+"/big.bin")
	got, _ := os.ReadFile(out)
	if status != 0 || stdout != "" || stderr != "" || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Errorf("-o: status %d, stdout %q, stderr %q, %d of %d bytes", status, stdout, stderr, len(got), len(big))
	}

	status, stdout, _ = runGetCmd(t, "--insecure", base+"/hello.txt")
	if status != 0 || stdout != "hello\n" {
		t.Errorf("to stdout: status %d, %q", status, stdout)
	}

	// /site redirects to site/, which serves index.html.
	status, stdout, stderr = runGetCmd(t, "-k", "-v", base+"/site")
	if status != 0 || stdout != "<h1>site</h1>\n" || !strings.Contains(stderr, "301 Moved Permanently") {
		t.Errorf("redirect: status %d, %q, stderr %q", status, stdout, stderr)
	}
	if status, _, stderr := runGetCmd(t, "-k", "--max-redirects", "0", base+"/site"); status != 1 || !strings.Contains(stderr, "more than 0 redirects") {
		t.Errorf("--max-redirects 0: status %d, %q", status, stderr)
	}

	status, stdout, stderr = runGetCmd(t, "-k", "-o", filepath.Join(t.TempDir(), "x"), base+"/nothere")
	if status != 1 || stdout != "" || !strings.Contains(stderr, "404 Not Found") {
		t.Errorf("404: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}

	// Without -k the self-signed certificate is refused.
	if status, _, stderr := runGetCmd(t, base+"/hello.txt"); status != 1 || !strings.Contains(stderr, "certificate") ||
		!strings.Contains(stderr, "--ca FILE") || !strings.Contains(stderr, "-k skips") {
		t.Errorf("unverified: status %d, %q; want a hint at --ca and -k", status, stderr)
	}
	// An error of the output is one of writing it.
	if _, err := os.Stat("/dev/full"); err == nil {
		status, _, stderr := runGetCmd(t, "-k", "-o", "/dev/full", base+"/big.bin")
		if status != 1 || !strings.Contains(stderr, "writing /dev/full: ") {
			t.Errorf("-o /dev/full: status %d, %q", status, stderr)
		}
	}

	// Standard output and standard error as files: a regular file for the
	// body, a pipe for stderr (no progress bar).
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	status = run(context.Background(), []string{"get", "-k", base + "/big.bin"}, f, pw)
	pw.Close()
	errOut, _ := io.ReadAll(pr)
	got, _ = os.ReadFile(f.Name())
	if status != 0 || len(errOut) != 0 || !bytes.Equal(got, big) {
		t.Errorf("stdout file, stderr pipe: status %d, stderr %q, %d bytes", status, errOut, len(got))
	}
}

// TestGetChunked downloads a chunked body, one without a length (up to the
// end of the connection), and a truncated one.
func TestGetChunked(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			for p := body; len(p) > 0; p = p[min(len(p), 70000):] {
				w.Write(p[:min(len(p), 70000)])
				w.(http.Flusher).Flush()
			}
		case "/short":
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:1000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}))
	srv.EnableHTTP2 = false
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem"), srv.TLS.Certificates[0])
	out := filepath.Join(dir, "out")
	status, _, stderr := runGetCmd(t, "--ca", filepath.Join(dir, "ca.pem"), "-v", "-o", out, srv.URL+"/chunked")
	got, _ := os.ReadFile(out)
	if status != 0 || !bytes.Equal(got, body) || !strings.Contains(stderr, `Transfer-Encoding ["chunked"]`) {
		t.Errorf("chunked: status %d, %d bytes, stderr %q", status, len(got), stderr)
	}
	status, _, stderr = runGetCmd(t, "--ca", filepath.Join(dir, "ca.pem"), "-o", out, srv.URL+"/short")
	if status != 1 || !strings.Contains(stderr, "unexpected EOF") || !strings.Contains(stderr, "reading the body from the server") || strings.Contains(stderr, "writing") {
		t.Errorf("short: status %d, stderr %q; want a reading error", status, stderr)
	}
}

func TestGetCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "want one URL, have 0 arguments"},
		{[]string{"https://a/", "https://b/"}, "want one URL, have 2"},
		{[]string{"http://127.0.0.1/"}, "want an https://"},
		{[]string{"https:///x"}, "want an https://"},
		{[]string{"-k", "--ca", "x", "https://a/"}, "exclude each other"},
		{[]string{"--timeout", "0s", "https://a/"}, "--timeout must be positive"},
		{[]string{"--bogus", "https://a/"}, "flag provided but not defined"},
		{[]string{"-C", "https://a/"}, "-C/--continue needs -o FILE"},
		{[]string{"--continue", "-o", "-", "https://a/"}, "-C/--continue needs -o FILE"},
	} {
		if status, _, stderr := runGetCmd(t, tc.args...); status != exitUsage || !strings.Contains(stderr, tc.err) {
			t.Errorf("ktls get %q: status %d, %q; want 2, %q", tc.args, status, stderr, tc.err)
		}
	}
	if status, stdout, _ := runGetCmd(t, "-h"); status != 0 || !strings.Contains(stdout, "-o FILE") {
		t.Errorf("get -h: %d %q", status, stdout)
	}
}

func TestProgress(t *testing.T) {
	var n atomic.Int64
	var buf bytes.Buffer
	stop := progress(&buf, &n, 2<<20)
	n.Store(1 << 20)
	stop()
	if s := buf.String(); !strings.Contains(s, "50%") || !strings.Contains(s, "1.0 MiB / 2.0 MiB") || !strings.HasSuffix(s, "\n") {
		t.Errorf("progress: %q", s)
	}
}

// TestGetContinue completes partial files with -C: from a ktls serve (a
// 206), when the file is already whole (a 416), and from a server that
// ignores Range (a 200: the file is written again).
func TestGetContinue(t *testing.T) {
	www, big := tree(t, 3<<20+5)
	ts := startServe(t, &serveOptions{dir: www})
	out := filepath.Join(t.TempDir(), "big.bin")
	for _, have := range []int{1, 1 << 20, len(big) - 1, len(big)} {
		if err := os.WriteFile(out, big[:have], 0o644); err != nil {
			t.Fatal(err)
		}
		status, _, stderr := runGetCmd(t, "-k", "-C", "-o", out, "https://"+ts.addr+"/big.bin")
		got, _ := os.ReadFile(out)
		if status != 0 || !bytes.Equal(got, big) {
			t.Errorf("-C with %d bytes: status %d, %d bytes, %q", have, status, len(got), stderr)
		}
		if have == len(big) && !strings.Contains(stderr, "already holds all") {
			t.Errorf("-C with the whole file: %q", stderr)
		}
	}
	if !strings.Contains(ts.logs.String(), "status=206") || !strings.Contains(ts.logs.String(), "status=416") {
		t.Error("no 206 and 416 in the server's log")
	}
	// No file yet: a plain download.
	os.Remove(out)
	if status, _, stderr := runGetCmd(t, "-k", "--continue", "-o", out, "https://"+ts.addr+"/big.bin"); status != 0 {
		t.Errorf("-C without a file: %d %q", status, stderr)
	}

	body := []byte("the whole body\n")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	os.WriteFile(out, []byte("stale and longer than the body"), 0o644)
	status, _, stderr := runGetCmd(t, "-k", "-C", "-o", out, srv.URL+"/")
	if got, _ := os.ReadFile(out); status != 0 || !bytes.Equal(got, body) || !strings.Contains(stderr, "writing "+out+" again") {
		t.Errorf("-C, Range ignored: status %d, %q, %q", status, got, stderr)
	}
}
