package ktlshttp

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/ktlstest"
)

// TestKernelFileServer serves a file with both directions required in the
// kernel: on HTTP/1.1 the body goes through the ktls.Conn's ReadFrom
// (sendfile), on HTTP/2 through Write; both arrive intact.
func TestKernelFileServer(t *testing.T) {
	ktlstest.RequireKernel(t)
	dir := t.TempDir()
	data := make([]byte, 1<<20+5)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var n atomic.Int64
	files := http.FileServer(RootFS(root))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(ConnContextKey).(countingConn)
		tx, rx := c.Mode()
		w.Header().Set("X-Mode", fmt.Sprintf("tx=%v rx=%v", tx, rx))
		files.ServeHTTP(w, r)
	})
	ts := startServer(t, h, func(l net.Listener, cfg *ktls.Config) net.Listener {
		cfg = &ktls.Config{TLS: cfg.TLS.Clone(), TX: ktls.OffloadKernel, RX: ktls.OffloadKernel}
		cfg.TLS.NextProtos = []string{"h2", "http/1.1"}
		return countingListener{l, cfg, &n}
	})
	for _, h2 := range []bool{false, true} {
		c := ts.client(h2)
		n.Store(0)
		resp, body := get(t, c, ts.url("/f.bin"))
		mode := resp.Header.Get("X-Mode")
		if resp.StatusCode != 200 || body != string(data) {
			t.Errorf("h2=%v: %s, %d bytes, want 200, %d bytes", h2, resp.Status, len(body), len(data))
		}
		if !strings.HasPrefix(mode, "tx=kernel") || !strings.Contains(mode, "rx=kernel") {
			t.Errorf("h2=%v: modes %q, want both in the kernel", h2, mode)
		}
		if got := n.Load(); h2 && got != 0 || !h2 && got == 0 {
			t.Errorf("h2=%v: ReadFrom called %d times", h2, got)
		}
		resp, body = get(t, c, ts.url("/f.bin"), "Range", "bytes=100000-299999")
		if resp.StatusCode != 206 || body != string(data[100000:300000]) {
			t.Errorf("h2=%v: Range: %s, %d bytes", h2, resp.Status, len(body))
		}
		t.Logf("h2=%v: %s %s, ReadFrom calls %d", h2, resp.Proto, mode, n.Load())
		c.CloseIdleConnections()
	}
}

// TestKernelSmallResponseRecords checks that a small file's response header
// and body go in one record with the sending direction in the kernel: the
// header is sent with MSG_MORE and sendfile's data joins its record. A HEAD
// response and an empty file must not be held back.
func TestKernelSmallResponseRecords(t *testing.T) {
	ktlstest.RequireKernel(t)
	checkSmallResponses(t, ktls.OffloadKernel)
}
