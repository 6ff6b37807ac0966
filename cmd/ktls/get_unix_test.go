//go:build unix

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGetInterrupt sends SIGINT during a download: ktls get exits 130 and
// says how many bytes it kept, which are in the file.
func TestGetInterrupt(t *testing.T) {
	sent := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(bytes.Repeat([]byte("x"), 1000))
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done()
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "part")
	var stdout, stderr syncBuffer
	status := make(chan int, 1)
	go func() {
		status <- run(context.Background(), []string{"get", "-k", "-o", out, srv.URL + "/"}, &stdout, &stderr)
	}()
	<-sent
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(out); err == nil && fi.Size() == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first 1000 bytes did not reach the file")
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case s := <-status:
		if s != 130 || !strings.Contains(stderr.String(), "interrupted (interrupt): 1000 bytes kept in "+out) {
			t.Errorf("status %d, stderr %q; want 130 and the bytes kept", s, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("ktls get goes on after SIGINT")
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 1000 {
		t.Errorf("the file: %v, %v", fi, err)
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q", stdout.String())
	}
}
