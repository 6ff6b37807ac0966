package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/fileserve"
	"github.com/ktls-go/ktls/ktlshttp"
)

// benchWriter is a ResponseWriter as net/http's HTTP/1.x one looks to a
// handler: with ReadFrom (the body read from the file and dropped) and
// SetWriteDeadline (for http.ResponseController).
type benchWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *benchWriter) Header() http.Header              { return w.h }
func (w *benchWriter) WriteHeader(code int)             { w.status = code }
func (w *benchWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *benchWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

func (w *benchWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	w.n += n
	return n, err
}

// serveHandlers are the handlers the benchmarks compare: http.FileServer
// alone, and ktls serve's with its access log off and on (to io.Discard).
func serveHandlers(b *testing.B, dir string) map[string]http.Handler {
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { root.Close() })
	fsys := ktlshttp.RootFS(root)
	logger := func(l slog.Level) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: l}))
	}
	return map[string]http.Handler{
		"fileserver": http.FileServer(fsys),
		"serve":      serveHandler(fsys, fileserve.DefaultWriteTimeout, logger(slog.LevelWarn)),
		"serve+log":  serveHandler(fsys, fileserve.DefaultWriteTimeout, logger(slog.LevelInfo)),
	}
}

// BenchmarkServeHandler serves a 4 KiB file through the handler alone (no
// connection): what a request costs ktls serve's handler beyond
// http.FileServer's.
func BenchmarkServeHandler(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "4k.bin"), make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"fileserver", "serve", "serve+log"} {
		h := serveHandlers(b, dir)[name]
		b.Run(name, func(b *testing.B) {
			req, _ := http.NewRequest("GET", "/4k.bin", nil)
			req.RemoteAddr = "127.0.0.1:1234"
			w := &benchWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.status, w.n = 0, 0
				h.ServeHTTP(w, req)
				if w.n != 4096 {
					b.Fatalf("status %d, %d bytes", w.status, w.n)
				}
			}
		})
	}
}

// BenchmarkServeLoopback GETs a 4 KiB file over one keep-alive HTTP/1.1
// connection on loopback, served by ktlshttp with the user-space engine
// (client and server in this process: compare the handlers by the
// difference).
func BenchmarkServeLoopback(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "4k.bin"), make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	cert, err := selfSigned([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"fileserver", "serve", "serve+log"} {
		h := serveHandlers(b, dir)[name]
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &ktlshttp.Server{
				Server: http.Server{Handler: h, ConnContext: logConn(slog.New(slog.DiscardHandler))},
				Config: &ktls.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, TX: ktls.OffloadUser, RX: ktls.OffloadUser},
			}
			go srv.Serve(ln)
			defer srv.Shutdown(context.Background())
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := "https://" + ln.Addr().String() + "/4k.bin"
			buf := make([]byte, 8192)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
				resp.Body.Close()
				if err != nil || n != 4096 {
					b.Fatalf("%s: %d bytes, %v", resp.Status, n, err)
				}
			}
		})
	}
}
